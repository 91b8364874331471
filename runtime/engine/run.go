package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxConcurrent = 16
	DefaultTimeout       = time.Hour
	DefaultMaxMemory     = 512 << 20 // bytes of Go heap
	DefaultUndoTimeout   = 10 * time.Minute
)

// ErrInterrupt is the cancel cause with which the agent stops a run when
// it stops itself (past the grace period): the run ends interrupted, its
// compensations do not run, and it resumes (or is undone) at the next
// start. A routine restart never undoes work in flight.
var ErrInterrupt = errors.New("the agent stopped while the run was running")

// Journal is a run's journal as the engine drives it: the builtins'
// journal, and the start of the undo path (where the body's replay ends
// and the compensations' calls begin).
type Journal interface {
	builtins.Journal
	// BeginUndo marks, once, that the run's compensations start, with
	// why; a run replayed into its undo path consumes the mark it wrote.
	BeginUndo(reason string) error
}

// Config configures an [Engine]. The zero value runs playbooks with no
// Proxmox client or host operations (builtins needing them fail, naming
// what is not configured), the default limits, and slog.Default().
type Config struct {
	// Env is the template of every run's builtins.Env: Proxmox, Host,
	// Gauges, Tunnel and Wait are copied into each run as they are;
	// Context and Logger are replaced per run. Env.Locks nil means the
	// engine's own [GuestLocks], so concurrent runs never mutate one guest
	// at once.
	Env builtins.Env
	// MaxSteps is each run's Starlark step budget; 0 means
	// DefaultMaxSteps. A run that exceeds it fails.
	MaxSteps uint64
	// MaxConcurrent bounds the runs executing at once; more wait for a
	// slot (or for their context to end). 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxMemory is the Go heap, in bytes, above which the runs executing
	// Starlark are stopped (see memoryGuard); 0 means DefaultMaxMemory,
	// a negative value disables the guard.
	MaxMemory int64
	// DefaultTimeout bounds a run of a playbook that declares no timeout;
	// 0 means DefaultTimeout.
	DefaultTimeout time.Duration
	// Logger receives the runs' logs when RunOptions.Logger is nil; nil
	// means slog.Default().
	Logger *slog.Logger
}

// RunOptions are what the caller knows about one run.
type RunOptions struct {
	// ID names the run in logs, records and Cancel; "" means a new random
	// id. The thread running it has the same name.
	ID string
	// Trigger says what started the run ("cli", "timer", "hub", "api");
	// playbooks see it as ctx.trigger. "" means "cli".
	Trigger string
	// Logger receives the run's log (log.*, print, and the engine's
	// started/finished lines), with attributes run=ID and
	// playbook=NAME added; the daemon passes one that also writes to the
	// run store. nil means Config.Logger.
	Logger *slog.Logger
	// Journal journals the run's builtin calls and answers them when the
	// run is resumed or replayed (see builtins.Journal); nil: not
	// journaled.
	Journal Journal
	// StopReason is the error a run replayed only to be undone ends with
	// once it reached where it stopped (builtins.ErrReplayStop).
	StopReason string
	// UndoOnly: the run is replayed only to be undone (its playbook does
	// not resume, or the operator abandoned it): even a body that returns
	// once its journal is spent ends failed with StopReason, and undone.
	UndoOnly bool
	// Stopping, when it ends with ErrInterrupt as its cause, interrupts
	// the run's compensations too (they resume at the next start). nil:
	// only the undo timeout bounds them.
	Stopping context.Context
	// Lane is what a playbook that does not run concurrently runs one at
	// a time of: "" means the playbook (no two runs of it overlap); runs
	// in different lanes may (the daemon gives a guest's own runs a lane
	// per guest, so they never wait behind the host's).
	Lane string
}

// An Engine runs playbooks. It is safe for concurrent use; each run has
// its own Starlark thread, context, deadline, step budget and logger.
type Engine struct {
	cfg    Config
	slots  chan struct{}
	memory memoryGuard

	mu      sync.Mutex
	running map[string]string // run id -> lane (RunOptions.Lane), of the runs in flight
	byName  map[string]int    // runs in flight per lane
}

// NewEngine returns an Engine for cfg.
func NewEngine(cfg Config) *Engine {
	if cfg.MaxSteps == 0 {
		cfg.MaxSteps = DefaultMaxSteps
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Env.Locks == nil {
		cfg.Env.Locks = new(GuestLocks)
	}
	var limit uint64
	switch {
	case cfg.MaxMemory == 0:
		limit = DefaultMaxMemory
	case cfg.MaxMemory > 0:
		limit = uint64(cfg.MaxMemory)
	}
	return &Engine{
		cfg:     cfg,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		memory:  memoryGuard{limit: limit},
		running: map[string]string{},
		byName:  map[string]int{},
	}
}

type runIDKey struct{}

// RunID returns the id of the run whose context ctx is (or derives
// from), or "".
func RunID(ctx context.Context) string {
	id, _ := ctx.Value(runIDKey{}).(string)
	return id
}

// timeoutError is the cause of a run context whose playbook timeout
// passed.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.d) }

// Run runs pb with params (nil: every parameter's default) and returns
// its record. It blocks until the run ends: the entry function returns or
// fails, ctx is cancelled, the playbook's timeout passes, or the step
// budget is spent. Cancellation stops Starlark at its next step and, via
// the Env's context, interrupts a builtin that is waiting.
//
// params must come from pb.Decl.Coerce. A run is refused (without
// starting) when they do not, or when pb is already running in the same
// lane (opts.Lane) and does not declare concurrent = True.
func (e *Engine) Run(ctx context.Context, pb *Playbook, params *Params, opts RunOptions) *Result {
	res := &Result{ID: opts.ID, Playbook: pb.Name, Version: pb.Version, Trigger: opts.Trigger, Started: time.Now()}
	if res.ID == "" {
		res.ID = runstate.NewID(time.Now())
	}
	if res.Trigger == "" {
		res.Trigger = "cli"
	}
	base := opts.Logger
	if base == nil {
		base = e.cfg.Logger
	}
	// The handler's attributes directly: no argument boxing or slice.
	logger := slog.New(base.Handler().WithAttrs([]slog.Attr{slog.String("run", res.ID), slog.String("playbook", pb.Name)}))
	// Set once the parameters are known: from then on every line the run
	// writes, and its error and result, are scrubbed of their secrets.
	var sc *scrubber
	defer func() {
		res.Finished = time.Now()
		res.Error, res.Backtrace, res.Output = sc.String(res.Error), sc.String(res.Backtrace), sc.JSON(res.Output)
		level := slog.LevelInfo
		if res.Status != runstate.Succeeded {
			level = slog.LevelError
		}
		logger.LogAttrs(context.Background(), level, "run finished", slog.String("status", string(res.Status)),
			slog.Duration("took", res.Duration()), slog.String("error", res.Error))
	}()

	if params == nil {
		var err error
		if params, err = pb.Decl.Coerce(nil, nil); err != nil {
			return res.refuse(KindParams, err)
		}
	} else if params.decl != pb.Decl {
		return res.refuse(KindParams, errors.New("parameters were checked against another version of the playbook"))
	}
	res.Params = params.Record()
	if sc = newScrubber(params.Secrets()); sc != nil {
		logger = scrubLogger(logger, sc)
	}

	lane := opts.Lane
	if lane == "" {
		lane = pb.Name
	}
	if err := e.enter(res.ID, pb, lane); err != nil {
		return res.refuse(KindBusy, err)
	}
	defer e.leave(res.ID, lane)

	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	case <-ctx.Done():
		res.stopped(ctx, "while waiting for a run slot")
		return res
	}

	timeout := pb.Decl.Timeout
	if timeout == 0 {
		timeout = e.cfg.DefaultTimeout
	}
	runCtx, cancelTimeout := context.WithTimeoutCause(ctx, timeout, &timeoutError{timeout})
	defer cancelTimeout()
	runCtx = context.WithValue(runCtx, runIDKey{}, res.ID)

	logger.LogAttrs(runCtx, slog.LevelInfo, "run started", slog.String("version", pb.ShortVersion()),
		slog.String("trigger", res.Trigger), slog.Any("params", res.Params))
	undo := e.execute(runCtx, pb, params, res, logger, opts)
	if res.Status != runstate.Succeeded && res.Status != runstate.Interrupted && undo != nil {
		e.runUndo(ctx, pb, res, logger, opts, undo)
	}
	return res
}

// execute runs the entry function on a new thread and fills in res. It
// returns what the undo path needs, or nil when the run registered no
// compensation.
func (e *Engine) execute(ctx context.Context, pb *Playbook, params *Params, res *Result, logger *slog.Logger, opts RunOptions) (undo *undoPath) {
	// The memory guard ends the run's context too, so a builtin that is
	// waiting returns and a stuck call is abandoned like a timed-out one.
	ctx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	st := &runState{env: e.cfg.Env, budget: e.cfg.MaxSteps, logger: logger}
	env, thread := &st.env, &st.thread
	env.Context, env.Logger = ctx, logger
	env.Undo = &st.undo
	if opts.Journal != nil {
		env.Journal = opts.Journal
	}
	defer func() {
		if env.Undo.Len() > 0 {
			undo = &undoPath{env: *env, params: params}
		}
	}()
	budget := st.budget
	// The thread stops every memoryProbeSteps steps to mark progress for
	// the memory guard, and at the budget for good.
	thread.Name = res.ID
	// The hooks are plain functions that find st on the thread (no
	// closure per run).
	thread.SetLocal(runStateKey, st)
	thread.Print = runPrint
	thread.Load = refuseLoad
	thread.OnMaxSteps = runOnMaxSteps
	thread.SetMaxExecutionSteps(min(memoryProbeSteps, budget))
	env.Parked = &st.parked
	env.Reserve = func(n uint64) error {
		err := e.memory.reserve(n)
		if me, ok := err.(*memoryError); ok {
			st.memHit.CompareAndSwap(nil, me)
		}
		return err
	}
	st.guard = guardedRun{progress: &st.progress, parked: &st.parked, stop: func(heap uint64) {
		me := &memoryError{limit: e.memory.limit, heap: heap}
		st.memHit.Store(me)
		thread.Cancel(me.Error())
		stopRun(me)
	}}
	e.memory.watch(&st.guard)
	defer e.memory.unwatch(&st.guard)
	builtins.SetEnv(thread, env)
	budgetSpent, memHit := &st.budgetSpent, &st.memHit

	// The run's ctx, its fields in sorted order (no map to build and sort).
	pbName, pbVersion := pb.ctxStrings()
	ctxValue := starlarkstruct.FromKeywords(starlarkstruct.Default, []starlark.Tuple{
		{ctxFieldParams, params.Value()},
		{ctxFieldPlaybook, pbName},
		{ctxFieldRunID, starlark.String(res.ID)},
		{ctxFieldTrigger, starlark.String(res.Trigger)},
		{ctxFieldVersion, pbVersion},
	})
	ctxValue.Freeze()

	// The call runs on its own goroutine so that a run stuck where
	// cancellation cannot reach — inside one Go call that never returns,
	// such as hashing a deep DAG of tuples — is given up abandonGrace after
	// its context ended: the run is recorded as stopped, its slot and name
	// are released and shutdown is not held up. The goroutine itself
	// cannot be killed (Go has no way to), so it keeps its CPU and memory
	// until the call returns or the process exits; see abandonGrace.
	// The outcome is written before done closes (which orders it before
	// every read); an abandoned run writes it unread.
	done := make(chan struct{})
	go func() {
		presizeStack()
		v, err := call(thread, pb.Decl.Entry(), ctxValue)
		st.out = runOutcome{v, err, thread.ExecutionSteps()}
		close(done)
	}()
	var o runOutcome
	select {
	case <-done:
		o = st.out
	case <-ctx.Done():
		// The thread stops at its next step, and a waiting builtin
		// returns, its context being this one.
		thread.Cancel(context.Cause(ctx).Error())
		grace := time.NewTimer(abandonGrace)
		select {
		case <-done:
			o = st.out
			grace.Stop()
		case <-grace.C:
			abandoned.Add(1)
			if me := memHit.Load(); me != nil {
				res.fail(runstate.Failed, KindMemory, me.Error(), me)
			} else {
				res.stopped(ctx, "")
			}
			res.Error += fmt.Sprintf(" (the run did not stop within %s of it, inside a call Starlark cannot interrupt; abandoned)", abandonGrace)
			logger.Error("run abandoned: it did not stop within the grace after its context ended", "grace", abandonGrace)
			return
		}
	}
	v, err := o.v, o.err
	res.Steps = o.steps
	if err == nil && opts.UndoOnly {
		err = builtins.ErrReplayStop
	}
	if err == nil {
		out, err := ResultJSON(v)
		if err != nil {
			res.fail(runstate.Failed, KindResult, fmt.Sprintf("%s: %v", pb.Path, err), err)
			return
		}
		res.Status, res.Output = runstate.Succeeded, out
		return
	}

	var pe *panicError
	var de *builtins.DivergenceError
	switch {
	case errors.As(err, &de):
		res.fail(runstate.Failed, KindReplay, de.Error(), err)
	case errors.Is(err, builtins.ErrReplayStop):
		reason := opts.StopReason
		if reason == "" {
			reason = ErrInterrupt.Error()
		}
		res.fail(runstate.Failed, KindInterrupt, reason, err)
		if pos := errPos(err); pos != "" {
			logger.Info("replayed the run to where it stopped", "at", pos)
		}
	case errors.As(err, &pe):
		logger.Error("builtin panicked", "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
		res.fail(runstate.Failed, KindInternal, fmt.Sprintf("internal error: %v", pe.value), err)
	case memHit.Load() != nil:
		res.failAt(runstate.Failed, KindMemory, memHit.Load().Error(), err)
	case budgetSpent.Load():
		res.failAt(runstate.Failed, KindStepBudget, fmt.Sprintf("step budget of %d exceeded", budget), err)
	case ctx.Err() != nil:
		res.stopped(ctx, "")
		// Keep both the reason (context.Canceled, the timeout, the
		// caller's cause) and where the run was, for errors.Is and As.
		res.Err = errors.Join(res.Err, err)
		res.Backtrace = backtrace(err)
		if pos := errPos(err); pos != "" {
			res.Error = pos + ": " + res.Error
		}
	default:
		kind := proxmox.Kind(err)
		if kind == "" {
			kind = KindError
		}
		res.failAt(runstate.Failed, kind, "", err)
	}
	return
}

// The field names of a run's ctx, boxed once.
var (
	ctxFieldParams   starlark.Value = starlark.String("params")
	ctxFieldPlaybook starlark.Value = starlark.String("playbook")
	ctxFieldRunID    starlark.Value = starlark.String("run_id")
	ctxFieldTrigger  starlark.Value = starlark.String("trigger")
	ctxFieldVersion  starlark.Value = starlark.String("version")
)

// runState is what one run's thread and its hooks share, in one
// allocation: a run is on the path of every playbook call, and its
// pieces each allocated apart cost about as much as its steps.
type runState struct {
	env         builtins.Env
	undo        builtins.UndoStack
	thread      starlark.Thread
	logger      *slog.Logger
	budget      uint64 // the step budget
	budgetSpent atomic.Bool
	progress    atomic.Uint64 // memoryProbeSteps marks, for the memory guard
	parked      atomic.Int32  // builtins.Env.Parked
	memHit      atomic.Pointer[memoryError]
	guard       guardedRun
	out         runOutcome // the entry function's, written before done closes
}

// runOutcome is what a run's entry function returned.
type runOutcome struct {
	v     starlark.Value
	err   error
	steps uint64
}

// runStateKey is the thread-local key of a run thread's *runState.
const runStateKey = "felhom.run"

// runPrint is a run thread's print: its runState's print.
func runPrint(t *starlark.Thread, msg string) {
	t.Local(runStateKey).(*runState).print(msg)
}

// runOnMaxSteps is a run thread's OnMaxSteps: its runState's onMaxSteps.
func runOnMaxSteps(t *starlark.Thread) {
	t.Local(runStateKey).(*runState).onMaxSteps(t)
}

// print is the thread's print: to the run log, except while a resumed run
// replays its journal (the lines were written the first time).
func (st *runState) print(msg string) {
	if st.env.Journal == nil || !st.env.Journal.Replaying() {
		st.logger.InfoContext(st.env.Context, msg)
	}
}

// onMaxSteps marks progress every memoryProbeSteps steps and stops the
// thread at the budget.
func (st *runState) onMaxSteps(t *starlark.Thread) {
	if t.ExecutionSteps() >= st.budget {
		st.budgetSpent.Store(true)
		t.Cancel(fmt.Sprintf("step budget of %d exceeded", st.budget))
		return
	}
	st.progress.Add(1)
	t.SetMaxExecutionSteps(min(t.ExecutionSteps()+memoryProbeSteps, st.budget))
}

// refuseLoad is a run thread's load: modules load with their file, never
// while a run runs.
func refuseLoad(*starlark.Thread, string) (starlark.StringDict, error) {
	return nil, errors.New("load() runs only while a file loads")
}

// abandonGrace is how long a run whose context ended (deadline, cancel,
// memory limit, shutdown) may take to return before the engine gives it up.
// A run stops at its next Starlark step and a waiting builtin returns at
// once, so only a call that never checks (Go code inside go.starlark.net)
// reaches it.
const abandonGrace = time.Second

// abandoned counts the runs given up since the process started.
var abandoned atomic.Int64

// Abandoned is how many runs the engine gave up because they did not stop
// within a second of their context ending; each keeps a goroutine (and a
// CPU, if it spins) until the process exits.
func Abandoned() int64 { return abandoned.Load() }

// runStackHint is the frame with which a run's goroutine grows its stack
// at once (to 64 KiB), before its first Starlark call. A new goroutine
// starts with a few KiB and doubles its stack, copying it, each time a
// call needs more. Starlark's interpreter frames are large, and a builtin
// that talks to Proxmox goes on down through the client and net/http: a
// task wait's status poll reaches about 32 KiB, near enough that a few
// hundred bytes more in one frame on the way crossed it (a debug line's
// attributes in the client's request frame, since moved to a function of
// their own). Grown there, the stack is copied with every frame of that
// depth adjusted, as much CPU as the rest of the engine's work on a short
// run (BenchmarkFlowInterleaved, 12 alternated pairs: 14.4% over plain Go
// against 8.6% with this start). So the start is twice that depth, for
// margin: with the frame fixed, 32 and 64 KiB starts measure alike (8.36 /
// 8.42%), and 1,000 runs waiting at once hold no more stack
// (BenchmarkConcurrentRuns1000's peak-stack-MiB 71.9 / 67.8: the garbage
// collector shrinks the stack of a run that waits with little of it in
// use). Go grows a stack straight to what the faulting frame needs, so one
// frame of this size at the goroutine's start costs one copy of an empty
// stack (and no zeroing: the frame is never written).
const runStackHint = 40 << 10

// presizeStack grows the calling goroutine's stack to runStackHint.
//
//go:noinline
func presizeStack() {
	if presizeNever {
		var frame [runStackHint]byte
		touchFrame(frame[:])
	}
}

// presizeNever is false: presizeStack needs its frame, not its contents.
var presizeNever bool

// touchFrame keeps presizeStack's frame from being optimized away.
//
//go:noinline
func touchFrame(b []byte) { b[len(b)-1] = 1 }

// call calls fn(arg) and turns a panic in a builtin into an error, so one
// broken builtin fails its run instead of the agent.
func call(thread *starlark.Thread, fn starlark.Callable, arg starlark.Value) (v starlark.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return starlark.Call(thread, fn, starlark.Tuple{arg}, nil)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

func (r *Result) refuse(kind string, err error) *Result {
	r.Status, r.Kind, r.Error, r.Err = runstate.Refused, kind, err.Error(), err
	return r
}

func (r *Result) fail(status runstate.Status, kind, msg string, err error) {
	r.Status, r.Kind, r.Error, r.Err = status, kind, msg, err
	r.Backtrace = backtrace(err)
}

// failAt records a failure located at the innermost Starlark frame of
// err; msg "" means err's own message.
func (r *Result) failAt(status runstate.Status, kind, msg string, err error) {
	if msg == "" {
		msg = err.Error()
		var ee *starlark.EvalError
		if errors.As(err, &ee) {
			msg = ee.Msg
		}
	}
	if pos := errPos(err); pos != "" {
		msg = pos + ": " + msg
	}
	r.fail(status, kind, msg, err)
}

// stopped records a run ended by its context: timed out (the playbook's
// timeout or the caller's deadline) or cancelled (with the cause).
func (r *Result) stopped(ctx context.Context, when string) {
	cause := context.Cause(ctx)
	var te *timeoutError
	if errors.Is(cause, ErrInterrupt) {
		r.Status, r.Error, r.Err = runstate.Interrupted, cause.Error(), cause
		if when != "" {
			r.Error += " " + when
		}
		return
	}
	if errors.As(cause, &te) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		r.Status, r.Error = runstate.TimedOut, cause.Error()
	} else {
		r.Status, r.Error = runstate.Cancelled, "cancelled"
		if !errors.Is(cause, context.Canceled) {
			r.Error += ": " + cause.Error()
		}
	}
	if when != "" {
		r.Error += " " + when
	}
	r.Err = cause
}

// backtrace is err's Starlark backtrace, or "". Its last line names the
// builtin that failed, whose message names it too ("Error in fail: fail:
// boom", Starlark's way): the name is said once ("Error in fail: boom").
func backtrace(err error) string {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return ""
	}
	bt := ee.Backtrace()
	i := strings.Index(bt, "\nError in ") // the line after the frames
	if i < 0 {
		return bt
	}
	head := i + len("\nError in ")
	if name, rest, ok := strings.Cut(bt[head:], ": "); ok && strings.HasPrefix(rest, name+": ") {
		return bt[:head] + rest
	}
	return bt
}

// errPos is "file:line:col" of err's innermost Starlark frame, or "".
func errPos(err error) string {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return ""
	}
	if pos, ok := sourcePos(ee.CallStack); ok {
		return pos.String()
	}
	return ""
}

func (e *Engine) enter(id string, pb *Playbook, lane string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.running[id]; dup {
		return fmt.Errorf("a run with id %s is already in flight", id)
	}
	if !pb.Decl.Concurrent && e.byName[lane] > 0 {
		for rid, l := range e.running {
			if l == lane {
				return fmt.Errorf("playbook %q is already running (run %s) and does not declare concurrent = True", pb.Name, rid)
			}
		}
	}
	e.running[id] = lane
	e.byName[lane]++
	return nil
}

func (e *Engine) leave(id, lane string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.running, id)
	if e.byName[lane]--; e.byName[lane] <= 0 {
		delete(e.byName, lane)
	}
}
