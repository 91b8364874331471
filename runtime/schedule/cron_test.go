package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Every test here runs in a synctest bubble: the clock starts at midnight
// UTC 2000-01-01 (a Saturday) and jumps whenever every goroutine waits, so
// a simulated day takes microseconds and nothing depends on real timing.

// event is one callback the scheduler made.
type event struct {
	kind      string // "mark" or "fire"
	job       string
	scheduled time.Time
	at        time.Time // time.Now() in the callback
}

// recorder collects events; fireFor, when set, is how long each Fire takes
// (or until its context ends).
type recorder struct {
	mu      sync.Mutex
	events  []event
	fireFor time.Duration
	ctxErrs []error // ctx.Err() after each Fire returned
}

func (r *recorder) fire(ctx context.Context, job string, scheduled time.Time) {
	r.add(event{"fire", job, scheduled, time.Now()})
	if r.fireFor > 0 {
		select {
		case <-time.After(r.fireFor):
		case <-ctx.Done():
		}
	}
	r.mu.Lock()
	r.ctxErrs = append(r.ctxErrs, ctx.Err())
	r.mu.Unlock()
}

func (r *recorder) mark(job string, at time.Time) error {
	r.add(event{"mark", job, at, time.Now()})
	return nil
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// fires returns the fire events of job ("" for all jobs).
func (r *recorder) fires(job string) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if e.kind == "fire" && (job == "" || e.job == job) {
			out = append(out, e)
		}
	}
	return out
}

// running is a Scheduler started in the current bubble.
type running struct {
	*Scheduler
	cancel context.CancelFunc
	done   chan error
}

// start creates a Scheduler with o (Fire and MarkRun from r unless set),
// lets set add jobs, and starts it.
func start(t *testing.T, r *recorder, o Options, set func(*Scheduler)) *running {
	t.Helper()
	if o.Fire == nil {
		o.Fire = r.fire
	}
	if o.MarkRun == nil {
		o.MarkRun = r.mark
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &running{s, cancel, make(chan error, 1)}
	go func() { rs.done <- s.Start(ctx) }()
	return rs
}

// stop cancels the scheduler, checks Start returned nil, and waits for
// every Fire.
func (rs *running) stop(t *testing.T) {
	t.Helper()
	rs.cancel()
	if err := <-rs.done; err != nil {
		t.Errorf("Start returned %v; want nil after cancel", err)
	}
	rs.Wait()
}

func set(t *testing.T, s *Scheduler, job, expr string, mod func(*Spec)) {
	t.Helper()
	spec, err := ParseSpec(expr, "UTC")
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(&spec)
	}
	if err := s.Set(job, spec); err != nil {
		t.Fatal(err)
	}
}

// sleepUntil advances the bubble's clock to t.
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// day0 is the bubble's start, 2000-01-01 00:00 UTC.
var day0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func scheduledTimes(es []event) []time.Time {
	out := make([]time.Time, len(es))
	for i, e := range es {
		out[i] = e.scheduled.UTC()
	}
	return out
}

func equalTimes(a, b []time.Time) bool { return slices.EqualFunc(a, b, time.Time.Equal) }

func TestSchedulerFiresOverADay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		rs := start(t, r, Options{}, func(s *Scheduler) {
			set(t, s, "six-hourly", "0 */6 * * *", nil)
			set(t, s, "lunch", "30 12 * * *", nil)
			set(t, s, "weekdays", "0 9 * * MON-FRI", nil) // 2000-01-01 is a Saturday
		})
		sleepUntil(at(23, 59))
		rs.stop(t)

		want := map[string][]time.Time{
			"six-hourly": {at(0, 0), at(6, 0), at(12, 0), at(18, 0)},
			"lunch":      {at(12, 30)},
			"weekdays":   nil,
		}
		for job, w := range want {
			fs := r.fires(job)
			if got := scheduledTimes(fs); !equalTimes(got, w) {
				t.Errorf("%s fired for %v; want %v", job, got, w)
			}
			for _, f := range fs {
				if !f.at.Equal(f.scheduled) {
					t.Errorf("%s: fire for %v came at %v; want on time (no jitter)", job, f.scheduled, f.at)
				}
			}
		}
		// MarkRun comes before each Fire, with the same scheduled time.
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, e := range r.events {
			if e.kind != "fire" {
				continue
			}
			marked := slices.ContainsFunc(r.events[:i], func(m event) bool {
				return m.kind == "mark" && m.job == e.job && m.scheduled.Equal(e.scheduled)
			})
			if !marked {
				t.Errorf("%s fired for %v without MarkRun before it", e.job, e.scheduled)
			}
		}
	})
}

func TestSchedulerNextRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rs := start(t, &recorder{}, Options{}, func(s *Scheduler) {
			set(t, s, "a", "0 3 * * *", nil)
			set(t, s, "b", "*/10 * * * *", nil)
		})
		sleepUntil(at(0, 5))
		got := rs.NextRuns()
		want := map[string]time.Time{"a": at(3, 0), "b": at(0, 10)}
		if len(got) != len(want) || !got["a"].Equal(want["a"]) || !got["b"].Equal(want["b"]) {
			t.Errorf("NextRuns() = %v; want %v", got, want)
		}
		rs.stop(t)
	})
}

// TestSchedulerDST runs a 02:30 Budapest job and an hourly one over both
// 2026 DST changes: the 02:30 skipped in spring fires at 03:00 CEST, the
// 02:30 that happens twice in autumn fires once, and every wall-clock
// hour fires once.
func TestSchedulerDST(t *testing.T) {
	bp := budapest(t)
	tests := []struct {
		name      string
		from, to  time.Time
		daily     []time.Time
		localDay  time.Time // the DST day, for counting the hourly fires
		hourlyDay int
	}{
		{
			name: "spring forward", from: time.Date(2026, 3, 28, 12, 0, 0, 0, bp), to: time.Date(2026, 3, 31, 0, 0, 0, 0, bp),
			daily:    []time.Time{time.Date(2026, 3, 29, 3, 0, 0, 0, bp), time.Date(2026, 3, 30, 2, 30, 0, 0, bp)},
			localDay: time.Date(2026, 3, 29, 0, 0, 0, 0, bp), hourlyDay: 23,
		},
		{
			name: "fall back", from: time.Date(2026, 10, 24, 12, 0, 0, 0, bp), to: time.Date(2026, 10, 27, 0, 0, 0, 0, bp),
			daily:    []time.Time{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Date(2026, 10, 26, 2, 30, 0, 0, bp)},
			localDay: time.Date(2026, 10, 25, 0, 0, 0, 0, bp), hourlyDay: 24,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(tt.from)
				r := &recorder{}
				rs := start(t, r, Options{}, func(s *Scheduler) {
					set(t, s, "daily", "TZ=Europe/Budapest 30 2 * * *", nil)
					set(t, s, "hourly", "TZ=Europe/Budapest 0 * * * *", nil)
				})
				sleepUntil(tt.to)
				rs.stop(t)
				if got := scheduledTimes(r.fires("daily")); !equalTimes(got, tt.daily) {
					t.Errorf("daily fired for %v; want %v", got, tt.daily)
				}
				n := 0
				for _, f := range r.fires("hourly") {
					if y, m, d := f.scheduled.In(bp).Date(); y == tt.localDay.Year() && m == tt.localDay.Month() && d == tt.localDay.Day() {
						n++
					}
				}
				if n != tt.hourlyDay {
					t.Errorf("hourly fired %d times on %v; want %d", n, tt.localDay.Format(time.DateOnly), tt.hourlyDay)
				}
			})
		})
	}
}

func TestSchedulerCatchUp(t *testing.T) {
	day := func(d, h int) time.Time { return day0.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
	tests := []struct {
		name    string
		startAt time.Time // when the agent starts
		last    time.Time // persisted last fire; zero: none
		noStore bool      // LastRun is nil
		want    []time.Time
		// caughtUp: the first fire is a catch-up, which Missed hears of.
		caughtUp bool
	}{
		{name: "missed one", startAt: day(1, 10), last: day(0, 3), want: []time.Time{day(1, 3), day(2, 3)}, caughtUp: true},
		{name: "down for days fires once", startAt: day(5, 10), last: day(0, 3), want: []time.Time{day(5, 3), day(6, 3)}, caughtUp: true},
		{name: "nothing missed", startAt: day(1, 10), last: day(1, 3), want: []time.Time{day(2, 3)}},
		{name: "never ran", startAt: day(1, 10), want: []time.Time{day(2, 3)}},
		{name: "no store", startAt: day(1, 10), noStore: true, want: []time.Time{day(2, 3)}},
		{name: "start on the tick fires once", startAt: day(1, 3), last: day(0, 3), want: []time.Time{day(1, 3), day(2, 3)}, caughtUp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(tt.startAt)
				r := &recorder{}
				var missed []time.Time
				o := Options{LastRun: func(job string) (time.Time, bool) { return tt.last, !tt.last.IsZero() },
					Missed: func(job string, tick time.Time, why string) {
						if !strings.Contains(why, "not running") {
							t.Errorf("Missed(%s, %v, %q); want a catch-up", job, tick, why)
						}
						missed = append(missed, tick)
					}}
				if tt.noStore {
					o.LastRun = nil
				}
				rs := start(t, r, o, func(s *Scheduler) { set(t, s, "backup", "0 3 * * *", nil) })
				sleepUntil(tt.startAt.Add(26 * time.Hour))
				rs.stop(t)
				fs := r.fires("backup")
				if got := scheduledTimes(fs); !equalTimes(got, tt.want) {
					t.Fatalf("fired for %v; want %v", got, tt.want)
				}
				if fs[0].scheduled.Before(tt.startAt) && !fs[0].at.Equal(tt.startAt) {
					t.Errorf("catch-up came at %v; want at start, %v", fs[0].at, tt.startAt)
				}
				// Missed hears of exactly the caught-up tick.
				var wantMissed []time.Time
				if tt.caughtUp {
					wantMissed = tt.want[:1]
				}
				if !equalTimes(missed, wantMissed) {
					t.Errorf("Missed heard %v; want %v", missed, wantMissed)
				}
			})
		})
	}
}

// TestSchedulerCatchUpOnLaterSet: a job that appears after Start (the
// registry loads playbooks after the scheduler starts) still catches up,
// and replacing it later does not catch up again.
func TestSchedulerCatchUpOnLaterSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleepUntil(at(10, 0))
		r := &recorder{}
		calls := 0
		rs := start(t, r, Options{LastRun: func(string) (time.Time, bool) { calls++; return at(3, 0).AddDate(0, 0, -1), true }}, nil)
		sleepUntil(at(11, 0))
		set(t, rs.Scheduler, "backup", "0 3 * * *", nil)
		synctest.Wait()
		set(t, rs.Scheduler, "backup", "0 4 * * *", nil)
		sleepUntil(at(23, 0))
		rs.stop(t)
		fs := r.fires("backup")
		if got := scheduledTimes(fs); !equalTimes(got, []time.Time{at(3, 0)}) || !fs[0].at.Equal(at(11, 0)) {
			t.Errorf("fires = %+v; want one catch-up for 03:00 at 11:00", fs)
		}
		if calls != 1 {
			t.Errorf("LastRun called %d times; want once", calls)
		}
	})
}

func TestSchedulerJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const jitter = 10 * time.Minute
		r := &recorder{}
		rs := start(t, r, Options{}, func(s *Scheduler) {
			set(t, s, "hourly", "0 * * * *", func(sp *Spec) { sp.Jitter = jitter })
		})
		sleepUntil(at(23, 59))
		rs.stop(t)
		fs := r.fires("hourly")
		if len(fs) != 24 {
			t.Fatalf("fired %d times; want 24", len(fs))
		}
		delayed := 0
		for i, f := range fs {
			if !f.scheduled.Equal(at(i, 0)) {
				t.Errorf("fire %d scheduled %v; want %v (jitter must not change the tick)", i, f.scheduled, at(i, 0))
			}
			if d := f.at.Sub(f.scheduled); d < 0 || d >= jitter {
				t.Errorf("fire for %v came %v after it; want in [0, %v)", f.scheduled, d, jitter)
			} else if d > 0 {
				delayed++
			}
		}
		// 24 draws from [0, 10m) in nanoseconds are all zero with
		// probability 1e-(24*11): this is not a flaky check.
		if delayed == 0 {
			t.Errorf("no fire was delayed: jitter not applied")
		}
	})
}

func TestSchedulerNoOverlap(t *testing.T) {
	tests := []struct {
		allow       bool
		want        []time.Time
		wantSkipped int
	}{
		// Each run takes 2m30s: the 00:01 and 00:02 ticks find it running.
		{false, []time.Time{at(0, 0), at(0, 3), at(0, 6), at(0, 9)}, 6},
		{true, []time.Time{at(0, 0), at(0, 1), at(0, 2), at(0, 3), at(0, 4), at(0, 5), at(0, 6), at(0, 7), at(0, 8), at(0, 9)}, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("allow=%v", tt.allow), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := &recorder{fireFor: 150 * time.Second}
				var mu sync.Mutex
				missed := 0
				rs := start(t, r, Options{Missed: func(string, time.Time, string) { mu.Lock(); missed++; mu.Unlock() }}, func(s *Scheduler) {
					set(t, s, "slow", "* * * * *", func(sp *Spec) { sp.AllowOverlap = tt.allow })
				})
				sleepUntil(at(0, 9).Add(30 * time.Second))
				skipped := rs.Skipped("slow")
				rs.stop(t)
				if got := scheduledTimes(r.fires("slow")); !equalTimes(got, tt.want) {
					t.Errorf("fired for %v; want %v", got, tt.want)
				}
				if skipped != tt.wantSkipped {
					t.Errorf("Skipped = %d; want %d", skipped, tt.wantSkipped)
				}
				mu.Lock()
				if missed != tt.wantSkipped {
					t.Errorf("Missed heard %d skips; want %d", missed, tt.wantSkipped)
				}
				mu.Unlock()
			})
		})
	}
}

// TestSchedulerLateWake: when the loop is held up past several ticks (here
// by a MarkRun that takes 2h30m, as a suspended host would), the missed
// ticks fire once, for the latest, not one after another.
func TestSchedulerLateWake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		first := true
		mark := func(job string, at time.Time) error {
			if first {
				first = false
				time.Sleep(150 * time.Minute)
			}
			return r.mark(job, at)
		}
		rs := start(t, r, Options{MarkRun: mark}, func(s *Scheduler) {
			// AllowOverlap: the 00:00 Fire starts only at 02:30, just before
			// the late tick; this test is not about overlap.
			set(t, s, "hourly", "0 * * * *", func(sp *Spec) { sp.AllowOverlap = true })
		})
		sleepUntil(at(3, 30))
		rs.stop(t)
		// The 00:00 and 02:00 fires start at the same instant in their own
		// goroutines, so their order is not defined.
		got := scheduledTimes(r.fires("hourly"))
		slices.SortFunc(got, time.Time.Compare)
		if want := []time.Time{at(0, 0), at(2, 0), at(3, 0)}; !equalTimes(got, want) {
			t.Errorf("fired for %v; want %v", got, want)
		}
	})
}

func TestSchedulerSetReplaceRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		rs := start(t, r, Options{}, func(s *Scheduler) { set(t, s, "job", "0 * * * *", nil) })

		sleepUntil(at(0, 30))
		set(t, rs.Scheduler, "job", "0 * * * *", nil) // unchanged: nothing happens
		sleepUntil(at(1, 0))
		synctest.Wait() // the 01:00 fire has happened
		set(t, rs.Scheduler, "job", "0,30 * * * *", nil)
		if next := rs.NextRuns()["job"]; !next.Equal(at(1, 30)) {
			t.Errorf("after replacing at 01:00, next run %v; want 01:30 (01:00 already fired)", next)
		}
		sleepUntil(at(1, 10))
		set(t, rs.Scheduler, "job", "30 * * * *", nil)
		sleepUntil(at(2, 45))
		rs.Remove("job")
		if _, ok := rs.NextRuns()["job"]; ok {
			t.Errorf("NextRuns still lists a removed job")
		}
		sleepUntil(at(6, 0))
		rs.stop(t)

		want := []time.Time{at(0, 0), at(1, 0), at(1, 30), at(2, 30)}
		if got := scheduledTimes(r.fires("job")); !equalTimes(got, want) {
			t.Errorf("fired for %v; want %v", got, want)
		}
	})
}

func TestSchedulerStopCancelsFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fireFor: 24 * time.Hour}
		rs := start(t, r, Options{}, func(s *Scheduler) { set(t, s, "long", "0 * * * *", nil) })
		sleepUntil(at(0, 10))
		rs.cancel()
		if err := <-rs.done; err != nil {
			t.Errorf("Start = %v; want nil", err)
		}
		rs.Wait()
		if now := time.Now(); !now.Equal(at(0, 10)) {
			t.Errorf("Wait returned at %v; want at once (the Fire's context was cancelled)", now)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.ctxErrs) != 1 || !errors.Is(r.ctxErrs[0], context.Canceled) {
			t.Errorf("Fire contexts ended with %v; want one context.Canceled", r.ctxErrs)
		}
	})
}

func TestSchedulerMarkRunFailureStillFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		rs := start(t, r, Options{MarkRun: func(string, time.Time) error { return errors.New("disk full") }},
			func(s *Scheduler) { set(t, s, "job", "0 * * * *", nil) })
		sleepUntil(at(1, 30))
		rs.stop(t)
		if n := len(r.fires("job")); n != 2 {
			t.Errorf("fired %d times; want 2 despite MarkRun failing", n)
		}
	})
}

func TestSchedulerMisuse(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Fire is required") {
		t.Errorf("New without Fire = %v; want an error", err)
	}
	s, err := New(Options{Fire: func(context.Context, string, time.Time) {}})
	if err != nil {
		t.Fatal(err)
	}
	good := mustSpec(t, "0 3 * * *")
	tests := []struct {
		job  string
		spec Spec
		want string
	}{
		{"", good, "schedule: empty job name"},
		{"j", Spec{Cron: "0 3 * * *", Jitter: -time.Second}, `schedule: job "j": negative jitter -1s`},
		{"j", Spec{Cron: "0 3 * * MON"}, `schedule: job "j": schedule "0 3 * * MON": not in canonical form ("0 3 * * 1"); use ParseSpec`},
		{"j", Spec{Cron: "61 * * * *"}, `schedule: job "j": schedule "61 * * * *": minute field "61": 61 is out of range 0-59`},
		{"j", Spec{Cron: "0 0 31 2 *"}, `never fires`},
		{"j", Spec{}, `has 0 fields`},
	}
	for _, tt := range tests {
		if err := s.Set(tt.job, tt.spec); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Set(%q, %+v) = %v; want error containing %q", tt.job, tt.spec, err, tt.want)
		}
	}
	if len(s.NextRuns()) != 0 {
		t.Errorf("a refused Set added a job")
	}
	synctest.Test(t, func(t *testing.T) {
		s, _ := New(Options{Fire: func(context.Context, string, time.Time) {}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Start(ctx) }()
		synctest.Wait()
		if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "Start called twice") {
			t.Errorf("second Start = %v; want an error", err)
		}
		cancel()
		<-done
	})
}
