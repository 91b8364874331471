package pvesim

import (
	"strings"
	"testing"
)

func TestSnapshotLifecycle(t *testing.T) {
	h := newHarness(t)
	snaps := nodePath + "/lxc/101/snapshot"

	list := h.ok("GET", snaps, nil).list()
	if len(list) != 1 || list[0]["name"] != "current" || list[0]["description"] != "You are here!" || list[0]["running"] != float64(1) {
		t.Fatalf("snapshots of a fresh guest = %v; want only current", list)
	}

	upid := h.upid("POST", snaps, vals("snapname", "pre-upgrade", "description", "before the upgrade"))
	if !strings.Contains(upid, ":vzsnapshot:101:") {
		t.Errorf("UPID %s; want vzsnapshot of 101", upid)
	}
	if g := h.guest(101); g.Lock != "snapshot" {
		t.Errorf("lock while the snapshot runs = %q; want snapshot", g.Lock)
	}
	h.fails("PUT", nodePath+"/lxc/101/config", vals("cores", "1"), 500, "CT is locked (snapshot)")
	log := h.wantExit(upid, "OK")
	if len(log) < 3 || log[len(log)-1] != "TASK OK" {
		t.Errorf("snapshot log = %q; want lines ending in TASK OK", log)
	}
	if g := h.guest(101); g.Lock != "" || len(g.Snapshots) != 1 || g.Config["parent"] != "pre-upgrade" {
		t.Errorf("after snapshot: %+v", g)
	}

	h.ok("PUT", nodePath+"/lxc/101/config", vals("memory", "4096"))
	h.wantExit(h.upid("POST", snaps, vals("snapname", "second")), "OK")
	list = h.ok("GET", snaps, nil).list()
	if len(list) != 3 || list[0]["name"] != "pre-upgrade" || list[1]["parent"] != "pre-upgrade" ||
		list[2]["name"] != "current" || list[2]["parent"] != "second" {
		t.Errorf("snapshot list = %v; want pre-upgrade, second (parent pre-upgrade), current (parent second)", list)
	}
	if list[0]["description"] != "before the upgrade" || list[0]["snaptime"].(float64) != float64(testStart.Unix()) {
		t.Errorf("first snapshot = %v", list[0])
	}

	// Errors are the worker's: the POST succeeds, the task fails.
	h.wantExit(h.upid("POST", snaps, vals("snapname", "second")), "snapshot name 'second' already used")
	h.fails("POST", snaps, vals("snapname", "current"), 500, "unable to use snapshot name 'current' (reserved name)")
	h.wantExit(h.upid("POST", snaps+"/nosuch/rollback", nil), "snapshot 'nosuch' does not exist")
	h.wantExit(h.upid("DELETE", snaps+"/nosuch", nil), "snapshot 'nosuch' does not exist")
	h.wantExit(h.upid("POST", nodePath+"/lxc/9000/snapshot", vals("snapname", "x1")), "you can't take a snapshot if it's a template")
	r := h.fails("POST", snaps, vals("snapname", "1bad"), 400, "Parameter verification failed.")
	if r.errors()["snapname"] != "invalid format - invalid configuration ID '1bad'\n" {
		t.Errorf("snapname errors = %v", r.errors())
	}

	// Rollback stops the container, restores the config and can start it.
	upid = h.upid("POST", snaps+"/pre-upgrade/rollback", vals("start", "1"))
	if h.guest(101).Lock != "rollback" {
		t.Error("rollback does not hold the rollback lock")
	}
	h.wantExit(upid, "OK")
	g := h.guest(101)
	if g.Config["memory"] != "2048" || g.Config["parent"] != "pre-upgrade" || g.Status != "running" {
		t.Errorf("after rollback: memory %s parent %s status %s; want 2048, pre-upgrade, running", g.Config["memory"], g.Config["parent"], g.Status)
	}

	// Deleting a snapshot relinks its children.
	upid = h.upid("DELETE", snaps+"/pre-upgrade", nil)
	if h.guest(101).Lock != "snapshot-delete" {
		t.Error("snapshot delete does not hold the snapshot-delete lock")
	}
	h.wantExit(upid, "OK")
	g = h.guest(101)
	if len(g.Snapshots) != 1 || g.Snapshots[0].Name != "second" || g.Snapshots[0].Parent != "" || g.Config["parent"] != "" {
		t.Errorf("after delete: %+v", g)
	}

	// A snapshot config can be read.
	sc := h.ok("GET", nodePath+"/lxc/101/config", vals("snapshot", "second")).object()
	if sc["memory"] != float64(4096) || sc["snaptime"] == nil {
		t.Errorf("snapshot config = %v", sc)
	}
	h.fails("GET", nodePath+"/lxc/101/config", vals("snapshot", "nope"), 500, "snapshot 'nope' does not exist")
}

func TestSnapshotLockedGuest(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.SetGuestLock(102, "backup"); err != nil {
		t.Fatal(err)
	}
	upid := h.upid("POST", nodePath+"/lxc/102/snapshot", vals("snapname", "s1"))
	if h.guest(102).Lock != "backup" {
		t.Error("a failed snapshot must not take the lock")
	}
	h.wantExit(upid, "CT is locked (backup)")
	if err := h.sim.AddSnapshot(102, "s1", "made by the test"); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddSnapshot(102, "s1", ""); err == nil {
		t.Error("AddSnapshot of a taken name = nil; want an error")
	}
	if err := h.sim.AddSnapshot(102, "current", ""); err == nil {
		t.Error("AddSnapshot(current) = nil; want an error")
	}
}
