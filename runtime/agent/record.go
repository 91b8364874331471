package agent

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// A run's record in the store follows it as it goes:
//
//	CreateRuns (queued; by the trigger, before it is acknowledged)
//	MarkStarted(version)
//	log lines, batched: AppendLog at most every logFlushEvery, and at the end
//	TaskStarted as soon as a mutation's POST returns a UPID (synchronously,
//	  from the proxmox.Observer), TaskFinished when a wait sees it stop
//	Finish(status, error, kind, result), after the last log line is durable
//
// so a reader who sees Ended set has the whole log, and a crash at any
// point loses neither a finished run nor a started UPID.

const (
	// logFlushEvery bounds how long a log line waits in memory before it
	// is durable; AppendLog costs an fsync, so lines are batched.
	logFlushEvery = 200 * time.Millisecond
	// logFlushLines flushes at once when this many lines are waiting, so a
	// chatty run is slowed by its own logging rather than filling memory.
	logFlushLines = 256
)

// liveRun is a run this agent is executing (or about to).
type liveRun struct {
	id     string
	source store.Source
	ctx    context.Context
	cancel context.CancelCauseFunc
	log    *runLogSink
	done   chan struct{} // closed after the run's Finish is recorded

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

// errShutdown is the cause of runs cancelled when the grace period ends.
var errShutdown = errors.New("the agent is shutting down")

// launch starts a recorded (queued) run of pb in the background. It
// returns nil without starting anything once the agent is draining: the
// run is then recorded as cancelled. attrs go on the run's first log line.
func (a *Agent) launch(run store.Run, pb *engine.Playbook, params *engine.Params, attrs ...any) *liveRun {
	a.mu.Lock()
	if a.draining {
		a.mu.Unlock()
		a.finishUnstarted(run.ID, runstate.Cancelled, "", "the agent stopped before the run started")
		return nil
	}
	ctx, cancel := context.WithCancelCause(a.runsCtx)
	lr := &liveRun{id: run.ID, source: run.Source, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{})}
	lr.log = newRunLogSink(a, lr)
	a.live[run.ID] = lr
	a.running.Add(1)
	a.mu.Unlock()

	a.metrics.inFlight.Inc()
	go a.execute(lr, pb, params, attrs)
	return lr
}

// finishUnstarted records the end of a queued run that never ran.
func (a *Agent) finishUnstarted(id string, status runstate.Status, kind, msg string) {
	err := a.store.Finish(context.Background(), id, store.FinishInfo{Status: status, ErrorKind: kind, Error: msg})
	if err != nil {
		a.log.Error("recording a run that did not start failed", "run", id, "err", err)
	}
}

// execute runs lr to its end and records it.
func (a *Agent) execute(lr *liveRun, pb *engine.Playbook, params *engine.Params, attrs []any) {
	defer a.running.Done()
	logger := slog.New(&runLogHandler{next: a.log.Handler(), sink: lr.log})
	// The engine tags its lines with run and playbook; the agent's own
	// lines around them tag themselves (the store leaves the tags out).
	own := logger.With("run", lr.id, "playbook", pb.Name)
	own.Info("run triggered", append([]any{"source", string(lr.source)}, attrs...)...)

	tasks := &runTasks{a: a, run: lr.id, open: map[string]proxmox.UPID{}}
	var res *engine.Result
	if err := a.store.MarkStarted(context.Background(), lr.id, pb.Version, time.Time{}); err != nil {
		// The record cannot follow the run, so the run does not happen.
		a.log.Error("recording the start of a run failed; not running it", "run", lr.id, "playbook", pb.Name, "err", err)
		res = &engine.Result{ID: lr.id, Playbook: pb.Name, Version: pb.Version, Status: runstate.Failed, Kind: engine.KindInternal,
			Error: "the run store could not record the start", Started: time.Now(), Finished: time.Now()}
	} else {
		ctx := proxmox.WithObserver(lr.ctx, tasks)
		res = a.engine.Run(ctx, pb, params, engine.RunOptions{ID: lr.id, Trigger: string(lr.source), Logger: logger})
		if res.Backtrace != "" {
			// After the engine's "run finished": where the run failed or
			// stopped, frame by frame, for runs show.
			own.Info("run stopped here", "backtrace", res.Backtrace)
		}
	}
	lr.log.close() // the last line is durable before Ended is set

	status := res.Status
	var result json.RawMessage
	if len(res.Output) > 0 {
		result = res.Output
	}
	// Out of flight before the record says it ended, so a reader who saw
	// the end sees the gauge without it.
	a.metrics.inFlight.Dec()
	if err := a.store.Finish(context.Background(), lr.id, store.FinishInfo{
		Status: status, Error: res.Error, ErrorKind: res.Kind, Result: result,
	}); err != nil {
		a.log.Error("recording the end of a run failed", "run", lr.id, "playbook", pb.Name, "err", err)
	}
	a.metrics.runFinished(pb.Name, string(status), res.Duration())

	// Tasks the run started and did not see stop (it was cancelled while
	// waiting, or started one with wait = False) go on on the host: follow
	// them so that their end is recorded too.
	for _, upid := range tasks.unfinished() {
		a.follow(upid, lr.id)
	}

	a.mu.Lock()
	delete(a.live, lr.id)
	a.mu.Unlock()
	lr.cancel(nil)
	close(lr.done)
	lr.notify()
}

// runTasks is the proxmox.Observer on a run's context: it counts the run's
// API requests and task waits, records each UPID the moment its POST
// returns, and records a task's end when a wait sees it.
type runTasks struct {
	a   *Agent
	run string

	mu   sync.Mutex
	open map[string]proxmox.UPID
}

var _ proxmox.Observer = (*runTasks)(nil)

func (t *runTasks) Request(info proxmox.RequestInfo) { metricsObserver{t.a.metrics}.Request(info) }

// TaskStarted is synchronous on purpose: the builtin goes on only once
// the UPID is durable, so a crash right after the POST still leaves the
// task for recovery to follow.
func (t *runTasks) TaskStarted(upid proxmox.UPID) {
	t.mu.Lock()
	t.open[upid.String()] = upid
	t.mu.Unlock()
	if err := t.a.store.TaskStarted(context.Background(), t.run, upid.String(), time.Time{}); err != nil {
		t.a.log.Error("recording a Proxmox task failed", "run", t.run, "upid", upid.String(), "err", err)
	}
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
	if !mine {
		return // a task another run (or nobody) recorded
	}
	t.a.recordTaskEnd(upid.String(), st.ExitStatus)
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

// recordTaskEnd records a task's exit status; a second record of the same
// end (two waits on one task) is not an error.
func (a *Agent) recordTaskEnd(upid, exit string) {
	err := a.store.TaskFinished(context.Background(), upid, exit, time.Time{})
	if err != nil && !errors.Is(err, store.ErrFinished) {
		a.log.Error("recording the end of a Proxmox task failed", "upid", upid, "err", err)
	}
}

// runLogSink batches one run's log lines into the store.
type runLogSink struct {
	a  *Agent
	lr *liveRun

	flushMu sync.Mutex // one AppendLog at a time, in order
	written atomic.Int64

	mu     sync.Mutex
	buf    []store.LogLine
	timer  *time.Timer // armed while buf holds lines
	closed bool
}

func newRunLogSink(a *Agent, lr *liveRun) *runLogSink { return &runLogSink{a: a, lr: lr} }

// add queues a line and arranges for it to be flushed.
func (s *runLogSink) add(l store.LogLine) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.a.log.Warn("log line after the run ended dropped", "run", s.lr.id, "msg", l.Msg)
		return
	}
	s.buf = append(s.buf, l)
	full := len(s.buf) >= logFlushLines
	if !full && s.timer == nil {
		s.timer = time.AfterFunc(logFlushEvery, s.flush)
	}
	s.mu.Unlock()
	if full {
		s.flush()
	}
}

// flush writes the waiting lines in one transaction.
func (s *runLogSink) flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	lines := s.buf
	s.buf = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	if err := s.a.store.AppendLog(context.Background(), s.lr.id, lines...); err != nil {
		s.a.log.Error("recording run log lines failed", "run", s.lr.id, "lines", len(lines), "err", err)
		return
	}
	s.written.Add(int64(len(lines)))
	s.lr.notify()
}

// close flushes what is left; lines added later are dropped.
func (s *runLogSink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.flush()
}

// runLogHandler is the slog.Handler of a run's logger: every record goes
// to the agent's handler (if it is enabled there) and, at Info and above
// or whatever the agent logs, to the run's record in the store.
// Attributes the engine adds to tag the agent's log (run, playbook) are
// not repeated in the store, where the run is the record's key.
type runLogHandler struct {
	next   slog.Handler
	sink   *runLogSink
	attrs  []slog.Attr // handler attributes for the store, groups applied
	groups []string
}

var _ slog.Handler = (*runLogHandler)(nil)

func (h *runLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.next.Enabled(ctx, level)
}

func (h *runLogHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	attrs := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	attrs = append(attrs, h.attrs...)
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	attrs = append(attrs, nest(h.groups, own)...)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.sink.add(store.LogLine{Time: t, Level: r.Level.String(), Msg: r.Message, Attrs: attrsJSON(attrs)})
	return err
}

func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	var kept []slog.Attr
	for _, a := range as {
		if len(h.groups) == 0 && (a.Key == "run" || a.Key == "playbook") {
			continue
		}
		kept = append(kept, a)
	}
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), nest(h.groups, kept)...)
	return &c
}

func (h *runLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups = append(append([]string(nil), h.groups...), name)
	return &c
}

// nest puts attrs inside the open groups.
func nest(groups []string, attrs []slog.Attr) []slog.Attr {
	if len(attrs) == 0 {
		return nil
	}
	for i := len(groups) - 1; i >= 0; i-- {
		attrs = []slog.Attr{{Key: groups[i], Value: slog.GroupValue(attrs...)}}
	}
	return attrs
}

// attrsJSON renders attributes as one JSON object, nil for none. Values
// that resolve themselves (slog.LogValuer: secrets redact this way) are
// resolved first; errors become their message; anything JSON cannot
// encode becomes its fmt form.
func attrsJSON(attrs []slog.Attr) json.RawMessage {
	if len(attrs) == 0 {
		return nil
	}
	obj := attrMap(attrs)
	if len(obj) == 0 {
		return nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"attrs": fmt.Sprint(obj)})
	}
	return b
}

func attrMap(attrs []slog.Attr) map[string]any {
	out := make(map[string]any, len(attrs))
	for _, a := range attrs {
		v := a.Value.Resolve()
		if a.Key == "" && v.Kind() == slog.KindGroup {
			for k, x := range attrMap(v.Group()) { // an inline group
				out[k] = x
			}
			continue
		}
		if a.Key == "" {
			continue
		}
		out[a.Key] = attrValue(v)
	}
	return out
}

func attrValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		if f := v.Float64(); math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Sprint(f)
		}
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindGroup:
		return attrMap(v.Group())
	}
	switch x := v.Any().(type) {
	case nil:
		return nil
	case error:
		return x.Error()
	case json.Marshaler:
		if b, err := x.MarshalJSON(); err == nil && json.Valid(b) {
			return json.RawMessage(b)
		}
	case encoding.TextMarshaler:
		if b, err := x.MarshalText(); err == nil {
			return string(b)
		}
	case fmt.Stringer:
		return x.String()
	}
	if b, err := json.Marshal(v.Any()); err == nil {
		return json.RawMessage(b)
	}
	return fmt.Sprint(v.Any())
}
