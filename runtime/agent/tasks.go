package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// runTasks is the proxmox.Observer on a run's context: it counts the run's
// API requests and task waits, records each mutation's intent before its
// request is sent and each UPID the moment its POST returns, and records
// a task's end when a wait sees it.
//
// It is how the store fails closed: a mutation whose intent cannot be
// written is not sent (proxmox.MutationGate; a fenced root command that
// changes the host is gated the same way), and a run whose record
// cannot be written — its intent or its UPID — is stopped there, so it
// sends no further mutation.
type runTasks struct {
	a       *Agent
	run     string
	lr      *liveRun    // nil in tests that have no live run
	journal *runJournal // the run's; a task is recorded with its call (nil: none)

	mu      sync.Mutex
	open    map[string]proxmox.UPID
	unready error // set once the run's record could not be written
}

var (
	_ proxmox.Observer     = (*runTasks)(nil)
	_ proxmox.MutationGate = (*runTasks)(nil)
)

// errRecordLost is the cause of a run stopped because its record could
// not be written.
type errRecordLost struct{ err error }

func (e *errRecordLost) Error() string {
	return "the run store could not record this run, so it was stopped before its next mutation: " + e.err.Error()
}
func (e *errRecordLost) Unwrap() error { return e.err }

// BeforeMutation writes the mutation's intent (a line of the run's log,
// with every line before it) durably, and refuses the mutation when that
// fails or an earlier record of the run already did.
func (t *runTasks) BeforeMutation(_ context.Context, m proxmox.Mutation) error {
	method, path := m.Method, m.Path
	t.mu.Lock()
	err := t.unready
	t.mu.Unlock()
	if err != nil {
		return err
	}
	line := store.LogLine{Level: "INFO", Msg: "sending mutation", Attrs: attrsJSON([]slog.Attr{
		slog.String("method", method), slog.String("path", path)})}
	if t.lr != nil {
		err = t.lr.log.writeNow(line)
	} else {
		err = t.a.store.AppendLog(context.Background(), t.run, line)
	}
	if err != nil {
		return t.stop(fmt.Errorf("recording the intent of %s %s: %w", method, path, err))
	}
	return nil
}

// stop marks the run's record as lost and cancels the run with that
// cause; it returns the cause.
func (t *runTasks) stop(err error) error {
	cause := &errRecordLost{err: err}
	t.mu.Lock()
	if t.unready == nil {
		t.unready = cause
	}
	t.mu.Unlock()
	t.a.log.Error("the run's record cannot be written; stopping the run before its next mutation", "run", t.run, "err", err)
	if t.lr != nil {
		t.lr.cancel(cause)
	}
	return cause
}

func (t *runTasks) Request(info proxmox.RequestInfo) { metricsObserver{t.a.metrics}.Request(info) }

// TaskStarted is synchronous on purpose: the builtin goes on only once
// the UPID is durable, so a crash right after the POST still leaves the
// task for recovery to follow. It is recorded with the journal call that
// is acting (the one record of the call's UPID, see runJournal).
func (t *runTasks) TaskStarted(upid proxmox.UPID) {
	t.mu.Lock()
	t.open[upid.String()] = upid
	t.mu.Unlock()
	seq := t.journal.call()
	if err := t.a.store.TaskStarted(context.Background(), t.run, seq, upid.String(), time.Time{}); err != nil {
		t.a.log.Error("recording a Proxmox task failed", "run", t.run, "upid", upid.String(), "err", err)
		t.stop(fmt.Errorf("recording task %s: %w", upid.String(), err))
		return
	}
	t.journal.noteTask(seq, upid.String())
}

func (t *runTasks) TaskWaited(upid proxmox.UPID, took time.Duration, st proxmox.TaskStatus, err error) {
	metricsObserver{t.a.metrics}.TaskWaited(upid, took, st, err)
	if st.Running() || st.ExitStatus == "" {
		return // the wait ended before the task did
	}
	t.mu.Lock()
	_, mine := t.open[upid.String()]
	delete(t.open, upid.String())
	t.mu.Unlock()
	if !mine && !t.journal.hasTask(upid.String()) {
		return // a task another run (or nobody) recorded
	}
	t.a.recordTaskEnd(t.run, upid.String(), st.ExitStatus)
}

// historyDepth is how many of a kind's last tasks its expected duration
// is taken from.
const historyDepth = 5

// taskHistory is the run store as the builtins' task history
// (builtins.Env.History): a task is expected to run the median of the
// last historyDepth tasks of its kind that succeeded (the shorter middle
// one of an even number), so that one unusually long or short run does
// not move the estimate.
type taskHistory struct{ a *Agent }

func (h taskHistory) ExpectedDuration(ctx context.Context, upid proxmox.UPID) time.Duration {
	if h.a.store == nil {
		return 0
	}
	ds, err := h.a.store.TaskHistory(ctx, upid.String(), historyDepth)
	if err != nil {
		h.a.log.Debug("task history unavailable; waiting without it", "upid", upid.String(), "err", err)
		return 0
	}
	return medianDuration(ds)
}

// medianDuration is the median of ds (the lower middle one of an even
// number), 0 for none.
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[(len(ds)-1)/2]
}

// unfinished returns the tasks whose end no wait has seen.
func (t *runTasks) unfinished() []proxmox.UPID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]proxmox.UPID, 0, len(t.open))
	for _, u := range t.open {
		out = append(out, u)
	}
	return out
}

// recordTaskEnd records a task's exit status, and a guest's backup in the
// per-guest index (indexTask); a second record of the same end (two waits
// on one task) is not an error and indexes nothing.
func (a *Agent) recordTaskEnd(run, upid, exit string) {
	err := a.store.TaskFinished(context.Background(), upid, exit, time.Time{})
	if err != nil && !errors.Is(err, store.ErrFinished) {
		a.log.Error("recording the end of a Proxmox task failed", "upid", upid, "err", err)
	}
	if err == nil {
		a.indexTask(run, upid, exit)
	}
}
