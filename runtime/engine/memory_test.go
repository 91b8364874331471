package engine

import (
	"context"
	"path/filepath"
	"regexp"
	rt "runtime"
	"sync/atomic"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// TestMemoryGuard: a run that grows the heap past the limit fails at its
// position with KindMemory, while a run waiting in a builtin at the same
// time is left alone, and the engine runs again afterwards.
func TestMemoryGuard(t *testing.T) {
	sig := enginetest.NewSignal()
	dir := enginetest.WriteTree(t, map[string]string{
		"grow.star": `
def run(ctx):
    chunk = "x" * (1 << 20)
    kept = []
    for i in range(1024):
        kept.append(chunk + str(i))
    return len(kept)

playbook(name = "grow", run = run)
`,
		"wait.star": `
def run(ctx):
    test.block()
    return "waited"

playbook(name = "wait", run = run)
`,
	})
	l, err := NewLoader(dir, LoaderOptions{Tables: enginetest.Tables(sig), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	grow, err := l.Load(filepath.Join(dir, "grow.star"))
	if err != nil {
		t.Fatal(err)
	}
	wait, err := l.Load(filepath.Join(dir, "wait.star"))
	if err != nil {
		t.Fatal(err)
	}
	var ms rt.MemStats
	rt.ReadMemStats(&ms)
	e := NewEngine(Config{Logger: enginetest.Logger(), MaxMemory: int64(ms.HeapAlloc) + 64<<20})

	started := sig.Arm()
	waited := make(chan *Result)
	go func() { waited <- e.Run(context.Background(), wait, nil, RunOptions{}) }()
	<-started

	res := e.Run(context.Background(), grow, nil, RunOptions{})
	if res.Status != runstate.Failed || res.Kind != KindMemory {
		t.Fatalf("grow: status %s kind %q error %q; want failed, %q", res.Status, res.Kind, res.Error, KindMemory)
	}
	if want := regexp.MustCompile(`grow\.star:\d+:\d+: memory limit exceeded: (the agent's heap reached \d+ MiB,|about \d+ MiB more would take the agent's heap \(\d+ MiB\)) over its limit of \d+ MiB`); !want.MatchString(res.Error) {
		t.Errorf("grow: error %q does not match %s", res.Error, want)
	}

	close(sig.Release)
	if w := <-waited; w.Status != runstate.Succeeded {
		t.Errorf("wait: status %s error %q; want succeeded (it allocated nothing)", w.Status, w.Error)
	}
	rt.GC()
	if again := e.Run(context.Background(), wait, nil, RunOptions{}); again.Status != runstate.Succeeded {
		t.Errorf("a run after the guard stopped one: %s %q", again.Status, again.Error)
	}
}

// TestMemoryGuardIdle: the guard's timer is armed while runs are
// registered and disarmed when the last leaves, so an idle agent has none;
// a sample of a timer that was since replaced does nothing.
func TestMemoryGuardIdle(t *testing.T) {
	g := &memoryGuard{limit: 1} // every sample is over the limit
	stopped := 0
	run := func() *guardedRun {
		return &guardedRun{progress: new(atomic.Uint64), stop: func(uint64) { stopped++ }}
	}
	a, b := g.watch(run()), g.watch(run())
	if g.timer == nil {
		t.Fatal("two runs registered, no timer armed")
	}
	a()
	if g.timer == nil {
		t.Fatal("a run left while another remains: the timer was disarmed")
	}
	b()
	if g.timer != nil {
		t.Fatal("the last run left: the timer is still armed")
	}
	old := g.armed
	defer g.watch(run())()
	g.sample(old - 1) // a timer of a generation before
	if stopped != 0 {
		t.Errorf("a stale timer's sample stopped %d runs; want none", stopped)
	}
	g.sample(g.armed)
	if stopped != 1 || g.timer != nil {
		t.Errorf("the current timer's sample over the limit: stopped %d, timer %v; want 1 and disarmed (no run left)", stopped, g.timer)
	}
}
