package playtest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// clock is a test's time: the wall clock moved forward by sim.advance.
// It is the one clock of the test — the simulator's Now (task ends,
// snapshot and archive times and names) and the time.now() of the test and
// of every playbook it runs — so a retention test over weeks advances
// the clock instead of waiting, and runs in milliseconds.
//
// Real time still passes underneath, so tasks started with the test's
// short task duration end as they would; advancing only ever moves
// forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

const clockKey = "felhom.playtest.clock"

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
	return c.now()
}

// withClock is withSim for the builtins that also need the test's clock.
func withClock(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple,
	f func(*pvesim.Sim, *clock) (starlark.Value, error), pairs ...any) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		c, ok := thread.Local(clockKey).(*clock)
		if !ok {
			return nil, fmt.Errorf("no clock in this test")
		}
		return f(s, c)
	}, pairs...)
}

func simNow(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withClock(thread, b, args, kwargs, func(_ *pvesim.Sim, c *clock) (starlark.Value, error) {
		return startime.Time(c.now()), nil
	})
}

func simAdvance(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d builtins.Duration
	return withClock(thread, b, args, kwargs, func(_ *pvesim.Sim, c *clock) (starlark.Value, error) {
		if d <= 0 {
			return nil, fmt.Errorf("duration %s: want more than zero (the clock only moves forward)", time.Duration(d))
		}
		return startime.Time(c.advance(time.Duration(d))), nil
	}, "duration", &d)
}

func simAddSnapshot(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	var name, description string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		return none(s.AddSnapshot(vmid, name, description))
	}, "vmid", &vmid, "name", &name, "description?", &description)
}

// archiveName is vzdump's name for an archive of LXC guest vmid started
// at t, in t's location (PVE names archives in the host's local time).
// archiveName is the volume name vzdump gives a backup of guest vmid made
// at t: vzdump-lxc-… or vzdump-qemu-… (local time) on a file storage, and
// ct/VMID/… or vm/VMID/… (UTC) on a Proxmox Backup Server (pve-manager
// PVE/VZDump.pm).
func archiveName(kind string, vmid int, t time.Time, pbs bool) string {
	switch {
	case pbs && kind == "qemu":
		return fmt.Sprintf("vm/%d/%s", vmid, t.UTC().Format("2006-01-02T15:04:05Z"))
	case pbs:
		return fmt.Sprintf("ct/%d/%s", vmid, t.UTC().Format("2006-01-02T15:04:05Z"))
	case kind == "qemu":
		return fmt.Sprintf("vzdump-qemu-%d-%s.vma.zst", vmid, t.Format("2006_01_02-15_04_05"))
	}
	return fmt.Sprintf("vzdump-lxc-%d-%s.tar.zst", vmid, t.Format("2006_01_02-15_04_05"))
}

func simAddArchive(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	storage := "usb-backup"
	var notes string
	var protected bool
	return withClock(thread, b, args, kwargs, func(s *pvesim.Sim, c *clock) (starlark.Value, error) {
		at := c.now().Truncate(time.Second)
		kind := "lxc"
		if g, ok := s.Guest(vmid); ok {
			kind = g.Type
		}
		pbs := slices.ContainsFunc(s.Storages(), func(st proxmox.Storage) bool { return st.Storage == storage && st.Type == "pbs" })
		volid := storage + ":backup/" + archiveName(kind, vmid, at, pbs)
		if err := s.AddVolume(pvesim.VolumeSpec{VolID: volid, CTime: at, Notes: notes, Protected: protected}); err != nil {
			return nil, err
		}
		return starlark.String(volid), nil
	}, "vmid", &vmid, "storage?", &storage, "notes?", &notes, "protected?", &protected)
}
