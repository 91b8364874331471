package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// A run's record in the store follows it as it goes:
//
//	CreateRuns (queued; by the trigger, before it is acknowledged)
//	MarkStarted(version, origin)
//	log lines, batched: AppendLog at most every logFlushEvery, and at the end
//	TaskStarted as soon as a mutation's POST returns a UPID (synchronously,
//	  from the proxmox.Observer), TaskFinished when a wait sees it stop
//	Finish(status, error, kind, result), after the last log line is durable
//
// so a reader who sees Ended set has the whole log, and a crash at any
// point loses neither a finished run nor a started UPID.

// liveRun is a run this agent is executing (or about to).
type liveRun struct {
	id       string
	playbook string
	lane     string // its queue: the playbook's, or the playbook's for one guest (laneOf)
	source   store.Source
	// params is the run's recorded parameters (JSON), which a signature
	// binds; signature is the operator signature it carries (a signed job
	// or an approval), nil for none.
	params    json.RawMessage
	signature *safety.Verified
	ctx       context.Context
	cancel    context.CancelCauseFunc
	log       *runLogSink
	done      chan struct{} // closed after the run's Finish is recorded
	// resume is set for a run that resumes (or is replayed into its undo)
	// after an interruption; nil for a run that starts.
	resume *resumption

	follows follows // who follows its log live (follow.go)

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on each flush and at the end
}

// notify wakes WaitChange callers.
func (lr *liveRun) notify() {
	lr.mu.Lock()
	close(lr.changed)
	lr.changed = make(chan struct{})
	lr.mu.Unlock()
}

// watch returns the channel the next change closes.
func (lr *liveRun) watch() <-chan struct{} {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.changed
}

// errCancelledByAPI is the cause of a cancel from the local API.
var errCancelledByAPI = errors.New("requested through the local API")

// errShutdown is the cause of runs stopped when the grace period ends:
// they are recorded interrupted, and resume (or are undone) at the next
// start — never undone by the stop itself.
var errShutdown = engine.ErrInterrupt

// launch starts a recorded (queued) run of pb in the background: at once,
// or when its turn comes if pb does not run concurrently and is busy (see
// queue.go). reserved says whether start reserved the run's place in the
// queue. It returns nil without starting anything once the agent is
// draining: the run then stays queued in the store, for the next start.
// attrs go on the run's first log line.
func (a *Agent) launch(run store.Run, pb *engine.Playbook, params *engine.Params, reserved bool, sig *safety.Verified, attrs ...any) *liveRun {
	return a.launchResumed(run, pb, params, reserved, nil, sig, attrs...)
}

// launchResumed is launch for a run that resumes (r non-nil): its record
// is running already (store.Resume), and its journal answers the replay.
func (a *Agent) launchResumed(run store.Run, pb *engine.Playbook, params *engine.Params, reserved bool, r *resumption, sig *safety.Verified, attrs ...any) *liveRun {
	a.mu.Lock()
	if a.draining {
		a.mu.Unlock()
		if reserved && !pb.Decl.Concurrent {
			a.queues.unreserve([]string{laneOf(pb.Name, run.Source, run.Params)})
		}
		a.log.Info("the agent stops before the run started; it stays queued for the next start", "run", run.ID, "playbook", pb.Name)
		return nil
	}
	ctx, cancel := context.WithCancelCause(a.runsCtx)
	lr := &liveRun{id: run.ID, playbook: pb.Name, lane: laneOf(pb.Name, run.Source, run.Params), source: run.Source, params: run.Params, signature: sig, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{}), resume: r}
	lr.log = newRunLogSink(a, lr)
	a.live[run.ID] = lr
	a.running.Add(1)
	a.mu.Unlock()

	var t *turn
	if !pb.Decl.Concurrent {
		t = a.queues.enter(lr.lane, run.ID, reserved) // in acceptance order
	}
	go a.execute(lr, pb, params, t, attrs)
	return lr
}

// endLive takes lr out of the live runs and wakes whoever waits on it.
func (a *Agent) endLive(lr *liveRun) {
	a.mu.Lock()
	delete(a.live, lr.id)
	a.mu.Unlock()
	lr.cancel(nil)
	close(lr.done)
	lr.notify()
	a.running.Done()
}

// finishUnstarted records the end of a queued run that never ran.
func (a *Agent) finishUnstarted(id string, status runstate.Status, kind, msg string) {
	a.recordFinish(id, store.FinishInfo{Status: status, ErrorKind: kind, Error: msg})
}

// finishRetry is how often the end of a run that the store could not
// record is tried again.
const finishRetry = 5 * time.Second

// recordFinish records how a run ended. While the store cannot write, it
// tries again in the background (every finishRetry, until the agent
// stops), so that the record catches up with the run once the disk has
// room again; the time recorded is the run's real end.
func (a *Agent) recordFinish(id string, fi store.FinishInfo) {
	if fi.At.IsZero() {
		fi.At = time.Now()
	}
	err := a.store.Finish(context.Background(), id, fi)
	if err == nil {
		return
	}
	a.log.Error("recording the end of a run failed", "run", id, "status", string(fi.Status), "err", err)
	if !errors.Is(err, store.ErrUnwritable) || a.bgCtx.Err() != nil {
		return
	}
	a.bg.Go(func() {
		t := time.NewTicker(finishRetry)
		defer t.Stop()
		for {
			select {
			case <-a.bgCtx.Done():
				return
			case <-t.C:
			}
			err := a.store.Finish(context.Background(), id, fi)
			if err == nil || !errors.Is(err, store.ErrUnwritable) {
				if err == nil {
					a.log.Info("the end of a run is recorded now that the store can write", "run", id, "status", string(fi.Status))
				}
				return
			}
		}
	})
}

// execute waits for lr's turn (t nil: none to wait for), runs it to its
// end and records it.
func (a *Agent) execute(lr *liveRun, pb *engine.Playbook, params *engine.Params, t *turn, attrs []any) {
	logger := slog.New(&runLogHandler{next: a.log.Handler(), sink: lr.log})
	// The engine tags its lines with run and playbook; the agent's own
	// lines around them tag themselves (the store leaves the tags out).
	own := logger.With("run", lr.id, "playbook", pb.Name)
	own.Info("run triggered", append([]any{"source", string(lr.source)}, attrs...)...)
	if t != nil {
		own.Info("run queued: the playbook is busy and does not run concurrently", "place", a.queues.position(lr.lane, lr.id))
		if !a.awaitTurn(lr, lr.lane, t) {
			lr.log.close()
			return
		}
		own.Info("run leaves the queue")
	}
	if !pb.Decl.Concurrent {
		defer a.queues.leave(lr.lane) // after the record says it ended
	}
	a.metrics.inFlight.Inc()

	tasks := &runTasks{a: a, run: lr.id, lr: lr, open: map[string]proxmox.UPID{}}
	var res *engine.Result
	journal, opts := newRunJournal(a, lr.id, nil, false), engine.RunOptions{ID: lr.id, Trigger: string(lr.source), Logger: logger, Stopping: a.runsCtx}
	var started error
	if r := lr.resume; r != nil {
		journal = newRunJournal(a, lr.id, r.entries, r.undoOnly)
		opts.StopReason, opts.UndoOnly = r.reason, r.undoOnly
		own.Info(r.what(), "journal_entries", len(r.entries), "version", pb.ShortVersion())
	} else {
		started = a.store.MarkStarted(context.Background(), lr.id, pb.Version, a.origin, time.Time{})
	}
	opts.Journal, tasks.journal = journal, journal
	a.mu.Lock()
	a.secrets[lr.id] = params.Secrets()
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.secrets, lr.id)
		a.mu.Unlock()
	}()
	if err := started; err != nil {
		// The record cannot follow the run, so the run does not happen.
		a.log.Error("recording the start of a run failed; not running it", "run", lr.id, "playbook", pb.Name, "err", err)
		res = &engine.Result{ID: lr.id, Playbook: pb.Name, Version: pb.Version, Status: runstate.Failed, Kind: engine.KindInternal,
			Error: "the run store could not record the start", Started: time.Now(), Finished: time.Now()}
	} else {
		ctx := proxmox.WithObserver(lr.ctx, a.gateFor(lr, pb, tasks, own))
		opts.Lane = lr.lane
		res = a.engine.Run(ctx, pb, params, opts)
		if err := journal.flush(); err != nil {
			a.log.Error("writing the last journal entries failed; a resume makes those reads again", "run", lr.id, "err", err)
		}
		if res.Backtrace != "" {
			// After the engine's "run finished": where the run failed or
			// stopped, frame by frame, for runs show.
			own.Info("run stopped here", "backtrace", res.Backtrace)
		}
	}
	status, errMsg, kind := res.Status, res.Error, res.Kind
	var result json.RawMessage
	if len(res.Output) > 0 {
		result = res.Output
	}
	if len(result) > a.limits.Result {
		// Not cut: a cut JSON value would be a wrong one.
		status, kind = runstate.Failed, KindLimit
		errMsg = fmt.Sprintf("the result is %d bytes, more than runs.result_max_kib allows (%d bytes); it is not recorded", len(result), a.limits.Result)
		result = nil
		own.Error("run failed: its result is too large to record", "bytes", len(res.Output), "limit_bytes", a.limits.Result)
	}
	lr.log.close() // the last line is durable before Ended is set

	// Out of flight before the record says it ended, so a reader who saw
	// the end sees the gauge without it.
	a.metrics.inFlight.Dec()
	counts := journal.result()
	if status == runstate.Interrupted {
		// The agent stops: the run waits, interrupted, for the next start.
		if err := a.store.Interrupt(context.Background(), lr.id, errMsg, counts); err != nil {
			a.log.Error("recording the run as interrupted failed; the next start finds it running and interrupts it", "run", lr.id, "err", err)
		}
		for _, upid := range tasks.unfinished() {
			a.follow(upid, lr.id)
		}
		a.endLive(lr)
		return
	}
	a.recordFinish(lr.id, store.FinishInfo{Status: status, Error: errMsg, ErrorKind: kind, Result: result, Counts: counts})
	a.metrics.runFinished(pb.Name, string(status), res.Duration())
	if status == runstate.Succeeded {
		a.indexResult(lr.id, result)
	}
	a.notifyEnded(lr.id, pb.Name, res)

	// Tasks the run started and did not see stop (it was cancelled while
	// waiting, or started one with wait = False) go on on the host: follow
	// them so that their end is recorded too.
	for _, upid := range tasks.unfinished() {
		a.follow(upid, lr.id)
	}

	a.endLive(lr)
}
