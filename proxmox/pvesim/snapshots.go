package pvesim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Snapshots (pve-guest-common AbstractConfig.pm snapshot_create,
// snapshot_rollback, snapshot_delete; pve-container API2/LXC/Snapshot.pm).
// PVE checks everything inside the worker: a POST for a taken name or a
// locked guest returns a UPID, and the task fails at once, as the worker
// starts (locks.go). Otherwise the worker takes the guest's lock as it
// starts, so a concurrent config change sees "CT is locked (snapshot)"
// meanwhile.

type snapshot struct {
	vmstate     bool // VMs: the RAM was saved; a rollback resumes the VM
	seq         int  // creation order on the host, which breaks snaptime ties as ZFS's txg order does
	name        string
	conf        map[string]string // the guest config at snapshot time ("parent" included)
	description string
	snaptime    time.Time
}

func (g *guest) sortedSnapshots() []*snapshot {
	out := slices.Collect(maps.Values(g.snapshots))
	slices.SortFunc(out, func(a, b *snapshot) int {
		if c := a.snaptime.Compare(b.snaptime); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// snapshotCopy is __snapshot_copy_config: everything but the lock and
// unused volumes.
func snapshotCopy(conf map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range conf {
		if k == "lock" || isIndexed(k, "unused") {
			continue
		}
		out[k] = v
	}
	return out
}

// snapshotCapable reports whether every volume of g sits on a storage that
// can snapshot (lvmthin, zfspool); plain files on a dir storage cannot.
func (st *state) snapshotCapable(g *guest) bool {
	for _, vol := range st.guestVolumes(g) {
		sid, _, _ := strings.Cut(vol, ":")
		s, ok := st.storages[sid]
		if !ok || (s.typ != "lvmthin" && s.typ != "zfspool") {
			return false
		}
	}
	return true
}

func (c *call) listSnapshots() response {
	g, fail := c.loadGuest(c.int("vmid"))
	if g == nil {
		return fail
	}
	out := []any{}
	for _, s := range g.sortedSnapshots() {
		item := map[string]any{"name": s.name, "snaptime": s.snaptime.Unix(), "description": s.description}
		if g.isQemu() {
			item["vmstate"] = boolInt(s.vmstate)
		}
		if p := s.conf["parent"]; p != "" {
			item["parent"] = p
		}
		out = append(out, item)
	}
	running := 0
	if g.running {
		running = 1
	}
	current := map[string]any{"name": "current", "digest": g.digest(), "running": running, "description": "You are here!"}
	if p := g.conf["parent"]; p != "" {
		current["parent"] = p
	}
	return ok(append(out, current))
}

// lockedTask starts a worker that, as it starts, runs preflight (PVE's
// prepare step under lock_config: check_lock, the snapshot name checks)
// and fails at once with its error, or takes lock on guest vmid and holds
// it while it runs; at its end it releases the lock and runs commit. The
// worker is the endpoint kind's (vz* or qm*) for action.
func (c *call) lockedTask(action string, vmid int, lock string, check taskCheck, intro []string,
	preflight func(g *guest) error, commit func(t *task, g *guest) error) response {
	st, kind := c.st, c.kind()
	held := false
	release := func() {
		if g, ok := st.lookup(kind, vmid); ok && held && g.lock() == lock {
			delete(g.conf, "lock")
		}
		held = false
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: workerType(kind, action), id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		intro: intro, checks: []taskCheck{check}, cleanup: release,
		begin: func(*task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if err := preflight(g); err != nil {
				return err
			}
			g.conf["lock"] = lock
			held = true
			return nil
		},
		work: func(t *task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			release()
			return commit(t, g)
		},
	})
	return ok(t.id)
}

func (c *call) createSnapshot() response {
	st, vmid, name := c.st, c.int("vmid"), c.str("snapname")
	if name == "current" || name == "vzdump" {
		return die("unable to use snapshot name '%s' (reserved name)", name)
	}
	descr := c.str("description")
	vmstate := c.bool("vmstate")
	preflight := func(g *guest) error {
		if g.isTemplate() {
			return failf("you can't take a snapshot if it's a template")
		}
		if err := checkLock(g); err != nil {
			return err
		}
		if _, taken := g.snapshots[name]; taken {
			return failf("snapshot name '%s' already used", name)
		}
		if !st.snapshotCapable(g) {
			return failf("snapshot feature is not available")
		}
		return nil
	}
	intro := []string{fmt.Sprintf("snapshot container %d: %s", vmid, name)}
	if c.kind() == kindQemu {
		intro = nil
	}
	return c.lockedTask("snapshot", vmid, "snapshot", taskCheck{"/vms/" + vmidString(vmid), "VM.Snapshot"}, intro, preflight,
		func(t *task, g *guest) error {
			// qemu-server QemuConfig.pm __snapshot_save_vmstate: only a
			// running VM has RAM to save; for a stopped one vmstate is
			// ignored.
			saveState := g.isQemu() && vmstate && g.running
			if saveState {
				t.logf("saving VM state and RAM using storage '%s'", strings.Split(firstVolume(st, g), ":")[0])
				t.logf("completed saving the VM state in 1s, saved %s", vzdumpFormatSizeIEC(parseSize("size="+g.conf["memory"]+"M")))
			}
			for _, vol := range st.guestVolumes(g) {
				if g.isQemu() {
					t.logf("snapshotting '%s' (%s)", driveOf(g, vol), vol)
				}
				t.logf("  Logical volume \"snap_%s_%s\" created.", volumeName(vol), name)
			}
			for _, s := range g.snapshots {
				if s.conf["parent"] == name {
					delete(s.conf, "parent")
				}
			}
			g.snapshots[name] = &snapshot{
				name: name, conf: snapshotCopy(g.conf), description: descr,
				snaptime: t.start.Truncate(time.Second), vmstate: saveState, seq: st.nextSnapSeq(),
			}
			g.conf["parent"] = name
			return nil
		})
}

func (c *call) rollbackSnapshot() response {
	st, vmid, name := c.st, c.int("vmid"), c.str("snapname")
	start := c.bool("start")
	preflight := func(g *guest) error {
		if g.isTemplate() {
			return failf("you can't rollback if vm is a template")
		}
		if _, ok := g.snapshots[name]; !ok {
			return failf("snapshot '%s' does not exist", name)
		}
		if err := checkLock(g); err != nil {
			return err
		}
		return st.rollbackPossible(g, name)
	}
	intro := []string{fmt.Sprintf("rollback snapshot LXC %d: %s", vmid, name)}
	if c.kind() == kindQemu {
		intro = nil
	}
	return c.lockedTask("rollback", vmid, "rollback", taskCheck{"/vms/" + vmidString(vmid), "VM.Snapshot.Rollback"}, intro, preflight,
		func(t *task, g *guest) error {
			if g.running {
				st.setRunning(g, false, t.end)
			}
			snap := g.snapshots[name]
			if snap.vmstate {
				// __snapshot_rollback_vm_start: the saved RAM is loaded,
				// so the VM runs again where the snapshot left it.
				defer st.setRunning(g, true, t.end)
			}
			for _, vol := range st.guestVolumes(g) {
				t.logf("  Logical volume \"%s\" successfully removed.", volumeName(vol))
				t.logf("  Logical volume \"%s\" created.", volumeName(vol))
			}
			conf := maps.Clone(snap.conf)
			for k, v := range g.conf {
				if isIndexed(k, "unused") {
					conf[k] = v
				}
			}
			conf["parent"] = name
			g.conf = conf
			if start && !snap.vmstate {
				st.startKindTask(g.kind, t.user, vmid, t.end, st.sim.taskDuration())
			}
			return nil
		})
}

func (c *call) deleteSnapshot() response {
	st, vmid, name := c.st, c.int("vmid"), c.str("snapname")
	force := c.bool("force")
	preflight := func(g *guest) error {
		if _, ok := g.snapshots[name]; !ok {
			return failf("snapshot '%s' does not exist", name)
		}
		if g.isTemplate() {
			return failf("you can't delete a snapshot if vm is a template")
		}
		if !force {
			return checkLock(g)
		}
		return nil
	}
	return c.lockedTask("delsnapshot", vmid, "snapshot-delete", taskCheck{"/vms/" + vmidString(vmid), "VM.Snapshot"},
		[]string{fmt.Sprintf("delete snapshot VM %d: %s", vmid, name)}, preflight,
		func(t *task, g *guest) error {
			snap := g.snapshots[name]
			for _, vol := range st.guestVolumes(g) {
				t.logf("  Logical volume \"snap_%s_%s\" successfully removed.", volumeName(vol), name)
			}
			relink := func(conf map[string]string) {
				if conf["parent"] == name {
					if p := snap.conf["parent"]; p != "" {
						conf["parent"] = p
					} else {
						delete(conf, "parent")
					}
				}
			}
			relink(g.conf)
			for _, s := range g.snapshots {
				relink(s.conf)
			}
			delete(g.snapshots, name)
			return nil
		})
}

// rollbackPossible is the storages' volume_rollback_is_possible for every
// disk of g: a ZFS dataset can only roll back to its most recent snapshot
// (pve-storage ZFSPoolPlugin.pm: "can't rollback, 'NAME' is not most
// recent snapshot on 'VOLID'"); LVM-thin can roll back to any.
func (st *state) rollbackPossible(g *guest, name string) error {
	// ZFSPoolPlugin sorts by creation, and zfs list keeps same-second
	// snapshots in the order they were made.
	snaps := slices.Collect(maps.Values(g.snapshots))
	slices.SortFunc(snaps, func(a, b *snapshot) int {
		if c := a.snaptime.Compare(b.snaptime); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	if len(snaps) == 0 || snaps[len(snaps)-1].name == name {
		return nil
	}
	for _, vol := range st.guestVolumes(g) {
		if s, ok := st.storages[strings.Split(vol, ":")[0]]; ok && s.typ == "zfspool" {
			return failf("can't rollback, '%s' is not most recent snapshot on '%s'", name, vol)
		}
	}
	return nil
}

// nextSnapSeq numbers snapshots in the order they are made.
func (st *state) nextSnapSeq() int {
	st.snapSeq++
	return st.snapSeq
}

// AddSnapshot gives guest vmid a snapshot of its current config at once,
// without a task, taken now.
func (s *Sim) AddSnapshot(vmid int, name, description string) error {
	return s.AddSnapshotAt(vmid, name, description, time.Time{})
}

// AddSnapshotAt is AddSnapshot with the snapshot's time; zero means now.
// Snapshots added in the order they were taken keep that order.
func (s *Sim) AddSnapshotAt(vmid int, name, description string, at time.Time) error {
	if name == "current" || name == "vzdump" || !configIDRe.MatchString(name) || len(name) > 40 {
		return fmt.Errorf("pvesim: AddSnapshot(%d): invalid snapshot name %q", vmid, name)
	}
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: AddSnapshot: no guest %d", vmid)
		}
		if _, taken := g.snapshots[name]; taken {
			return fmt.Errorf("pvesim: AddSnapshot(%d): snapshot name '%s' already used", vmid, name)
		}
		when := st.now
		if !at.IsZero() {
			when = at
		}
		g.snapshots[name] = &snapshot{name: name, conf: snapshotCopy(g.conf), description: description,
			snaptime: when.Truncate(time.Second), seq: st.nextSnapSeq()}
		g.conf["parent"] = name
		return nil
	})
}
