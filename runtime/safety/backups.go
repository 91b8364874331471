package safety

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// The min_backups check reads what it decides on afresh for every
// deletion — a guest's backups are never taken from an earlier answer, so
// another run's deletions (or a person's, in the web interface) since
// then cannot make it allow what leaves fewer than min_backups — but it
// reads no more than it needs:
//
//   - The archive's own storage first (one of the node's backup storages,
//     or the archive is not among the guest's listed backups, as a read of
//     them all would find): when that listing alone shows
//     min_backups newer backups of the guest, those exist, and the
//     deletion is allowed on one request (pruning on the storage a backup
//     was just written to, the common case). Otherwise the guest's
//     backups on every backup storage of the node decide.
//   - Which of the node's storages hold backups is storage configuration,
//     not content: it is read once per run (Gate.backupStorages). A
//     storage added since holds backups the check does not count (it
//     parks more, never less); one removed or deactivated since fails its
//     listing, and the call is refused as unknown.

// backupEffect classifies deleting volid, a backup of vmid.
func (c *classifier) backupEffect(what string, vmid int, volid string) (Effect, error) {
	unknown := Effect{Destructive: true, Guest: vmid, What: what, Rule: "backup-count-unknown"}
	list := c.storages
	if list == nil {
		list = c.facts.BackupStorages
	}
	storages, err := list(c.ctx)
	if err != nil {
		return unknown, err
	}
	own, _, _ := strings.Cut(volid, ":")
	if !slices.Contains(storages, own) {
		return c.classifyBackup(what, vmid, volid, nil), nil // not on a backup storage of the node
	}
	backups, err := c.facts.StorageBackups(c.ctx, own, vmid)
	if err != nil {
		return unknown, err
	}
	eff := c.classifyBackup(what, vmid, volid, backups)
	if !eff.Destructive || eff.Rule == "unlisted-backup" {
		return eff, nil // enough newer ones on its own storage; or it is not there
	}
	for _, st := range storages {
		if st == own {
			continue
		}
		more, err := c.facts.StorageBackups(c.ctx, st, vmid)
		if err != nil {
			return unknown, err
		}
		backups = append(backups, more...)
	}
	return c.classifyBackup(what, vmid, volid, backups), nil
}

// classifyBackup classifies deleting volid, a backup of vmid, by the
// guest's backups (any order).
func (c *classifier) classifyBackup(what string, vmid int, volid string, backups []proxmox.Volume) Effect {
	backups = slices.Clone(backups)
	slices.SortStableFunc(backups, func(a, b proxmox.Volume) int { return b.CTime.Compare(a.CTime) })
	n := c.policy.minBackups()
	for i, b := range backups {
		if b.VolID == volid {
			if i < n {
				return Effect{Destructive: true, Guest: vmid, What: fmt.Sprintf("%s, one of guest %d's %d newest backups (safety.min_backups = %d)", what, vmid, n, n), Rule: "below-min-backups"}
			}
			return Effect{Guest: vmid, What: fmt.Sprintf("%s (guest %d keeps %d newer backups)", what, vmid, i), Rule: "prune-old-backup"}
		}
	}
	return Effect{Destructive: true, Guest: vmid, What: what + " (not among the guest's listed backups)", Rule: "unlisted-backup"}
}

// backupStorages returns the node's backup storages, read once for the
// run (see above).
func (g *Gate) backupStorages(ctx context.Context) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.storages != nil {
		return g.storages, nil
	}
	f := g.Facts
	if f == nil {
		f = noFacts{}
	}
	sts, err := f.BackupStorages(ctx)
	if err != nil {
		return nil, err
	}
	g.storages = append([]string{}, sts...)
	return g.storages, nil
}
