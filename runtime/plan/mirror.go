// Package plan answers "what would this playbook do?" without changing
// anything: it reads a Proxmox VE host through a read-only client (GETs
// only), builds a simulated host that mirrors it (pvesim, Blank), runs the
// playbook against the mirror, and reports each mutation the playbook
// sent, in order, the run's predicted result and the change in state —
// guests, snapshots, archives, free space — with what the mirror had to
// assume. `felhom-agent plan` is its front end.
//
// The promise: not one mutating request reaches the host. Mirror reads
// through [HostReader], which has no mutating method, and the CLI gives it
// a proxmox.Client made WithReadOnly, which refuses every method but GET
// before it is sent.
package plan

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// HostReader is what Mirror reads of the host: reads only.
// *proxmox.Client implements it.
type HostReader interface {
	Node() string
	Guests(ctx context.Context) ([]proxmox.Guest, error)
	GuestConfig(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error)
	Snapshots(ctx context.Context, kind proxmox.GuestKind, vmid int) ([]proxmox.Snapshot, error)
	Storages(ctx context.Context) ([]proxmox.Storage, error)
	NodeStorages(ctx context.Context) ([]proxmox.Storage, error)
	StorageContent(ctx context.Context, storage, content string, vmid int) ([]proxmox.Volume, error)
	Tasks(ctx context.Context, f proxmox.TaskFilter) ([]proxmox.Task, error)
}

var _ HostReader = (*proxmox.Client)(nil)

// Mirror reads the host and returns a simulator holding the same node,
// storages (type, content, path, retention, size and use), backup
// archives, guests of both kinds (config, power state, lock) and their
// snapshots (in order, with their times), and what it assumed where the
// host's state cannot be copied. Tasks in the mirror stop as soon as they
// are looked at; now is the mirror's clock (nil: time.Now).
func Mirror(ctx context.Context, h HostReader, now func() time.Time) (*pvesim.Sim, []string, error) {
	sim := &pvesim.Sim{Blank: true, NodeName: h.Node(), TaskDuration: -1, Now: now}
	var assumed []string

	cfgs, err := h.Storages(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan: reading the storages: %w", err)
	}
	usage, err := h.NodeStorages(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan: reading the node's storages: %w", err)
	}
	used := map[string]proxmox.Storage{}
	for _, u := range usage {
		used[u.Storage] = u
	}
	var backupStorages []string
	for _, c := range cfgs {
		u, onNode := used[c.Storage]
		if !onNode {
			continue // another node's storage
		}
		sp := pvesim.StorageSpec{
			Name: c.Storage, Type: c.Type, Content: c.Content, Path: c.Path,
			Total: u.Total, Shared: c.Shared, PruneBackups: c.PruneBackups,
		}
		switch {
		case !u.Enabled && u.Total == 0:
			sp.Disabled = true
		case !u.Active:
			// The mirror keeps it inactive; what would activate it on the
			// host (a mount) is simulated only for the simulator's disk.
			sp.MountPoint = true
			assumed = append(assumed, fmt.Sprintf("storage %s is inactive on the host; the plan keeps it inactive", c.Storage))
		}
		if sp.Type == "" {
			sp.Type = "dir"
		}
		if err := sim.AddStorage(sp); err != nil {
			return nil, nil, fmt.Errorf("plan: mirroring storage %s: %w", c.Storage, err)
		}
		if slices.Contains(c.Content, "backup") && u.Active {
			backupStorages = append(backupStorages, c.Storage)
		}
	}

	guests, err := h.Guests(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("plan: reading the guests: %w", err)
	}
	slices.SortFunc(guests, func(a, b proxmox.Guest) int { return a.VMID - b.VMID })
	for _, g := range guests {
		cfg, err := h.GuestConfig(ctx, g.Type, g.VMID)
		if err != nil {
			return nil, nil, fmt.Errorf("plan: reading the config of %s %d: %w", g.Type, g.VMID, err)
		}
		raw := map[string]string{}
		for k, v := range cfg.Raw {
			if k == "digest" || k == "lock" || k == "parent" {
				continue // the simulator keeps these itself
			}
			raw[k] = v
		}
		sp := pvesim.GuestSpec{
			Type: string(g.Type), VMID: g.VMID, Running: g.Status == "running", Template: cfg.Template,
			Lock: cfg.Lock, Config: raw,
		}
		if g.Type == proxmox.QEMU {
			sp.Hostname = cfg.Name
		} else {
			sp.Hostname = cfg.Hostname
		}
		if sp.Hostname != "" && !dnsName(sp.Hostname) {
			sp.Hostname = ""
		}
		if err := sim.AddGuest(sp); err != nil {
			return nil, nil, fmt.Errorf("plan: mirroring %s %d: %w", g.Type, g.VMID, err)
		}
		snaps, err := h.Snapshots(ctx, g.Type, g.VMID)
		if err != nil {
			return nil, nil, fmt.Errorf("plan: reading the snapshots of %d: %w", g.VMID, err)
		}
		for _, s := range snapshotOrder(snaps) {
			if err := sim.AddSnapshotAt(g.VMID, s.Name, s.Description, s.SnapTime); err != nil {
				return nil, nil, fmt.Errorf("plan: mirroring snapshot %s of %d: %w", s.Name, g.VMID, err)
			}
		}
	}

	for _, sid := range backupStorages {
		vols, err := h.StorageContent(ctx, sid, "backup", 0)
		if err != nil {
			return nil, nil, fmt.Errorf("plan: reading the backups on %s: %w", sid, err)
		}
		for _, v := range vols {
			if err := sim.AddVolume(pvesim.VolumeSpec{
				VolID: v.VolID, Size: v.Size, CTime: v.CTime, Notes: v.Notes,
				Protected: v.Protected, Verification: v.Verification,
			}); err != nil {
				assumed = append(assumed, fmt.Sprintf("backup %s is not mirrored (%v)", v.VolID, err))
			}
		}
	}
	// The host's own figures, once guests' disks and archives are in.
	for _, c := range cfgs {
		if u, ok := used[c.Storage]; ok && u.Total > 0 {
			if err := sim.SetStorageUsage(c.Storage, u.Total, min(u.Used, u.Total)); err != nil {
				return nil, nil, fmt.Errorf("plan: mirroring the use of %s: %w", c.Storage, err)
			}
		}
	}

	running, err := h.Tasks(ctx, proxmox.TaskFilter{Source: "active"})
	if err != nil {
		return nil, nil, fmt.Errorf("plan: reading the running tasks: %w", err)
	}
	for _, t := range running {
		what := t.Type
		if t.ID != "" {
			what += " of " + t.ID
		}
		assumed = append(assumed, fmt.Sprintf("%s is running on the host (%s); the plan assumes it has ended and holds nothing", what, t.UPID))
	}
	assumed = append(assumed,
		"the agent's token may do what the plan does: a privilege the host's token lacks, a lock taken meanwhile or a disk that fills faster than estimated fails there, not here",
		"archive sizes are the simulator's estimates from the guests' disks, so free space after the run is approximate")
	return sim, assumed, nil
}

// snapshotOrder is the order to add snapshots in: each after its parent,
// so the mirror's chain is the host's.
func snapshotOrder(snaps []proxmox.Snapshot) []proxmox.Snapshot {
	byName := map[string]proxmox.Snapshot{}
	for _, s := range snaps {
		byName[s.Name] = s
	}
	var out []proxmox.Snapshot
	done := map[string]bool{}
	var visit func(s proxmox.Snapshot, depth int)
	visit = func(s proxmox.Snapshot, depth int) {
		if done[s.Name] || depth > len(snaps) {
			return
		}
		if p, ok := byName[s.Parent]; ok {
			visit(p, depth+1)
		}
		done[s.Name] = true
		out = append(out, s)
	}
	sorted := slices.Clone(snaps)
	slices.SortStableFunc(sorted, func(a, b proxmox.Snapshot) int { return a.SnapTime.Compare(b.SnapTime) })
	for _, s := range sorted {
		visit(s, 0)
	}
	return out
}

// dnsName reports whether s can be a simulated guest's hostname.
func dnsName(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}
