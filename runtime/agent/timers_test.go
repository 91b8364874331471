package agent

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// Timer tests run in a synctest bubble: the clock starts at 2000-01-01
// 00:00:00 UTC and moves only when every goroutine of the bubble waits,
// so hours of schedule pass in no time. The agent runs without listeners
// or watcher (their goroutines wait on the network, which a bubble cannot
// see through), and its store is opened and closed inside the bubble.

// bubbleAgent serves files in the current bubble until stop is called;
// prepare, if set, gets the store first (to record earlier fires).
type bubbleAgent struct {
	*Agent
	sig   *enginetest.Signal
	state string
	stop  func()
}

func startBubbleAgent(t *testing.T, dir, state string, prepare func(*store.Store)) *bubbleAgent {
	t.Helper()
	if prepare != nil {
		st, err := store.Open(state+"/"+StoreFile, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		prepare(st)
		st.Close()
	}
	sig := enginetest.NewSignal()
	a, err := New(Config{
		PlaybooksDir:  dir,
		StateDir:      state,
		NoWatch:       true,
		ShutdownGrace: -1,
		Loader:        engine.LoaderOptions{Tables: enginetest.Tables(sig), Logger: enginetest.Logger()},
		Logger:        enginetest.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return &bubbleAgent{Agent: a, sig: sig, state: state, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}}
}

// timerRuns lists the recorded timer runs' keys, oldest first, after the
// agent has stopped.
func timerRuns(t *testing.T, state string) []store.Run {
	t.Helper()
	st, err := store.Open(state+"/"+StoreFile, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.List(context.Background(), store.Filter{Source: store.SourceTimer})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(runs)
	return runs
}

func keys(runs []store.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.Key
	}
	return out
}

func TestTimersFireOnSchedule(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{
		"tick.star":   agentPlaybook("tick", `    return ctx.trigger`, `schedule = "TZ=UTC */5 * * * *"`),
		"manual.star": agentPlaybook("manual", `    return None`, ""),
	})
	state := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a := startBubbleAgent(t, dir, state, nil)
		time.Sleep(11 * time.Minute)
		synctest.Wait()
		a.stop()
	})
	runs := timerRuns(t, state)
	want := []string{"tick@2000-01-01T00:00:00Z", "tick@2000-01-01T00:05:00Z", "tick@2000-01-01T00:10:00Z"}
	if got := keys(runs); !slices.Equal(got, want) {
		t.Fatalf("timer runs %v; want %v", got, want)
	}
	for _, r := range runs {
		if r.Status != runstate.Succeeded || string(r.Result) != `"timer"` || r.Playbook != "tick" {
			t.Errorf("timer run %+v; want tick succeeded with ctx.trigger = timer", r)
		}
	}
}

func TestTimersCatchUpOnceAfterDowntime(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{
		"hourly.star": agentPlaybook("hourly", `    return None`, `schedule = "TZ=UTC 0 * * * *"`),
		"fresh.star":  agentPlaybook("fresh", `    return None`, `schedule = "TZ=UTC 0 * * * *"`),
	})
	state := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(30 * time.Minute) // 00:30: the agent was down since 20:00 yesterday
		last := time.Date(1999, 12, 31, 20, 0, 0, 0, time.UTC)
		a := startBubbleAgent(t, dir, state, func(st *store.Store) {
			if err := st.TimerMark(context.Background(), "hourly", last); err != nil {
				t.Fatal(err)
			}
		})
		synctest.Wait()
		time.Sleep(40 * time.Minute) // 01:10
		synctest.Wait()
		a.stop()
	})
	// hourly missed 21:00 to 00:00 and catches up once, for 00:00; fresh
	// never fired before, so it has nothing to catch up. Both fire at 01:00.
	want := []string{"hourly@2000-01-01T00:00:00Z", "fresh@2000-01-01T01:00:00Z", "hourly@2000-01-01T01:00:00Z"}
	got := keys(timerRuns(t, state))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("timer runs %v; want %v", got, want)
	}
}

func TestTimersDoNotOverlap(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{
		"slow.star":    agentPlaybook("slow", `    test.block()`, `schedule = "TZ=UTC * * * * *"`),
		"overlap.star": agentPlaybook("overlap", `    test.block()`, `schedule = "TZ=UTC * * * * *", concurrent = True`),
	})
	state := t.TempDir()
	var skipped, skippedOverlap int
	synctest.Test(t, func(t *testing.T) {
		a := startBubbleAgent(t, dir, state, nil)
		time.Sleep(3*time.Minute + 30*time.Second)
		synctest.Wait()
		skipped, skippedOverlap = a.sched.Skipped("slow"), a.sched.Skipped("overlap")
		a.stop() // cancels the blocked runs
	})
	var slow, overlap int
	for _, r := range timerRuns(t, state) {
		switch r.Playbook {
		case "slow":
			slow++
		case "overlap":
			overlap++
		}
		if r.Status != runstate.Interrupted {
			t.Errorf("run %s of %s is %s; want interrupted by the shutdown", r.ID, r.Playbook, r.Status)
		}
	}
	if slow != 1 || skipped != 3 {
		t.Errorf("slow: %d runs, %d ticks skipped; want 1 run and 3 ticks skipped while it ran", slow, skipped)
	}
	if overlap != 4 || skippedOverlap != 0 {
		t.Errorf("overlap: %d runs, %d skipped; want 4 overlapping runs (concurrent = True)", overlap, skippedOverlap)
	}
}

func TestTimersRequiredParamsRecordARefusal(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{
		"needs.star": agentPlaybook("needs", `    return None`, `schedule = "TZ=UTC 0 * * * *", params = {"vmid": param.int()}`),
	})
	state := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		a := startBubbleAgent(t, dir, state, nil)
		synctest.Wait()
		a.stop()
	})
	runs := timerRuns(t, state)
	if len(runs) != 1 || runs[0].Status != runstate.Refused || runs[0].ErrorKind != engine.KindParams ||
		runs[0].Error != "parameter vmid is required (it has no default); a timer passes no parameters" {
		t.Errorf("runs %+v; want one cancelled run saying why", runs)
	}
}
