package agent

import (
	"context"
	"errors"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/schedule"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// Timers: each serving playbook that declares a schedule is a job of the
// scheduler (runtime/schedule), named after the playbook. The scheduler
// owns the loop, catch-up, jitter and overlap; the agent persists its
// fires in the run store (TimerMark/TimerLast) and turns each fire into a
// run with source "timer". A fire blocks until its run has ended, which is
// how the scheduler knows the previous run is still going: a tick that
// comes meanwhile is skipped unless the playbook declares concurrent = True.

// fireTimer is the scheduler's Fire: one run of playbook job for the tick
// scheduled. The tick is the run's idempotency key, so a tick is never
// run twice, across restarts included.
func (a *Agent) fireTimer(_ context.Context, job string, scheduled time.Time) {
	key := job + "@" + scheduled.UTC().Format(time.RFC3339)
	st, err := a.start(context.Background(), startRequest{
		Source: store.SourceTimer, Key: key, At: time.Now(), Playbook: job,
		RecordRefusal: true, RefusalHint: "; a timer passes no parameters",
		Attrs: []any{"scheduled", scheduled},
	})
	if r, ok := errors.AsType[*startRefusal](err); ok {
		switch r.Reason {
		case refusedParams: // recorded as a refused run, where people look
			a.log.Warn("timer: run refused", "playbook", job, "scheduled", scheduled, "err", r)
		default: // removed since the tick was computed, or shutting down
		}
		return
	}
	if err != nil {
		a.log.Error("timer: recording the run failed", "playbook", job, "scheduled", scheduled, "err", err)
		return
	}
	if st.Existing {
		a.log.Info("timer: this tick already has its run", "playbook", job, "scheduled", scheduled, "run", st.Runs[0].ID)
		return
	}
	if lr := st.Live[0]; lr != nil {
		<-lr.done
	}
}

// timerLast is the scheduler's LastRun, from the store.
func (a *Agent) timerLast(job string) (time.Time, bool) {
	t, ok, err := a.store.TimerLast(context.Background(), job)
	if err != nil {
		a.log.Error("timer: reading the last fire failed; no catch-up", "playbook", job, "err", err)
		return time.Time{}, false
	}
	return t, ok
}

// timerMark is the scheduler's MarkRun, into the store.
func (a *Agent) timerMark(job string, at time.Time) error {
	return a.store.TimerMark(context.Background(), job, at)
}

// syncTimers makes the scheduler's jobs those of the serving playbooks:
// new schedules are set, changed ones replaced, and the jobs of playbooks
// that no longer serve or no longer declare a schedule removed.
func (a *Agent) syncTimers() {
	want := map[string]schedule.Spec{}
	for _, pb := range a.registry.Playbooks() {
		if pb.Decl.Schedule == "" {
			continue
		}
		// The declaration was validated with this parser when it loaded.
		spec, err := schedule.ParseSpec(pb.Decl.Schedule, "")
		if err != nil {
			a.log.Error("timer: schedule refused", "playbook", pb.Name, "err", err)
			continue
		}
		spec.AllowOverlap = pb.Decl.Concurrent
		spec.Jitter = pb.Decl.Jitter
		want[pb.Name] = spec
	}
	a.timersMu.Lock()
	defer a.timersMu.Unlock()
	for name := range a.jobs {
		if _, ok := want[name]; !ok {
			a.sched.Remove(name)
			delete(a.jobs, name)
			a.log.Info("timer removed", "playbook", name)
		}
	}
	for name, spec := range want {
		if err := a.sched.Set(name, spec); err != nil {
			a.log.Error("timer: schedule refused", "playbook", name, "err", err)
			continue
		}
		a.jobs[name] = true
	}
}
