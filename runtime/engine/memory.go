package engine

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// heapSample is the runtime/metrics name of the bytes held by live and
// not yet swept heap objects: what a runaway allocation grows.
const heapSample = "/memory/classes/heap/objects:bytes"

// memoryCheckInterval is how often the memory guard samples the heap while
// runs execute. Starlark allocates at most 1 GiB in one step, so a run
// cannot get far past the limit between two samples.
const memoryCheckInterval = 20 * time.Millisecond

// memoryGuard stops runs when the agent's Go heap passes a limit. The Go
// runtime cannot attribute memory to a goroutine, so the guard cannot tell
// which run allocated: when the heap is over the limit it stops every run
// that executed Starlark steps since the previous sample (a run waiting in
// a builtin — on a Proxmox task, say — takes no steps and allocates
// nothing, and is left alone). Each stopped run fails at its position with
// KindMemory; the agent itself keeps serving. After stopping runs the
// guard collects garbage and lets a few samples pass, so runs that merely
// continue are not blamed for memory not yet freed.
//
// The guard samples on one timer, made at the first run and armed only
// while runs are registered; each sample runs on the timer's own
// short-lived goroutine. A run costs the guard no goroutine, ticker or
// timer of its own to start and stop (BenchmarkRunCached), and an idle
// agent nothing but the disarmed timer.
//
// Invariant: armed is true exactly while runs are registered.
type memoryGuard struct {
	limit uint64 // bytes; 0 disables the guard

	mu       sync.Mutex
	runs     map[*guardedRun]struct{}
	timer    *time.Timer // the samples', made by the first watch
	armed    bool        // timer is set to fire
	cooldown int         // samples left before the guard may stop runs again
}

// guardedRun is one run's hook into the guard.
type guardedRun struct {
	progress *atomic.Uint64 // advanced by the run's thread every memoryProbeSteps steps
	parked   *atomic.Int32  // > 0 while the run waits in a waiting builtin (builtins.Env.Parked)
	seen     uint64         // progress at the previous sample
	stop     func(heap uint64)
}

// busy reports whether the run may be the one allocating: it took steps
// since the previous sample, or it is not parked in a waiting builtin. The
// second half matters for work that takes few steps but allocates much
// (s = s + s doubling a string, a large comprehension): such a run may
// take fewer than memoryProbeSteps steps between two samples.
func (r *guardedRun) busy() bool {
	p := r.progress.Load()
	moved := p != r.seen
	r.seen = p
	return moved || r.parked == nil || r.parked.Load() == 0
}

// reserve reports whether n more bytes fit under the limit now: the
// heap's current size plus n, against the limit. Builtins that allocate
// much in one call ask before they start (builtins.Env.Reserve).
func (g *memoryGuard) reserve(n uint64) error {
	if g.limit == 0 {
		return nil
	}
	sample := []metrics.Sample{{Name: heapSample}}
	metrics.Read(sample)
	heap := sample[0].Value.Uint64()
	if n > g.limit || heap > g.limit-n { // heap+n may not fit in 64 bits
		return &memoryError{limit: g.limit, heap: heap, need: n}
	}
	return nil
}

// memoryProbeSteps is how many Starlark steps a run takes between two
// progress marks; small, because one step can allocate a lot.
const memoryProbeSteps = 64

// watch registers a run until unwatch.
func (g *memoryGuard) watch(r *guardedRun) {
	if g.limit == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.runs == nil {
		g.runs = map[*guardedRun]struct{}{}
	}
	g.runs[r] = struct{}{}
	if g.armed {
		return
	}
	g.armed = true
	if g.timer == nil {
		g.timer = time.AfterFunc(memoryCheckInterval, g.sample)
		return
	}
	g.timer.Reset(memoryCheckInterval)
}

// unwatch unregisters a run watch registered (or the guard stopped); the
// last run to leave disarms the timer.
func (g *memoryGuard) unwatch(r *guardedRun) {
	if g.limit == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.runs, r)
	if len(g.runs) == 0 && g.armed {
		g.timer.Stop()
		g.armed = false
	}
}

// sample is one look at the heap; it arms the timer again for the next.
// A sample that fired as the last run left finds the timer disarmed and
// does nothing; one that fired before a new run re-armed it samples a
// little early, which is harmless.
func (g *memoryGuard) sample() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.armed {
		return
	}
	s := []metrics.Sample{{Name: heapSample}}
	metrics.Read(s)
	heap := s[0].Value.Uint64()
	stopped := false
	for r := range g.runs {
		busy := r.busy()
		if busy && heap > g.limit && g.cooldown == 0 {
			r.stop(heap)
			delete(g.runs, r)
			stopped = true
		}
	}
	switch {
	case stopped:
		g.cooldown = 4
		go runtime.GC()
	case g.cooldown > 0:
		g.cooldown--
	}
	if len(g.runs) == 0 {
		g.armed = false
		return
	}
	g.timer.Reset(memoryCheckInterval)
}

// memoryError is why the guard stopped a run, or refused a reservation
// (need > 0).
type memoryError struct{ limit, heap, need uint64 }

func (e *memoryError) Error() string {
	if e.need > 0 {
		return fmt.Sprintf("memory limit exceeded: about %d MiB more would take the agent's heap (%d MiB) over its limit of %d MiB (runtime.max_memory_mib)", e.need>>20, e.heap>>20, e.limit>>20)
	}
	return fmt.Sprintf("memory limit exceeded: the agent's heap reached %d MiB, over its limit of %d MiB (runtime.max_memory_mib)", e.heap>>20, e.limit>>20)
}
