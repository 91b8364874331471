package e2e

import (
	"maps"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestDurableFlows: serve, on the shipped playbooks, is killed with
// SIGKILL while a shipped flow has a task of a given type in flight on a
// simulator with slow tasks, then started again on the same state. Every
// flow declares resume = True, so the run resumes from its journal and
// succeeds; each guest it touched has run exactly the tasks an
// uninterrupted run of the same flow runs (the task in flight at the kill
// waited for, never sent again), and is left as a finished run leaves it.
// (The self-test's three points are TestCrashMidRun.)
func TestDurableFlows(t *testing.T) {
	t.Parallel()
	requireServe(t)
	type flow struct {
		name     string
		playbook string
		// params of the uninterrupted run and of the interrupted one, and
		// the guests whose tasks each one runs.
		base, crash            map[string]any
		baseGuests, crashGuest []int
		killAt                 string // the worker type in flight at the kill
		check                  func(t *testing.T, sim *simProc)
	}
	running := func(vmid int) func(*testing.T, *simProc) {
		return func(t *testing.T, sim *simProc) {
			if g := sim.guest(t, vmid); !g.Exists || g.Status != "running" {
				t.Errorf("guest %d = %+v; want it running, as a finished run leaves it", vmid, g)
			}
		}
	}
	gone := func(vmid int) func(*testing.T, *simProc) {
		return func(t *testing.T, sim *simProc) {
			if g := sim.guest(t, vmid); g.Exists {
				t.Errorf("scratch guest %d still exists (%s); want it destroyed", vmid, g.Status)
			}
			running(101)(t, sim)
		}
	}
	backup := map[string]any{"vmids": []int{101, 102}, "keep_last": 100}
	flows := []flow{
		{"backup during the first vzdump", "backup", backup, backup, []int{101, 102}, []int{101, 102}, "vzdump:101", func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) }},
		{"backup during the second vzdump", "backup", backup, backup, []int{101, 102}, []int{101, 102}, "vzdump:102", func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) }},
		{"provision during the restore", "provision", map[string]any{"vmid": 120, "hostname": "shop"}, map[string]any{"vmid": 121, "hostname": "shop"}, []int{120}, []int{121}, "vzrestore", running(121)},
		{"provision during the start", "provision", map[string]any{"vmid": 120, "hostname": "shop"}, map[string]any{"vmid": 121, "hostname": "shop"}, []int{120}, []int{121}, "vzstart", running(121)},
		{"restore during the shutdown", "restore", map[string]any{"vmid": 101}, map[string]any{"vmid": 101}, []int{101}, []int{101}, "vzshutdown", running(101)},
		{"restore during the restore", "restore", map[string]any{"vmid": 101}, map[string]any{"vmid": 101}, []int{101}, []int{101}, "vzrestore", running(101)},
		{"drill during the restore", "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 950}, map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 951}, []int{950}, []int{951}, "vzrestore", gone(951)},
		{"drill during the scratch's start", "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 950}, map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 951}, []int{950}, []int{951}, "vzstart", gone(951)},
	}
	counts := func(t *testing.T, sim *simProc, vmids []int) map[string]int {
		out := map[string]int{}
		for _, v := range vmids {
			for typ, n := range taskCounts(sim.tasks(t, "", v)) {
				out[typ] += n
			}
		}
		return out
	}
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, "--task-duration", "1500ms")
			a := startAgent(t, agentOpts{env: sim.env(), playbooks: playbooksDir})

			base := a.waitRun(t, a.startRun(t, f.playbook, f.base).ID, 3*time.Minute, "to finish", finished)
			if base.Status != "succeeded" {
				t.Fatalf("uninterrupted run: %s (%s)", base.Status, base.Error)
			}
			sim.waitTasksDone(t, time.Minute)
			want := counts(t, sim, f.baseGuests)
			before := counts(t, sim, f.crashGuest)

			r := a.startRun(t, f.playbook, f.crash)
			typ, id, _ := strings.Cut(f.killAt, ":")
			r = a.waitRun(t, r.ID, 3*time.Minute, "to have a "+f.killAt+" task in flight", func(run api.Run) bool {
				for _, tk := range run.Tasks {
					if strings.Contains(tk.UPID, ":"+typ+":"+id) && tk.Ended == nil {
						return true
					}
				}
				return run.Ended != nil
			})
			if r.Ended != nil {
				t.Fatalf("the run ended (%s: %s) before a %s task was in flight", r.Status, r.Error, f.killAt)
			}
			a.kill9(t)
			restarted := time.Now()
			a.restart(t)
			r = a.waitRun(t, r.ID, 3*time.Minute, "to resume and finish", finished)
			took := time.Since(restarted)
			if r.Status != "succeeded" || r.Resumes != 1 {
				t.Fatalf("run after kill -9 and restart: %s (%s) %q, %d resumes; want succeeded after one resume", r.Status, r.ErrorKind, r.Error, r.Resumes)
			}
			sim.waitTasksDone(t, time.Minute)
			got := counts(t, sim, f.crashGuest)
			for k, n := range before {
				got[k] -= n
				if got[k] == 0 {
					delete(got, k)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("the resumed run ran tasks %s; an uninterrupted one runs %s (nothing sent twice, nothing left out)", formatCounts(got), formatCounts(want))
			}
			f.check(t, sim)
			record(t, "kill -9 during "+f.killAt+", restart: resumed to succeeded / its tasks",
				"%v, %d replayed / %s", took.Round(time.Millisecond), r.Replayed, formatCounts(got))
		})
	}
}
