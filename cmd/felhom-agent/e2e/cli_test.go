package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestRunListParam: `run --param NAME=a,b` gives a list parameter two
// elements, as `run --help` and the param.list doc promise.
func TestRunListParam(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "50ms")
	out := shipped(t, sim, "backup.star", params("vmids=101,102")...)
	if out.Summary == nil || out.Summary.Status != "succeeded" {
		t.Fatalf("run backup --param vmids=101,102: exit %d\nstderr: %s", out.Code, tail(out.Stderr, 1000))
	}
	for _, vmid := range []string{"101", "102"} {
		if n := len(tasksOf(out.Summary.Tasks, "vzdump", vmid)); n != 1 {
			t.Errorf("%d vzdump tasks of %s; want 1", n, vmid)
		}
	}
}

// TestLocalCLI: the client commands round-trip through the socket: list
// playbooks, trigger (with typed and list parameters) and follow, list and
// show runs, cancel a run in flight; without an agent they say so.
func TestLocalCLI(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "30s")
	a := startAgent(t, agentOpts{env: sim.env()})
	cli := func(args ...string) result {
		t.Helper()
		return runCmd(t, 2*time.Minute, nil, append(args, "--socket", a.socket)...)
	}

	pbs := cli("playbooks")
	for _, want := range []string{"selftest", "burst", "hold", "typed"} {
		if pbs.Code != 0 || !strings.Contains(pbs.Stdout, want) {
			t.Errorf("playbooks: exit %d, output lacks %q:\n%s%s", pbs.Code, want, pbs.Stdout, pbs.Stderr)
		}
	}

	tr := cli("trigger", "selftest", "--param", "mode=read", "--follow")
	if tr.Code != 0 || !strings.Contains(tr.Stdout, "SUCCEEDED") {
		t.Fatalf("trigger --follow: exit %d\n%s%s", tr.Code, tr.Stdout, tr.Stderr)
	}
	var followedID string
	if _, err := fmt.Sscanf(tr.Stdout, "started run %s", &followedID); err != nil {
		t.Fatalf("trigger --follow printed no run id: %q", tr.Stdout)
	}

	typed := cli("trigger", "typed", "--param", "token="+paramSecret, "--param", "count=3", "--param", "only=1,2", "--json")
	var run api.Run
	if typed.Code != 0 || json.Unmarshal([]byte(typed.Stdout), &run) != nil {
		t.Errorf("trigger typed with a list: exit %d\n%s%s", typed.Code, typed.Stdout, typed.Stderr)
	} else {
		run = a.waitRun(t, run.ID, time.Minute, "to finish", finished)
		if run.Status != "succeeded" || !strings.Contains(string(run.Params), `"only":[1,2]`) || strings.Contains(string(run.Params), paramSecret) {
			t.Errorf("typed run: %s, params %s; want succeeded with only [1,2] and the token redacted", run.Status, run.Params)
		}
	}

	bad := cli("trigger", "typed", "--param", "token=x", "--param", "count=many")
	if bad.Code == 0 || !strings.Contains(bad.Stderr, "count") {
		t.Errorf("trigger with a bad int: exit %d, stderr %q; want a refusal naming count", bad.Code, bad.Stderr)
	}

	list := cli("runs", "list", "--json")
	var runs []api.Run
	if list.Code != 0 || json.Unmarshal([]byte(list.Stdout), &runs) != nil ||
		!slices.ContainsFunc(runs, func(r api.Run) bool { return r.ID == followedID && r.Status == "succeeded" }) {
		t.Errorf("runs list --json: exit %d, no succeeded run %s\n%s", list.Code, followedID, tail(list.Stdout+list.Stderr, 1000))
	}

	// A run with a 30 s task in flight, cancelled from the CLI.
	long := a.startRun(t, "selftest", map[string]any{"mode": "task", "vmid": 101})
	a.waitRun(t, long.ID, time.Minute, "to have a task in flight", func(r api.Run) bool { return len(r.Tasks) > 0 })
	cancelled := time.Now()
	if c := cli("runs", "cancel", long.ID); c.Code != 0 {
		t.Errorf("runs cancel: exit %d %s", c.Code, c.Stderr)
	}
	// The cancel undoes the run: its compensations wait for the snapshot
	// task in flight, delete the snapshot and start the guest again.
	long = a.waitRun(t, long.ID, 4*time.Minute, "to stop and be undone", finished)
	stopped := time.Since(cancelled)
	if long.Status != "cancelled" || !strings.Contains(long.Error, "undone: 2 compensation(s) ran") {
		t.Errorf("cancelled run: %s (%s); want cancelled, its snapshot and power state undone", long.Status, long.Error)
	}
	show := cli("runs", "show", long.ID)
	if first, _, _ := strings.Cut(show.Stdout, "\n"); show.Code != 0 || first != "cancelled" {
		t.Errorf("runs show: exit %d, first line %q; want cancelled", show.Code, first)
	}
	if f := cli("runs", "follow", long.ID); f.Code != 1 {
		t.Errorf("runs follow of a cancelled run: exit %d; want 1", f.Code)
	}
	if g := sim.guest(t, 101); len(g.Snapshots) != 0 || g.Status != "running" {
		t.Errorf("guest 101 after the cancelled self-test: %s, snapshots %v; want running with none (undone)", g.Status, g.Snapshots)
	}
	record(t, "cancel from the CLI to run stopped and undone (30 s tasks: the one in flight, then the snapshot's delete)", "%v", stopped.Round(time.Millisecond))

	// Without an agent on the socket.
	dir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	none := runCmd(t, time.Minute, nil, "runs", "list", "--socket", filepath.Join(dir, "none.sock"))
	if none.Code == 0 || !strings.Contains(none.Stderr, "is the agent running?") {
		t.Errorf("runs list without an agent: exit %d, stderr %q", none.Code, none.Stderr)
	}
}
