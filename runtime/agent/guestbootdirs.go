package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Bootstrap directories across a cluster (docs/guest-api.md, "The
// bootstrap mount and migration"): the bootstrap mount is a bind mount
// marked shared=1, which lets PVE migrate the container but makes PVE
// start it on the new node only if the directory exists there
// (pve-container src/PVE/LXC.pm mountpoint_mount: "directory '…' does
// not exist"). So every node's agent makes the directory of every
// container of the cluster that carries the bootstrap mount, before any
// migration: empty, 0700, readable by the container's root, exactly as
// the attach makes it. The file inside matters only at the controller's
// first boot; a token rotation on the new node writes a fresh one.

const (
	// bootDirsRecheck is how many health intervals a container seen
	// without the bootstrap mount is not read again (another node's
	// agent may attach it later): 2 minutes at the default interval.
	bootDirsRecheck = 4
	// bootDirsReads bounds the config reads of one pass.
	bootDirsReads = 50
	// bootDirsTimeout bounds one pass.
	bootDirsTimeout = 30 * time.Second
)

// bootDirsReader is what the pass reads: the cluster's guests and a
// config on any node (*proxmox.Client).
type bootDirsReader interface {
	ClusterGuests(ctx context.Context) ([]proxmox.GuestLocation, error)
	GuestConfigOn(ctx context.Context, node string, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error)
}

var _ bootDirsReader = (*proxmox.Client)(nil)

// makeBootstrapDir makes STATE_DIR/guests and STATE_DIR/guests/VMID,
// mode 0700, owned by the agent, and returns the latter. vmid must be
// a PVE vmid, so the path is always one directory below guests.
func (a *Agent) makeBootstrapDir(vmid int) (string, error) {
	if vmid < 100 || vmid > 999999999 {
		return "", fmt.Errorf("guest %d bootstrap directory: vmid is not in 100..999999999", vmid)
	}
	dir := filepath.Join(a.cfg.StateDir, GuestsDir, strconv.Itoa(vmid))
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("guest %d bootstrap directory: %w", vmid, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return "", fmt.Errorf("guest %d bootstrap directory: %w", vmid, err)
		}
	}
	return dir, nil
}

// bootDirsPass runs ensureBootstrapDirs after a health probe (at start
// and every health interval) while the guest API is on.
func (a *Agent) bootDirsPass(ctx context.Context) {
	if a.guest == nil || ctx.Err() != nil {
		return
	}
	a.health.mu.Lock()
	up := a.health.ok
	a.health.mu.Unlock()
	if !up {
		return // the probe's failure is reported already
	}
	ctx, cancel := context.WithTimeout(ctx, bootDirsTimeout)
	defer cancel()
	if _, err := a.ensureBootstrapDirs(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn("guest API: bootstrap directories of the cluster's containers not checked", "err", err)
	}
}

// ensureBootstrapDirs makes the bootstrap directory of every container
// of the cluster whose config carries the bootstrap mount and that has
// none on this node yet, and returns the vmids it made. Requests: one
// listing (GET /cluster/resources), then one config read per container
// without a directory here, at most bootDirsReads a pass; a container
// without the mount is read again only after bootDirsRecheck health
// intervals. A node that cannot be reached, or a config that cannot be
// read, is skipped until that recheck too.
func (a *Agent) ensureBootstrapDirs(ctx context.Context) ([]int, error) {
	g := a.guest
	px, ok := g.cfg.Proxmox.(bootDirsReader)
	if !ok {
		return nil, nil
	}
	g.bootDirs.Lock()
	defer g.bootDirs.Unlock()
	ctx = proxmox.WithObserver(ctx, metricsObserver{a.metrics})
	guests, err := px.ClusterGuests(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the cluster's guests: %w", err)
	}
	if g.noMount == nil {
		g.noMount = map[int]time.Time{}
	}
	var made []int
	reads := 0
	for _, gu := range guests {
		if gu.Kind != proxmox.LXC || gu.VMID < 100 {
			continue
		}
		dir := filepath.Join(a.cfg.StateDir, GuestsDir, strconv.Itoa(gu.VMID))
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			continue
		}
		if at, seen := g.noMount[gu.VMID]; seen && time.Since(at) < bootDirsRecheck*a.cfg.HealthInterval {
			continue
		}
		if reads == bootDirsReads {
			break
		}
		reads++
		conf, err := px.GuestConfigOn(ctx, gu.Node, proxmox.LXC, gu.VMID)
		if err != nil {
			a.log.Debug("guest API: container config not read for its bootstrap directory", "vmid", gu.VMID, "node", gu.Node, "err", err)
			g.noMount[gu.VMID] = time.Now() // read again after the recheck, not every pass
			continue
		}
		vol, mounted := bootstrapMount(conf, gu.VMID)
		if !mounted {
			g.noMount[gu.VMID] = time.Now()
			continue
		}
		delete(g.noMount, gu.VMID)
		if vol != dir {
			// Another node's agent has another state directory: the
			// directory made here is not the path PVE checks, so the
			// container would not start on this node after a migration.
			a.log.Warn("guest API: a container's bootstrap mount is not this agent's bootstrap directory: unless that path exists on this node too, the container will not start here after a migration (give every node's agent the same state_dir)",
				"vmid", gu.VMID, "mount", vol, "here", dir)
		}
		reader, err := conf.RootUID()
		if err != nil {
			a.log.Warn("guest API: bootstrap directory not made: cannot tell which host uid is the container's root", "vmid", gu.VMID, "err", err)
			continue
		}
		if _, err := a.makeBootstrapDir(gu.VMID); err != nil {
			return made, err
		}
		if reader != 0 {
			if err := grantRead(dir, reader, true); err != nil {
				return made, fmt.Errorf("guest %d bootstrap directory: %w", gu.VMID, err)
			}
		}
		made = append(made, gu.VMID)
		a.log.Info("guest API: bootstrap directory made for a container of the cluster, so that it starts here after a migration", "vmid", gu.VMID, "node", gu.Node)
	}
	return made, nil
}

// bootstrapMount is the host path of conf's bootstrap mount (a bind
// mount at BootstrapMountPath whose path ends in guests/VMID), if it has
// one.
func bootstrapMount(conf proxmox.GuestConfig, vmid int) (string, bool) {
	for _, mp := range conf.MountPoints {
		v := filepath.Clean(mp.Volume)
		if mp.Path == BootstrapMountPath && filepath.IsAbs(v) &&
			filepath.Base(v) == strconv.Itoa(vmid) && filepath.Base(filepath.Dir(v)) == GuestsDir {
			return v, true
		}
	}
	return "", false
}
