package pvesim

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestActiveTaskList checks source=active against pve-manager's
// node_tasks: the running tasks of the active file in the order they were
// forked, passed on as read_active_workers parsed them (the whole UPID user,
// no tokenid, saved "0", status RUNNING, no endtime), and nothing else.
func TestActiveTaskList(t *testing.T) {
	h := newHarness(t)
	a := h.upid("POST", nodePath+"/lxc/101/status/shutdown", nil)
	h.clock.Advance(time.Second)
	b := h.upid("POST", nodePath+"/lxc/102/status/shutdown", nil)

	r := h.ok("GET", nodePath+"/tasks", vals("source", "active"))
	list := r.list()
	if len(list) != 2 || list[0]["upid"] != a || list[1]["upid"] != b {
		t.Fatalf("active = %v; want %s then %s (fork order)", list, a, b)
	}
	e := list[0]
	if e["user"] != DefaultTokenID || e["tokenid"] != nil || e["saved"] != "0" || e["status"] != "RUNNING" || e["endtime"] != nil {
		t.Errorf("active entry = %v; want user %q whole, no tokenid, saved \"0\", RUNNING, no endtime", e, DefaultTokenID)
	}
	if r.env["total"] != float64(2) {
		t.Errorf("total = %v; want 2", r.env["total"])
	}
	// userfilter sees the whole user in the active file, the split one
	// in the archive.
	if got := h.ok("GET", nodePath+"/tasks", vals("source", "active", "userfilter", "!agent")).list(); len(got) != 2 {
		t.Errorf("active userfilter !agent = %v; want both", got)
	}

	h.clock.Advance(testTaskDuration - time.Second) // a ends, b has a second left
	if got := h.ok("GET", nodePath+"/tasks", vals("source", "active")).list(); len(got) != 1 || got[0]["upid"] != b {
		t.Errorf("active after a ended = %v; want only %s", got, b)
	}
	arch := h.ok("GET", nodePath+"/tasks", vals("userfilter", "!agent")).list()
	if len(arch) != 0 {
		t.Errorf("archive userfilter !agent = %v; want none (the archive splits the token off)", arch)
	}
	arch = h.ok("GET", nodePath+"/tasks", nil).list()
	if len(arch) != 1 || arch[0]["upid"] != a || arch[0]["tokenid"] != "agent" || arch[0]["user"] != "felhom-agent@pve" || arch[0]["saved"] != nil {
		t.Errorf("archive = %v; want %s with user and tokenid split", arch, a)
	}
	h.clock.Advance(time.Second)
	if got := h.ok("GET", nodePath+"/tasks", vals("source", "active")).list(); len(got) != 0 {
		t.Errorf("active after both ended = %v; want none", got)
	}
}

// TestTasksStopInEndOrder checks that tasks stop in the order of their
// planned ends, those ending together in the order they were forked, and
// that the archive lists them newest entry first.
func TestTasksStopInEndOrder(t *testing.T) {
	h := newHarness(t)
	var ids []string
	_ = h.sim.with(func(st *state) error {
		for i, d := range []time.Duration{3, 1, 2, 1, 0} {
			t := st.startTask(DefaultTokenID, taskSpec{typ: "vzstart", id: strconv.Itoa(100 + i), duration: d * time.Second})
			ids = append(ids, t.id)
		}
		return nil
	})
	h.clock.Advance(time.Minute)
	var got []string
	for _, e := range h.ok("GET", nodePath+"/tasks", nil).list() {
		got = append(got, e["upid"].(string))
	}
	want := []string{ids[0], ids[2], ids[3], ids[1], ids[4]} // newest end first; 1 before 3 among equal ends
	if !slices.Equal(got, want) {
		t.Errorf("archive order = %v; want %v", got, want)
	}
}

// TestTaskArchiveRotation checks that the archive keeps what PVE's index
// and index.1 keep: the newest tasks, in order, between one and two
// rotations' worth; and that a task beyond it still answers its status,
// as its log file outlives its index entry.
func TestTaskArchiveRotation(t *testing.T) {
	h := newHarness(t)
	const n = 3000
	var ids []string
	for i := range n {
		_ = h.sim.with(func(st *state) error {
			ids = append(ids, st.startTask(DefaultTokenID, taskSpec{typ: "vzstart", id: strconv.Itoa(100 + i%900)}).id)
			return nil
		})
		h.clock.Advance(time.Second)
	}
	r := h.ok("GET", nodePath+"/tasks", vals("limit", "100000"))
	list := r.list()
	line := len(ids[0]) + 1 + 8 + 1 + len("OK") + 1
	lo, hi := archiveMaxBytes/line, 2*(archiveMaxBytes/line+1)
	if len(list) < lo || len(list) > hi || r.env["total"] != float64(len(list)) {
		t.Fatalf("archive lists %d tasks (total %v); want between %d and %d", len(list), r.env["total"], lo, hi)
	}
	for i, e := range list {
		if want := ids[n-1-i]; e["upid"] != want {
			t.Fatalf("archive entry %d = %v; want %s (the newest tasks, newest first)", i, e["upid"], want)
		}
	}
	if st := h.ok("GET", nodePath+"/tasks/"+ids[0]+"/status", nil).object(); st["exitstatus"] != "OK" {
		t.Errorf("status of the first task = %v; want stopped OK", st)
	}
	if got := len(h.sim.Tasks()); got != n {
		t.Errorf("Sim.Tasks has %d tasks; want all %d", got, n)
	}
	if _, ok := h.sim.Task(ids[0]); !ok {
		t.Errorf("Sim.Task(%s) not found", ids[0])
	}
}
