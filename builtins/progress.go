package builtins

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Progress while a builtin waits for a Proxmox task: the task's new log
// lines go to the run log as they appear, read with the log's start offset
// (proxmox.TaskLogReader), and a heartbeat line when the task has printed
// nothing for a while. The records are what the CLI's live status lines
// and `--json` events are made of; their shape is a contract:
//
//	msg: the task's line        upid=UPID task_line=N [progress=PCT]
//	msg: "waiting for vzdump of 101: 2m10s"   upid=UPID waiting=SECONDS
//
// progress is the percentage the line carries (proxmox.TaskProgress);
// waiting is whole seconds since the task started.

// ProgressOptions tune the progress of task waits; the zero value is the
// defaults, and reads no task log (nobody follows).
type ProgressOptions struct {
	// Interval is the least time before the task's log is first read,
	// and between two reads; reads then come every twentieth of the time
	// waited, at most every 10s, and only right after a status poll of
	// the wait that saw the task running: never more than one per poll.
	// 0 means 2s; negative turns the log reading and the heartbeat off.
	Interval time.Duration
	// Heartbeat is how long a task may print nothing before a heartbeat
	// line says it is still awaited; it doubles after each heartbeat (up
	// to 5m) and starts again when the task prints. 0 means 10s.
	Heartbeat time.Duration
	// Budget, shared by every run of a process, bounds the log reads of
	// all the waits together, so a thousand tasks awaited at once do not
	// cost the host a thousand reads every few seconds; a read the budget
	// refuses is tried at the next poll. nil means no bound.
	Budget *ReadBudget
	// Followers says whether someone follows the run's log as it is
	// written (a terminal, a guest, the hub): the task's log is read only
	// while someone does, so a task nobody follows costs no log read.
	// nil means nobody ever does.
	Followers Followers
}

// Followers tells whether someone follows a run's log live: a terminal's
// live line (`felhom-agent run`, `runs follow`), a guest watching its
// backup's phase, the hub reading the run. Safe for concurrent use.
type Followers interface {
	// Follows is 0 when nobody follows, now, the log of the run whose
	// context ctx is. Otherwise it is a number that changes each time a
	// follower asks for news (a stream opens, a guest or the hub reads
	// the run): a wait then reads the task's log at its next poll, not
	// only at its own pace.
	Follows(ctx context.Context) uint64
}

// Followed is the Followers of runs that someone follows from start to
// end: a console run, whose output is its log.
var Followed Followers = alwaysFollowed{}

type alwaysFollowed struct{}

func (alwaysFollowed) Follows(context.Context) uint64 { return 1 }

// ReadBudget lets at most one task-log read through per Every, among all
// the waits sharing it. Safe for concurrent use.
type ReadBudget struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

// NewReadBudget returns a budget of one read per every.
func NewReadBudget(every time.Duration) *ReadBudget { return &ReadBudget{every: every} }

// take reports whether a read may go now, and counts it.
func (b *ReadBudget) take() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if now.Before(b.next) {
		return false
	}
	b.next = now.Add(b.every)
	return true
}

const (
	defaultProgressInterval = 2 * time.Second
	maxProgressInterval     = 10 * time.Second
	defaultHeartbeat        = 10 * time.Second
	maxHeartbeat            = 5 * time.Minute
)

// Progress record attribute keys (see above).
const (
	AttrUPID     = "upid"
	AttrTaskLine = "task_line"
	AttrProgress = "progress"
	AttrWaiting  = "waiting"
)

// TaskWhat names a task for people: "vzdump of 101", "vzdump" for a task
// of many guests.
func TaskWhat(upid proxmox.UPID) string {
	if upid.ID == "" {
		return upid.Type
	}
	return upid.Type + " of " + upid.ID
}

// watchTask reports upid's progress to logger until its stop is called;
// nil means nothing to watch (stop is then a no-op too). The wait calls
// its polled (WaitOptions.Polled) each time it has seen the task running:
// a log read happens only then, at most once per poll, and only while
// someone follows the run (o.Followers) — at the wait's own pace
// (Interval), and at the first poll after a follower asked for news.
// stop waits for the watcher to end and then, if the watcher had begun
// reading the log and someone still follows, reads what is left of it
// once more, so the run log holds the task's whole log; a task nobody
// follows, or that ends before the first read, costs no log request.
// Until the wait's first poll that saw the task running the watch is
// nothing but its state (one allocation): a task that has ended by then
// costs neither a goroutine, a channel nor a context
// (BenchmarkFlowEngine). stop must be called exactly once.
func watchTask(ctx context.Context, logger *slog.Logger, src proxmox.TaskLogSource, upid proxmox.UPID, o ProgressOptions) *taskWatch {
	if o.Interval < 0 || src == nil || upid.IsZero() {
		return nil
	}
	return &taskWatch{ctx: ctx, logger: logger, upid: upid, src: src, o: o, start: time.Now()}
}

// polled is the wait's WaitOptions.Polled, called with the wait's state
// locked: the first call makes the poll channel and starts the watcher
// on a goroutine of its own.
func (w *taskWatch) polled() {
	w.once.Do(w.startWatcher)
	select {
	case w.polls <- struct{}{}:
	default:
	}
}

// startWatcher is polled's first call (under w.once, which orders the
// channel's making before every later send).
func (w *taskWatch) startWatcher() {
	w.polls = make(chan struct{}, 1)
	go w.begin(w.ctx)
}

// begin starts following the task, unless stop came first.
func (w *taskWatch) begin(ctx context.Context) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	var wctx context.Context
	wctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	w.mu.Unlock()
	defer close(w.done)
	w.run(wctx)
}

// stop ends the watch and reads what is left of a log it began reading,
// if someone still follows. A nil watch has nothing to stop.
func (w *taskWatch) stop() {
	if w == nil {
		return
	}
	ctx := w.ctx
	w.mu.Lock()
	w.stopped = true
	// cancel is nil unless begin got the lock first: no watcher ran or
	// will.
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-w.done
	if w.began && ctx.Err() == nil && w.follows(ctx) != 0 {
		w.read(ctx)
	}
}

type taskWatch struct {
	ctx    context.Context // the wait's
	logger *slog.Logger
	upid   proxmox.UPID
	src    proxmox.TaskLogSource
	r      *proxmox.TaskLogReader // from the first read on
	o      ProgressOptions
	start  time.Time
	polls  chan struct{} // cap 1: the wait saw the task running; made by polled's first call
	once   sync.Once     // of begin

	mu      sync.Mutex
	stopped bool               // stop was called
	cancel  context.CancelFunc // ends the watcher; set by begin, under mu
	done    chan struct{}      // closed when the watcher has ended

	// The watcher's own, then stop's after it has ended.
	began bool      // the log has been read at least once
	heard time.Time // the last line, or the last heartbeat
	beat  time.Duration
}

// interval is the first pause before a read, and the shortest between
// reads at the wait's own pace.
func (o ProgressOptions) interval() time.Duration {
	if o.Interval == 0 {
		return defaultProgressInterval
	}
	return o.Interval
}

// follows is o.Followers' answer for the run: 0 when nobody follows.
func (w *taskWatch) follows(ctx context.Context) uint64 {
	if w.o.Followers == nil {
		return 0
	}
	return w.o.Followers.Follows(ctx)
}

// run follows the task from the wait's first poll that saw it running
// until ctx ends: a read at a poll when the pace allows or a follower has
// asked since the last, and a heartbeat after each silence.
func (w *taskWatch) run(ctx context.Context) {
	lo := w.o.interval()
	w.resetBeat()
	w.heard = w.start
	next := w.start.Add(lo) // the earliest next read at the wait's own pace
	// A follower there from the start waits for the pace; one that asks
	// later is answered at the next poll.
	asked := w.follows(ctx)
	hb := time.NewTimer(time.Until(w.heard.Add(w.beat)))
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.polls:
			now := time.Now()
			f := w.follows(ctx)
			if f == 0 || (f == asked && now.Before(next)) || !w.o.Budget.take() {
				continue
			}
			asked = f
			w.began = true
			if w.read(ctx) {
				hb.Reset(w.beat)
			}
			next = now.Add(min(max(lo, now.Sub(w.start)/20), max(lo, maxProgressInterval)))
		case <-hb.C:
			now := time.Now()
			waited := now.Sub(w.start).Truncate(time.Second)
			w.logger.Info(fmt.Sprintf("waiting for %s: %s", TaskWhat(w.upid), waited),
				AttrUPID, w.upid.String(), AttrWaiting, int64(waited/time.Second))
			w.heard = now
			w.beat = min(2*w.beat, maxHeartbeat)
			hb.Reset(w.beat)
		}
	}
}

// resetBeat starts the heartbeat's silence allowance over.
func (w *taskWatch) resetBeat() {
	w.beat = w.o.Heartbeat
	if w.beat <= 0 {
		w.beat = defaultHeartbeat
	}
}

// read logs the task's new lines and reports whether there were any. A
// failed read is not the wait's business (the wait decides the task's
// fate): it is logged at debug level and the next read tries again from
// the same line.
func (w *taskWatch) read(ctx context.Context) bool {
	if w.r == nil {
		w.r = proxmox.NewTaskLogReader(w.src, w.upid)
	}
	lines, err := w.r.Next(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Debug("task log unavailable", AttrUPID, w.upid.String(), "err", err)
		}
		return false
	}
	for _, l := range lines {
		attrs := []any{AttrUPID, w.upid.String(), AttrTaskLine, l.N}
		if pct, ok := proxmox.TaskProgress(l.T); ok {
			attrs = append(attrs, AttrProgress, pct)
		}
		w.logger.Info(l.T, attrs...)
	}
	if len(lines) == 0 {
		return false
	}
	w.heard = time.Now()
	w.resetBeat()
	return true
}
