package e2e

import (
	"maps"
	"strconv"
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
// Three points name no task in flight: a backup between its guests, a
// backup mid-POST (answer dropped, UPID not stored: the task is adopted),
// and — a deletion in flight — a backup's pruning. (The self-test's three
// points are TestCrashMidRun.)
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
		more                   *flowMore
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
	pruned := map[string]any{"vmids": []int{101, 102}, "keep_last": 1}
	flows := []flow{
		{"backup during the first vzdump", "backup", backup, backup, []int{101, 102}, []int{101, 102}, "vzdump:101", func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) }, nil},
		{"backup during the second vzdump", "backup", backup, backup, []int{101, 102}, []int{101, 102}, "vzdump:102", func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) }, nil},
		{"provision during the restore", "provision", map[string]any{"vmid": 120, "hostname": "shop"}, map[string]any{"vmid": 121, "hostname": "shop"}, []int{120}, []int{121}, "vzrestore", running(121), nil},
		{"provision during the start", "provision", map[string]any{"vmid": 120, "hostname": "shop"}, map[string]any{"vmid": 121, "hostname": "shop"}, []int{120}, []int{121}, "vzstart", running(121), nil},
		{"restore during the shutdown", "restore", map[string]any{"vmid": 101}, map[string]any{"vmid": 101}, []int{101}, []int{101}, "vzshutdown", running(101), nil},
		{"restore during the restore", "restore", map[string]any{"vmid": 101}, map[string]any{"vmid": 101}, []int{101}, []int{101}, "vzrestore", running(101), nil},
		{"drill during the restore", "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 950}, map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 951}, []int{950}, []int{951}, "vzrestore", gone(951), nil},
		{"drill during the scratch's start", "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 950}, map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 951}, []int{950}, []int{951}, "vzstart", gone(951), nil},
	}
	counts := func(t *testing.T, sim *simProc, vmids []int) map[string]int {
		out := map[string]int{}
		// A volume's deletion is a task of id VMID@STORAGE, which the
		// task list's vmid filter does not match (as in Tasks.pm).
		dels := sim.tasks(t, "imgdel", 0)
		for _, v := range vmids {
			for typ, n := range taskCounts(sim.tasks(t, "", v)) {
				out[typ] += n
			}
			for _, d := range dels {
				if strings.HasPrefix(d.ID, strconv.Itoa(v)+"@") {
					out["imgdel"]++
				}
			}
		}
		return out
	}
	// The points a task in flight does not name.
	flows = append(flows,
		// After the first guest's vzdump ended and before the second is
		// posted: the first outcome is batched, not yet durable, so the
		// resumed run waits the recorded task again (it has ended) and
		// lists the storage again. The slow listing holds the run there.
		flow{"backup between guests", "backup", backup, backup, []int{101, 102}, []int{101, 102}, "between vzdump:101 and vzdump:102",
			func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) },
			&flowMore{
				simArgs: []string{"--fault", "latency:1s:GET:/nodes/*/storage/*/content"},
				killWhen: func(_ *testing.T, _ *simProc, run api.Run) bool {
					return hasTask(run, "vzdump", "101", true) && !hasTask(run, "vzdump", "102", false) && !hasTask(run, "vzdump", "102", true)
				},
			}},
		// Retention deleting the first guest's old archive (keep_last 1:
		// each run deletes the archive the run before it made).
		flow{"backup during pruning", "backup", pruned, pruned, []int{101, 102}, []int{101, 102}, "imgdel:101@",
			func(t *testing.T, sim *simProc) {
				running(101)(t, sim)
				running(102)(t, sim)
				n := map[int]int{}
				for _, v := range sim.backups(t, "usb-backup") {
					n[v.VMID]++
				}
				if n[101] != 1 || n[102] != 1 {
					t.Errorf("usb-backup holds %d archives of 101 and %d of 102; want 1 each (keep_last 1)", n[101], n[102])
				}
			}, nil},
		// Mid-POST: the first vzdump's POST is applied but its answer
		// dropped; the agent is killed while it looks the task up (a slow
		// task list), before the UPID is stored. The resumed run adopts the
		// task the journal's intent names instead of posting it again.
		flow{"backup mid-POST, before the UPID is stored", "backup", backup, backup, nil, []int{101, 102}, "vzdump:101 posted, UPID not stored",
			func(t *testing.T, sim *simProc) { running(101)(t, sim); running(102)(t, sim) },
			&flowMore{
				simArgs: []string{"--fault", "drop:POST:/nodes/*/vzdump:count=1:after", "--fault", "latency:2s:GET:/nodes/*/tasks"},
				want:    map[string]int{"vzdump": 2},
				killWhen: func(t *testing.T, sim *simProc, run api.Run) bool {
					return len(sim.tasks(t, "vzdump", 101)) > 0 && !hasTask(run, "vzdump", "101", false) && !hasTask(run, "vzdump", "101", true)
				},
				adopted: 1,
			}},
	)
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			more := f.more
			if more == nil {
				more = &flowMore{}
			}
			sim := startSim(t, append([]string{"--task-duration", "1500ms"}, more.simArgs...)...)
			a := startAgent(t, agentOpts{env: sim.env(), playbooks: playbooksDir})

			want := more.want
			if want == nil {
				base := a.waitRun(t, a.startRun(t, f.playbook, f.base).ID, 3*time.Minute, "to finish", finished)
				if base.Status != "succeeded" {
					t.Fatalf("uninterrupted run: %s (%s)", base.Status, base.Error)
				}
				sim.waitTasksDone(t, time.Minute)
				want = counts(t, sim, f.baseGuests)
			}
			before := counts(t, sim, f.crashGuest)

			r := a.startRun(t, f.playbook, f.crash)
			typ, id, _ := strings.Cut(f.killAt, ":")
			at := more.killWhen
			if at == nil {
				at = func(_ *testing.T, _ *simProc, run api.Run) bool { return hasTask(run, typ, id, false) }
			}
			r = a.waitRun(t, r.ID, 3*time.Minute, "to reach "+f.killAt, func(run api.Run) bool {
				return run.Ended != nil || at(t, sim, run)
			})
			if r.Ended != nil {
				t.Fatalf("the run ended (%s: %s) before it reached %s", r.Status, r.Error, f.killAt)
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
			// The default kill condition is the task in the run's record,
			// which is also the journal call's UPID (one write, with the
			// call): the resume waits for that task and adopts none.
			if r.Adopted != more.adopted {
				t.Errorf("the resumed run adopted %d tasks; want %d", r.Adopted, more.adopted)
			}
			f.check(t, sim)
			record(t, "kill -9 during "+f.killAt+", restart: resumed to succeeded / its tasks",
				"%v, %d replayed / %s", took.Round(time.Millisecond), r.Replayed, formatCounts(got))
		})
	}
}

// flowMore is what a TestDurableFlows point needs beyond a task in flight.
type flowMore struct {
	simArgs []string // the simulator's extra arguments (faults)
	// want, when set, is the tasks the run must run, and no uninterrupted
	// run measures them (one would meet the faults first).
	want map[string]int
	// killWhen says the run reached the kill point.
	killWhen func(t *testing.T, sim *simProc, run api.Run) bool
	adopted  int // the tasks the resume must adopt
}

// hasTask says run has a task of worker typ whose id starts with id:
// ended, or in flight.
func hasTask(run api.Run, typ, id string, ended bool) bool {
	for _, tk := range run.Tasks {
		if strings.Contains(tk.UPID, ":"+typ+":"+id) && (tk.Ended != nil) == ended {
			return true
		}
	}
	return false
}
