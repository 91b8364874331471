package pvesim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func TestTaskStatusAndUPID(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/lxc/102/status/shutdown", nil)
	u, err := proxmox.ParseUPID(upid)
	if err != nil {
		t.Fatalf("ParseUPID(%s): %v", upid, err)
	}
	if u.String() != upid || u.Node != DefaultNode || u.Type != "vzshutdown" || u.ID != "102" || u.User != DefaultTokenID {
		t.Errorf("UPID %s parsed as %+v", upid, u)
	}
	if !u.StartTime.Equal(testStart) {
		t.Errorf("UPID start %v; want %v", u.StartTime, testStart)
	}
	want := fmt.Sprintf("UPID:%s:%08X:%08X:%08X:vzshutdown:102:%s:", DefaultNode, u.PID, u.PStart, testStart.Unix(), DefaultTokenID)
	if upid != want {
		t.Errorf("UPID = %s; want PVE's format %s", upid, want)
	}

	st := h.ok("GET", nodePath+"/tasks/"+upid+"/status", nil).object()
	if st["status"] != "running" || st["exitstatus"] != nil {
		t.Errorf("running status = %v; want running and no exitstatus", st)
	}
	if st["user"] != "felhom-agent@pve" || st["tokenid"] != "agent" || st["upid"] != upid ||
		st["type"] != "vzshutdown" || st["id"] != "102" || st["pid"] != float64(u.PID) || st["starttime"] != float64(testStart.Unix()) {
		t.Errorf("status = %v; want PVE's fields (user and tokenid split)", st)
	}
	h.clock.Advance(testTaskDuration - time.Second)
	if s := h.ok("GET", nodePath+"/tasks/"+upid+"/status", nil).object()["status"]; s != "running" {
		t.Errorf("status before the end = %v", s)
	}
	h.clock.Advance(time.Second)
	st = h.ok("GET", nodePath+"/tasks/"+upid+"/status", nil).object()
	if st["status"] != "stopped" || st["exitstatus"] != "OK" {
		t.Errorf("status at the end = %v; want stopped OK", st)
	}
}

func TestTaskLog(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "compress", "zstd"))
	lines := h.wantExit(upid, "OK")
	if len(lines) < 10 {
		t.Fatalf("vzdump log has %d lines", len(lines))
	}
	r := h.ok("GET", nodePath+"/tasks/"+upid+"/log", vals("start", "2", "limit", "3"))
	page := r.list()
	if len(page) != 3 || page[0]["n"] != float64(3) || page[0]["t"] != lines[2] || page[2]["n"] != float64(5) {
		t.Errorf("log page start=2 limit=3 = %v", page)
	}
	if r.env["total"] != float64(len(lines)) {
		t.Errorf("total = %v; want %d", r.env["total"], len(lines))
	}
	def := h.ok("GET", nodePath+"/tasks/"+upid+"/log", nil).list()
	if len(def) != min(50, len(lines)) {
		t.Errorf("default limit gave %d lines", len(def))
	}

	bogus := strings.Replace(upid, ":vzdump:", ":vzstart:", 1)
	if got := h.ok("GET", nodePath+"/tasks/"+bogus+"/log", nil).list(); len(got) != 1 || got[0]["t"] != "unable to open file - No such file or directory" {
		t.Errorf("log of an unknown task = %v", got)
	}
	r = h.fails("GET", nodePath+"/tasks/"+bogus+"/status", nil, 400, "Parameter verification failed.")
	if r.errors()["upid"] != "no such task" {
		t.Errorf("errors = %v", r.errors())
	}
	r = h.fails("GET", nodePath+"/tasks/UPID:bad/status", nil, 400, "Parameter verification failed.")
	if r.errors()["upid"] != "unable to parse worker upid" {
		t.Errorf("errors = %v", r.errors())
	}
}

func TestTaskList(t *testing.T) {
	h := newHarness(t)
	a := h.upid("POST", nodePath+"/lxc/101/status/shutdown", nil)
	h.finish(a)
	h.sim.FailNextTask("vzsnapshot", 102, "boom")
	b := h.upid("POST", nodePath+"/lxc/102/snapshot", vals("snapname", "s1"))
	h.finish(b)
	c := h.upid("POST", nodePath+"/lxc/102/status/shutdown", nil) // running

	ids := func(items []map[string]any) []string {
		var out []string
		for _, it := range items {
			out = append(out, it["upid"].(string))
		}
		return out
	}
	tests := []struct {
		params []string
		want   []string
	}{
		{nil, []string{b, a}},
		{[]string{"source", "active"}, []string{c}},
		{[]string{"source", "all"}, []string{c, b, a}},
		{[]string{"errors", "1"}, []string{b}},
		{[]string{"typefilter", "vzshutdown", "source", "all"}, []string{c, a}},
		{[]string{"vmid", "102", "source", "all"}, []string{c, b}},
		{[]string{"limit", "1"}, []string{b}},
		{[]string{"start", "1"}, []string{a}},
		{[]string{"statusfilter", "ok"}, []string{a}},
		{[]string{"userfilter", "root"}, nil},
	}
	for _, tc := range tests {
		r := h.ok("GET", nodePath+"/tasks", vals(tc.params...))
		if got := ids(r.list()); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("tasks %v = %v; want %v", tc.params, got, tc.want)
		}
	}
	all := h.ok("GET", nodePath+"/tasks", vals("source", "all")).list()
	if all[0]["status"] != "RUNNING" || all[1]["status"] != "boom" || all[2]["status"] != "OK" || all[2]["endtime"] == nil {
		t.Errorf("statuses = %v", all)
	}
}

func TestStopTask(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup"))
	if h.guest(101).Lock != "backup" {
		t.Fatal("no backup lock")
	}
	r := h.ok("DELETE", nodePath+"/tasks/"+upid, nil)
	if string(r.raw) != `{"data":null}` {
		t.Errorf("stop = %s; want null", r.raw)
	}
	st := h.ok("GET", nodePath+"/tasks/"+upid+"/status", nil).object()
	if st["status"] != "stopped" || st["exitstatus"] != "interrupted by signal" {
		t.Errorf("stopped task = %v", st)
	}
	if h.guest(101).Lock != "" {
		t.Error("stopping a vzdump must release its lock")
	}
	log := h.log(upid)
	if log[len(log)-1] != "TASK ERROR: interrupted by signal" {
		t.Errorf("log ends %q", log[len(log)-1])
	}
	h.ok("DELETE", nodePath+"/tasks/"+upid, nil) // stopping a stopped task is fine
}

func TestTaskViews(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/lxc/101/status/stop", nil)
	v, ok := h.sim.Task(upid)
	if !ok || !v.Running || v.Type != "vzstop" || v.User != DefaultTokenID {
		t.Errorf("Task = %+v, %v", v, ok)
	}
	h.clock.Advance(time.Hour)
	v, _ = h.sim.Task(upid)
	if v.Running || v.ExitStatus != "OK" || v.Log[len(v.Log)-1] != "TASK OK" {
		t.Errorf("Task after its end = %+v", v)
	}
	if _, ok := h.sim.Task("UPID:nope"); ok {
		t.Error("Task(unknown) found something")
	}
}

func TestTaskDurationKnob(t *testing.T) {
	clock := &fakeClock{t: testStart}
	for _, tc := range []struct {
		d    time.Duration
		want time.Duration
	}{{0, DefaultTaskDuration}, {-1, 0}, {time.Minute, time.Minute}} {
		s := &Sim{TaskDuration: tc.d, Now: clock.Now}
		if got := s.taskDuration(); got != tc.want {
			t.Errorf("TaskDuration %v: %v; want %v", tc.d, got, tc.want)
		}
	}
	if New().TaskDuration != DefaultTaskDuration {
		t.Error("New does not spell out the default task duration")
	}
}

// The paging rules of pve-common PVE::Tools::dump_logfile: limit=0 reads
// the whole log, a start past the end reads nothing (total stays the
// count), and a running task with no output yet reads "no content".
func TestTaskLogPaging(t *testing.T) {
	h := newHarness(t)
	// vzstart writes nothing until it ends.
	h.ok("POST", nodePath+"/lxc/101/status/stop", nil)
	h.clock.Advance(time.Hour)
	upid := h.upid("POST", nodePath+"/lxc/101/status/start", nil)
	r := h.ok("GET", nodePath+"/tasks/"+upid+"/log", nil)
	if string(r.raw) != `{"data":[{"n":1,"t":"no content"}],"total":1}` {
		t.Errorf("log of a running task without output = %s; want PVE's no-content line", r.raw)
	}
	h.wantExit(upid, "OK")

	long := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102,9999", "storage", "usb-backup"))
	lines := h.wantExit(long, "OK")
	if len(lines) <= 50 {
		t.Fatalf("a three-guest vzdump log has %d lines; the test needs more than 50", len(lines))
	}
	all := h.ok("GET", nodePath+"/tasks/"+long+"/log", vals("limit", "0"))
	if got := all.list(); len(got) != len(lines) || got[len(got)-1]["t"] != "TASK OK" || all.env["total"] != float64(len(lines)) {
		t.Errorf("limit=0 gave %d lines (total %v); want all %d", len(got), all.env["total"], len(lines))
	}
	tail := h.ok("GET", nodePath+"/tasks/"+long+"/log", vals("start", "40", "limit", "0")).list()
	if len(tail) != len(lines)-40 || tail[0]["n"] != float64(41) {
		t.Errorf("start=40 limit=0 gave %d lines from n=%v; want %d from 41", len(tail), tail[0]["n"], len(lines)-40)
	}
	past := h.ok("GET", nodePath+"/tasks/"+long+"/log", vals("start", "1000"))
	if string(past.raw) != fmt.Sprintf(`{"data":[],"total":%d}`, len(lines)) {
		t.Errorf("start past the end = %s; want no lines and the count", past.raw)
	}
}
