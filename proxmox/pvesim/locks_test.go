package pvesim

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// taskStatus reads a task's status without moving the clock.
func (h *harness) taskStatus(upid string) map[string]any {
	h.t.Helper()
	return h.ok("GET", nodePath+"/tasks/"+upid+"/status", nil).object()
}

// wantStoppedNow asserts that a task has already stopped, with exit as
// its exit status, although no time has passed since it was requested.
func (h *harness) wantStoppedNow(upid, exit string) {
	h.t.Helper()
	st := h.taskStatus(upid)
	if st["status"] != "stopped" || st["exitstatus"] != exit {
		h.t.Fatalf("task %s = %v %v at once; want stopped %q (the worker checks the lock as it starts)", upid, st["status"], st["exitstatus"], exit)
	}
}

// A worker checks the guest's lock when it starts: what is requested
// while a vzdump holds the guest fails at once, although the vzdump ends
// before the other task's duration would have.
func TestLockCheckedWhenWorkerStarts(t *testing.T) {
	h := newHarness(t)
	// 120 is stopped, so the vzdump runs in stop mode and start is
	// possible at all.
	if err := h.sim.AddGuest(GuestSpec{VMID: 120}); err != nil {
		t.Fatal(err)
	}
	dump := h.upid("POST", nodePath+"/vzdump", vals("vmid", "120", "storage", "usb-backup"))
	h.clock.Advance(testTaskDuration / 2)

	snap := h.upid("POST", nodePath+"/lxc/120/snapshot", vals("snapname", "during"))
	h.wantStoppedNow(snap, "CT is locked (backup)")
	start := h.upid("POST", nodePath+"/lxc/120/status/start", nil)
	h.wantStoppedNow(start, "CT is locked (backup)")
	rollbackless := h.upid("DELETE", nodePath+"/lxc/120/snapshot/nosuch", nil)
	h.wantStoppedNow(rollbackless, "snapshot 'nosuch' does not exist")
	h.fails("PUT", nodePath+"/lxc/120/config", vals("cores", "2"), 500, "CT is locked (backup)")

	// The vzdump ends first; the failed tasks stay failed.
	h.wantExit(dump, "OK")
	h.wantExit(snap, "CT is locked (backup)")
	if g := h.guest(120); len(g.Snapshots) != 0 || g.Lock != "" || g.Status != "stopped" {
		t.Errorf("guest 120 after the backup = %+v; want no snapshot, unlocked, stopped", g)
	}
	log := h.log(start)
	if log[len(log)-1] != "TASK ERROR: CT is locked (backup)" {
		t.Errorf("start log = %q; want it to end with the lock error", log)
	}
}

// A snapshot task holds the snapshot lock from its start: a vzdump of the
// same guest fails that guest at once ("job errors"), a stop fails.
func TestSnapshotLockBlocksOthers(t *testing.T) {
	h := newHarness(t)
	snap := h.upid("POST", nodePath+"/lxc/101/snapshot", vals("snapname", "first"))
	if h.guest(101).Lock != "snapshot" {
		t.Fatal("snapshot lock not taken as the worker starts")
	}
	h.wantStoppedNow(h.upid("POST", nodePath+"/lxc/101/status/stop", nil), "CT is locked (snapshot)")
	dump := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup"))
	log := h.wantExit(dump, "job errors")
	if !containsLine(log, "ERROR: Backup of VM 101 failed - CT is locked (snapshot)") {
		t.Errorf("vzdump log:\n%s", strings.Join(log, "\n"))
	}
	h.wantExit(snap, "OK")
}

// A multi-guest vzdump locks each guest only while that guest is backed
// up: 101 during the first slot, 102 during the second.
func TestVzdumpLocksEachGuestInItsSlot(t *testing.T) {
	h := newHarness(t)
	dump := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102", "storage", "usb-backup"))
	locks := func() (string, string) { return h.guest(101).Lock, h.guest(102).Lock }
	if a, b := locks(); a != "backup" || b != "" {
		t.Errorf("first slot: locks 101 %q, 102 %q; want backup, none", a, b)
	}
	h.ok("PUT", nodePath+"/lxc/102/config", vals("description", "not yet backed up"))

	h.clock.Advance(testTaskDuration + time.Second)
	if a, b := locks(); a != "" || b != "backup" {
		t.Errorf("second slot: locks 101 %q, 102 %q; want none, backup", a, b)
	}
	h.ok("PUT", nodePath+"/lxc/101/config", vals("description", "already backed up"))
	h.fails("PUT", nodePath+"/lxc/102/config", vals("cores", "1"), 500, "CT is locked (backup)")
	// A snapshot of 101 now works while the job goes on with 102.
	h.wantExit(h.upid("POST", nodePath+"/lxc/101/snapshot", vals("snapname", "between")), "OK")
	h.wantExit(dump, "OK")
	if a, b := locks(); a != "" || b != "" {
		t.Errorf("after the job: locks 101 %q, 102 %q; want none", a, b)
	}
}

// A guest locked when the job reaches it fails on its own, even if it was
// free when the job was requested; stopping the job releases the guest it
// holds and takes no more.
func TestVzdumpLockAtItsSlotAndStop(t *testing.T) {
	h := newHarness(t)
	dump := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102", "storage", "usb-backup"))
	if err := h.sim.SetGuestLock(102, "mounted"); err != nil {
		t.Fatal(err)
	}
	log := h.wantExit(dump, "job errors")
	if !containsLine(log, "ERROR: Backup of VM 102 failed - CT is locked (mounted)") || !containsLine(log, "Finished Backup of VM 101") {
		t.Errorf("log:\n%s", strings.Join(log, "\n"))
	}
	if err := h.sim.SetGuestLock(102, ""); err != nil {
		t.Fatal(err)
	}

	dump = h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102", "storage", "usb-backup"))
	h.ok("DELETE", nodePath+"/tasks/"+dump, nil)
	h.clock.Advance(time.Hour)
	if a, b := h.guest(101).Lock, h.guest(102).Lock; a != "" || b != "" {
		t.Errorf("after stopping the job: locks 101 %q, 102 %q; want none", a, b)
	}
}

// A second vzdump of a guest is not refused: PVE's global vzdump lock
// makes it wait (pve-manager PVE/VZDump.pm getlock), and it reaches the
// guest after the first job released it.
func TestSecondVzdumpWaitsForTheFirst(t *testing.T) {
	h := newHarness(t)
	first := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup"))
	second := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup"))
	h.wantExit(first, "OK")
	log := h.wantExit(second, "OK")
	if !containsLine(log, "INFO: trying to get global lock - waiting...") || !containsLine(log, "Finished Backup of VM 101") {
		t.Errorf("second log:\n%s", strings.Join(log, "\n"))
	}
}

// A running container's snapshot-mode backup logs its storage snapshot
// while the task runs, as vzdump does once the snapshot exists
// (pve-container src/PVE/VZDump/LXC.pm snapshot()), long before the
// backup finishes: the guest API's snapshotted phase reads it. A VM's
// backup and a stop-mode one never log it.
func TestVzdumpSnapshotLineWhileRunning(t *testing.T) {
	h := newHarness(t)
	snaps := func(log []string) int {
		n := 0
		for _, l := range log {
			if strings.Contains(l, "INFO: create storage snapshot 'vzdump'") {
				n++
			}
		}
		return n
	}
	dump := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102", "storage", "usb-backup", "mode", "snapshot"))
	// 101's slot has begun: its snapshot exists; 102's has not.
	if log := h.log(dump); snaps(log) != 1 || containsLine(log, "Starting Backup of VM 102") {
		t.Fatalf("log at the start (want 101's snapshot only):\n%s", strings.Join(log, "\n"))
	}
	h.clock.Advance(testTaskDuration * 3 / 2)
	if st := h.taskStatus(dump); st["status"] != "running" {
		t.Fatalf("task %v in 102's slot; want running", st["status"])
	}
	if log := h.log(dump); snaps(log) != 2 || containsLine(log, "Finished Backup of VM 102") {
		t.Fatalf("log in 102's slot (want its snapshot, not finished):\n%s", strings.Join(log, "\n"))
	}
	if log := h.wantExit(dump, "OK"); snaps(log) != 2 || !containsLine(log, "Finished Backup of VM 102") {
		t.Errorf("log (want each snapshot once, then the end):\n%s", strings.Join(log, "\n"))
	}
	for _, c := range []url.Values{
		vals("vmid", "101", "storage", "usb-backup", "mode", "stop"),
		vals("vmid", "200", "storage", "usb-backup", "mode", "snapshot"),
	} {
		up := h.upid("POST", nodePath+"/vzdump", c)
		if log := h.wantExit(up, "OK"); snaps(log) != 0 {
			t.Errorf("vzdump %v logged a storage snapshot:\n%s", c, strings.Join(log, "\n"))
		}
	}
}
