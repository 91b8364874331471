package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestCrashMidRun: serve is killed with SIGKILL while a run has a Proxmox
// task in flight (at each task of the self-test's task flow: snapshot,
// rollback, snapshot delete), then started again on the same state. The
// self-test (resume = True) resumes from its journal — the task in flight
// waited for, never sent again — and succeeds: the guest is left as a
// finished run leaves it, each task ran exactly as often as in the
// uninterrupted run before, and the earlier run's record is kept.
func TestCrashMidRun(t *testing.T) {
	t.Parallel()
	requireServe(t)
	points := []string{"vzsnapshot", "vzrollback", "vzdelsnapshot"}
	for _, point := range points {
		t.Run("during "+point, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, "--task-duration", "1500ms")
			a := startAgent(t, agentOpts{env: sim.env()})

			// An uninterrupted run first: what a finished run does.
			earlier := a.startRun(t, "selftest", map[string]any{"mode": "task", "vmid": 101})
			earlier = a.waitRun(t, earlier.ID, time.Minute, "to finish", finished)
			if earlier.Status != "succeeded" {
				t.Fatalf("earlier run: %s (%s)", earlier.Status, earlier.Error)
			}

			baseline := taskCounts(sim.tasks(t, "", 101)) // the earlier, finished run's
			r := a.startRun(t, "selftest", map[string]any{"mode": "task", "vmid": 101})
			inFlight := func(run api.Run) (api.Task, bool) {
				for _, tk := range run.Tasks {
					if strings.Contains(tk.UPID, ":"+point+":") && tk.Ended == nil {
						return tk, true
					}
				}
				return api.Task{}, false
			}
			r = a.waitRun(t, r.ID, time.Minute, "to record a "+point+" task in flight", func(run api.Run) bool {
				_, ok := inFlight(run)
				return ok || run.Ended != nil
			})
			task, ok := inFlight(r)
			if !ok {
				t.Fatalf("the run ended (%s: %s) before a %s task was in flight", r.Status, r.Error, point)
			}
			a.kill9(t)

			restarted := time.Now()
			a.restart(t)
			r = a.waitRun(t, r.ID, time.Minute, "to resume and finish", finished)
			recovered := time.Since(restarted)
			if r.Status != "succeeded" || r.Resumes != 1 {
				t.Fatalf("run after restart = %s (%s) %q, %d resumes; want succeeded after one resume", r.Status, r.ErrorKind, r.Error, r.Resumes)
			}
			for _, tk := range r.Tasks {
				if tk.UPID == task.UPID && tk.ExitStatus != "OK" {
					t.Errorf("the task in flight at the kill ended %q; want OK", tk.ExitStatus)
				}
			}
			sim.waitTasksDone(t, time.Minute)
			after := taskCounts(sim.tasks(t, "", 101))
			for typ, n := range baseline {
				if after[typ] != 2*n {
					t.Errorf("guest 101 ran %d %s tasks over both runs; want %d (each run's once: nothing sent twice, nothing left out)", after[typ], typ, 2*n)
				}
			}
			if g := sim.guest(t, 101); len(g.Snapshots) != 0 || g.Status != "running" {
				t.Errorf("guest 101 after the resumed run: %s, snapshots %v; want running with none, as a finished self-test leaves it", g.Status, g.Snapshots)
			}
			if got := a.run(t, earlier.ID); got.Status != "succeeded" {
				t.Errorf("the earlier run is now %s; want its record kept as succeeded", got.Status)
			}
			show := runCmd(t, time.Minute, nil, "runs", "show", r.ID, "--socket", a.socket)
			if first, _, _ := strings.Cut(show.Stdout, "\n"); show.Code != 0 || first != "succeeded" {
				t.Errorf("runs show: exit %d, first line %q; want succeeded", show.Code, first)
			}
			record(t, "kill -9, restart, resume to succeeded / tasks of 101 (two runs)",
				"%v / %s", recovered.Round(time.Millisecond), formatCounts(after))

			// Shut down gracefully and look once more: still nothing repeated.
			if code := a.stop(t); code != 0 {
				t.Errorf("graceful stop exited %d", code)
			}
			if final := taskCounts(sim.tasks(t, "", 101)); !maps.Equal(final, after) {
				t.Errorf("tasks of guest 101 after shutdown: %v; want %v", final, after)
			}
		})
	}
}

// taskCounts counts tasks by type.
func taskCounts(ts []pveTask) map[string]int {
	out := map[string]int{}
	for _, tk := range ts {
		out[tk.Type]++
	}
	return out
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// TestCrashDuringTriggerBurst: 200 signed triggers from 16 senders; serve
// is killed with SIGKILL after the 60th acceptance. After the restart every
// trigger answered 202 is in the store (the hub can read its run), and no
// trigger id has two runs — also after the hub retries all 200.
func TestCrashDuringTriggerBurst(t *testing.T) {
	t.Parallel()
	requireServe(t)
	const total, senders, killAfter = 200, 16, 60
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: append(sim.env(), "FELHOM_AGENT_RUNTIME_MAX_CONCURRENT=32")})

	var (
		mu       sync.Mutex
		accepted = map[string][]string{} // trigger id -> run ids
		refused  = map[int]int{}         // HTTP status -> count (0: no answer)
		nAcc     atomic.Int32
		killOnce sync.Once
		killed   = make(chan struct{})
	)
	ids := make(chan int)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for i := range ids {
				id := fmt.Sprintf("burst-%03d", i)
				code, b, err := a.hubDo(t, hubRequest{method: "POST", path: "/v1/triggers",
					body: triggerBody(t, id, "burst", map[string]any{"n": i})})
				mu.Lock()
				if err == nil && code == http.StatusAccepted {
					var ans triggerAnswer
					if jerr := json.Unmarshal(b, &ans); jerr == nil {
						accepted[id] = runIDs(ans.Runs)
					}
				} else {
					refused[code]++
				}
				mu.Unlock()
				if err == nil && code == http.StatusAccepted && nAcc.Add(1) == killAfter {
					killOnce.Do(func() {
						// Not a.kill9: t.Fatal is for the test's goroutine.
						_ = syscall.Kill(-a.proc.cmd.Process.Pid, syscall.SIGKILL)
						<-a.proc.done
						close(killed)
					})
				}
			}
		})
	}
	for i := range total {
		ids <- i
	}
	close(ids)
	wg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("only %d triggers were accepted; the kill never came", nAcc.Load())
	}

	a.restart(t)
	byKey := map[string][]string{}
	for _, r := range a.runs(t) {
		if r.Source == "hub" {
			byKey[r.Key] = append(byKey[r.Key], r.ID)
		}
	}
	lost := 0
	for id, runs := range accepted {
		for _, runID := range runs {
			if code, _ := a.hubRun(t, runID); code != http.StatusOK {
				t.Errorf("trigger %s was accepted (run %s) but GET /v1/runs/%s answers %d after the restart", id, runID, runID, code)
				lost++
			}
		}
		if !slices.Equal(byKey[id], runs) {
			t.Errorf("trigger %s: accepted with runs %v, the store has %v", id, runs, byKey[id])
		}
	}
	doubled := 0
	for id, runs := range byKey {
		if len(runs) > 1 {
			t.Errorf("trigger %s has %d runs: %v", id, len(runs), runs)
			doubled++
		}
	}
	inStoreBeforeRetry := len(byKey)

	// The hub retries every trigger it sent: the accepted ones come back
	// 200 with the same runs; the others are accepted now, once.
	retried := 0
	for i := range total {
		id := fmt.Sprintf("burst-%03d", i)
		code, ans := a.trigger(t, id, "burst", map[string]any{"n": i})
		if runs, ok := accepted[id]; ok && (code != http.StatusOK || !slices.Equal(runIDs(ans.Runs), runs)) {
			t.Errorf("retry of accepted %s: HTTP %d %v; want 200 %v", id, code, runIDs(ans.Runs), runs)
		}
		if code != http.StatusOK && code != http.StatusAccepted {
			t.Errorf("retry of %s: HTTP %d", id, code)
		}
		retried++
	}
	perID := map[string]int{}
	for _, r := range a.runs(t) {
		if r.Source == "hub" {
			perID[r.Key]++
		}
	}
	for i := range total {
		if id := fmt.Sprintf("burst-%03d", i); perID[id] != 1 {
			t.Errorf("after the retries trigger %s has %d runs; want 1", id, perID[id])
		}
	}
	record(t, "burst of 200: accepted (202) before kill -9 / in store after restart / lost / ids with two runs / runs per id after 200 retries",
		"%d / %d / %d / %d / %d ids with exactly one", len(accepted), inStoreBeforeRetry, lost, doubled, countOnes(perID))
	t.Logf("answers that were not 202 before the restart: %v (0 = no answer)", refused)
}

func countOnes(m map[string]int) int {
	n := 0
	for _, v := range m {
		if v == 1 {
			n++
		}
	}
	return n
}
