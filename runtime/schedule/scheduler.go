package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Options configures a [Scheduler]. Only Fire is required.
type Options struct {
	// Fire starts one run of job for the tick scheduled at scheduled. It
	// is called in a goroutine of its own; ctx is Start's context, so it is
	// cancelled when the scheduler stops. Required.
	Fire func(ctx context.Context, job string, scheduled time.Time)
	// LastRun returns the scheduled time of job's last fire as persisted
	// (by MarkRun, in an earlier process), for catch-up; false means job
	// has never fired, and nil means no catch-up at all. It is called
	// with the scheduler's lock held and must not call the Scheduler.
	LastRun func(job string) (time.Time, bool)
	// MarkRun persists that job fires for the tick scheduled at at. It is
	// called before Fire; if it fails the error is logged and the job
	// fires anyway (a missed backup is worse than a repeated catch-up).
	// nil means nothing is persisted.
	MarkRun func(job string, at time.Time) error
	// Logger receives skipped ticks, catch-ups and MarkRun failures; nil
	// discards them.
	Logger *slog.Logger
	// Missed, if set, hears of every tick that did not fire on time: one
	// caught up at start because the process was not running at the tick,
	// and one skipped because the job's previous Fire was still running.
	// why says which, for people. It is called with the scheduler's lock
	// held, so it must return quickly and must not call the Scheduler.
	Missed func(job string, scheduled time.Time, why string)
}

// Scheduler fires jobs on their cron [Spec]s. It reads the clock with
// time.Now and waits with timers, so a testing/synctest bubble controls it.
//
// Semantics:
//
//   - Catch-up: the first time a job is scheduled in this process (at Start
//     for jobs Set before it, at Set after), if LastRun reports a last fire
//     and a tick came after it and before now, the job fires once at once
//     (plus jitter) for the latest such tick, as systemd's Persistent=
//     does. Never more than once, however long the agent was down; never
//     for a job that has not fired before.
//   - Ticks the loop wakes up late for (a suspended host) likewise fire
//     once, for the latest of them.
//   - Jitter: each fire waits a random part of Spec.Jitter after its tick.
//   - No overlap: a tick whose job's previous Fire is still running is
//     skipped, logged and counted ([Scheduler.Skipped]), unless
//     Spec.AllowOverlap.
//   - MarkRun(job, tick) is called before each Fire(ctx, job, tick).
//
// Start runs the loop until its context ends and then returns without
// waiting for Fire calls still running: they see their context cancelled.
// Call Wait after Start has returned to wait for them.
//
// All methods are safe for concurrent use.
type Scheduler struct {
	opts Options
	log  *slog.Logger
	wake chan struct{} // a job changed: recompute the earliest due time
	fwg  sync.WaitGroup

	mu      sync.Mutex
	started bool
	jobs    map[string]*entry
	seen    map[string]bool      // names ever Set: catch-up is only once per name
	fired   map[string]time.Time // last tick fired per name, so a replaced job never fires it again
	running map[string]int       // Fire calls in flight per name
	skipped map[string]int
}

// entry is one job's state.
type entry struct {
	spec    Spec
	tick    time.Time // the next tick to fire for; zero: never
	due     time.Time // when to fire it: tick plus jitter (now for a catch-up)
	catchUp bool      // catch-up still to check when Start runs
}

// New returns a Scheduler with no jobs.
func New(o Options) (*Scheduler, error) {
	if o.Fire == nil {
		return nil, errors.New("schedule: Options.Fire is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		opts:    o,
		log:     log,
		wake:    make(chan struct{}, 1),
		jobs:    map[string]*entry{},
		seen:    map[string]bool{},
		fired:   map[string]time.Time{},
		running: map[string]int{},
		skipped: map[string]int{},
	}, nil
}

// Set adds job with spec, or replaces its spec (a hot reload). Setting the
// spec a job already has changes nothing; a changed spec takes effect from
// now, never re-firing a tick the job already fired. It refuses an empty
// job name, a negative jitter and a Cron that [ParseSpec] would not return.
func (s *Scheduler) Set(job string, spec Spec) error {
	if job == "" {
		return errors.New("schedule: empty job name")
	}
	if spec.Jitter < 0 {
		return fmt.Errorf("schedule: job %q: negative jitter %v", job, spec.Jitter)
	}
	if spec.Location == nil {
		spec.Location = time.Local
	}
	if err := spec.check(); err != nil {
		return fmt.Errorf("schedule: job %q: %w", job, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	old, replacing := s.jobs[job]
	if replacing && sameSpec(old.spec, spec) {
		return nil
	}
	now := time.Now()
	e := &entry{spec: spec, catchUp: replacing && old.catchUp}
	e.tick = atOrAfter(spec, now)
	if f, ok := s.fired[job]; ok && !e.tick.IsZero() && !e.tick.After(f) {
		e.tick = spec.Next(f)
	}
	e.due = s.jittered(spec, e.tick)
	if !s.seen[job] {
		s.seen[job] = true
		if s.started {
			s.catchUp(job, e, now)
		} else {
			e.catchUp = true
		}
	}
	s.jobs[job] = e
	s.poke()
	return nil
}

// Remove stops scheduling job. A Fire of it already running goes on.
func (s *Scheduler) Remove(job string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, job)
	s.poke()
}

// NextRuns returns each job's next scheduled tick (without jitter; for a
// pending catch-up, the missed tick). A job with no next tick is absent.
func (s *Scheduler) NextRuns() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.jobs))
	for name, e := range s.jobs {
		if !e.tick.IsZero() {
			out[name] = e.tick
		}
	}
	return out
}

// Skipped returns how many of job's ticks were skipped because its previous
// Fire was still running, since New.
func (s *Scheduler) Skipped(job string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skipped[job]
}

// Start runs the scheduling loop until ctx ends, then returns nil. It first
// does the catch-up of the jobs Set so far. Calling it twice is an error.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("schedule: Start called twice")
	}
	s.started = true
	now := time.Now()
	for name, e := range s.jobs {
		if e.catchUp {
			s.catchUp(name, e, now)
		}
	}
	s.mu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, ok := s.fireDue(ctx)
		var tc <-chan time.Time
		if ok {
			timer.Reset(time.Until(next))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tc:
		case <-s.wake:
		}
	}
}

// Wait blocks until every Fire call has returned. Call it after Start has
// returned, so that no new Fire can begin.
func (s *Scheduler) Wait() { s.fwg.Wait() }

// firing is one Fire to start.
type firing struct {
	job  string
	tick time.Time
}

// fireDue starts every job whose due time has come, reschedules it, and
// returns the earliest due time left (false: no job will ever fire).
func (s *Scheduler) fireDue(ctx context.Context) (time.Time, bool) {
	s.mu.Lock()
	now := time.Now()
	var start []firing
	for name, e := range s.jobs {
		if e.due.IsZero() || e.due.After(now) {
			continue
		}
		tick := e.tick
		if n := e.spec.Next(tick); !n.IsZero() && !n.After(now) {
			// Woken late (a suspended host, a slow MarkRun, a jitter
			// longer than the interval): the ticks passed since fire once,
			// for the latest, not one by one.
			tick = atOrBefore(e.spec, now)
			s.log.Warn("woke late; firing once for the latest missed tick", "job", name, "scheduled", tick, "was", e.tick)
		}
		if s.running[name] > 0 && !e.spec.AllowOverlap {
			s.skipped[name]++
			s.log.Warn("skipped a tick: the previous run is still going", "job", name, "scheduled", tick)
			s.missed(name, tick, "skipped: the previous run was still going")
		} else {
			s.running[name]++
			s.fired[name] = tick
			start = append(start, firing{name, tick})
		}
		e.tick = e.spec.Next(tick)
		e.due = s.jittered(e.spec, e.tick)
		if e.tick.IsZero() {
			s.log.Error("no next tick; the job will not fire again", "job", name, "spec", e.spec.String())
		}
	}
	var earliest time.Time
	for _, e := range s.jobs {
		if !e.due.IsZero() && (earliest.IsZero() || e.due.Before(earliest)) {
			earliest = e.due
		}
	}
	s.mu.Unlock()

	for _, f := range start {
		if s.opts.MarkRun != nil {
			if err := s.opts.MarkRun(f.job, f.tick); err != nil {
				s.log.Error("recording the run failed; firing anyway", "job", f.job, "scheduled", f.tick, "err", err)
			}
		}
		s.fwg.Add(1)
		go func() {
			defer s.fwg.Done()
			defer func() {
				s.mu.Lock()
				s.running[f.job]--
				s.mu.Unlock()
			}()
			s.opts.Fire(ctx, f.job, f.tick)
		}()
	}
	return earliest, !earliest.IsZero()
}

// catchUp makes e fire at once for the latest tick missed since the job's
// persisted last fire, if there is one. Called with s.mu held.
func (s *Scheduler) catchUp(job string, e *entry, now time.Time) {
	e.catchUp = false
	if s.opts.LastRun == nil {
		return
	}
	last, ok := s.opts.LastRun(job)
	if !ok {
		return
	}
	missed := atOrBefore(e.spec, now)
	if missed.IsZero() || !missed.After(last) {
		return // nothing missed
	}
	e.tick, e.due = missed, s.jittered(e.spec, now)
	s.log.Info("catching up a missed run", "job", job, "scheduled", missed, "last_run", last)
	s.missed(job, missed, "the agent was not running at the tick; it runs now, late")
}

// missed tells Options.Missed, if set. Called with s.mu held.
func (s *Scheduler) missed(job string, tick time.Time, why string) {
	if s.opts.Missed != nil {
		s.opts.Missed(job, tick, why)
	}
}

// jittered returns t plus a random part of spec.Jitter; zero stays zero.
func (s *Scheduler) jittered(spec Spec, t time.Time) time.Time {
	if t.IsZero() || spec.Jitter <= 0 {
		return t
	}
	return t.Add(rand.N(spec.Jitter))
}

// poke wakes the loop without blocking; one pending wake is enough.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// atOrAfter is the first tick at or after t; atOrBefore the last at or
// before t. Ticks are whole seconds, which makes these exact.
func atOrAfter(spec Spec, t time.Time) time.Time  { return spec.Next(t.Add(-time.Nanosecond)) }
func atOrBefore(spec Spec, t time.Time) time.Time { return spec.Prev(t.Add(time.Nanosecond)) }

// sameSpec compares specs; time zones by name (ParseSpec loads a new
// *time.Location each time) and, for fixed zones, offset.
func sameSpec(a, b Spec) bool {
	now := time.Now()
	_, offA := now.In(a.Location).Zone()
	_, offB := now.In(b.Location).Zone()
	return a.Cron == b.Cron && a.Jitter == b.Jitter && a.AllowOverlap == b.AllowOverlap &&
		a.Location.String() == b.Location.String() && offA == offB
}
