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
// registered and disarmed when the last leaves, so an idle agent has none
// set; the next run re-arms the same timer; a sample that fires while it
// is disarmed (it raced the last run's leaving) does nothing.
func TestMemoryGuardIdle(t *testing.T) {
	g := &memoryGuard{limit: 1} // every sample is over the limit
	stopped := 0
	run := func() *guardedRun {
		return &guardedRun{progress: new(atomic.Uint64), stop: func(uint64) { stopped++ }}
	}
	a, b := run(), run()
	g.watch(a)
	g.watch(b)
	if !g.armed || g.timer == nil {
		t.Fatal("two runs registered, no timer armed")
	}
	timer := g.timer
	g.unwatch(a)
	if !g.armed {
		t.Fatal("a run left while another remains: the timer was disarmed")
	}
	g.unwatch(b)
	if g.armed {
		t.Fatal("the last run left: the timer is still armed")
	}
	g.sample() // fired as the last run left
	if stopped != 0 {
		t.Errorf("a sample of the disarmed timer stopped %d runs; want none", stopped)
	}
	c := run()
	g.watch(c)
	defer g.unwatch(c)
	if !g.armed || g.timer != timer {
		t.Errorf("a run after the last left: armed %v, same timer %v; want the one timer re-armed", g.armed, g.timer == timer)
	}
	g.sample()
	if stopped != 1 || g.armed {
		t.Errorf("a sample over the limit: stopped %d, armed %v; want 1 and disarmed (no run left)", stopped, g.armed)
	}
}
