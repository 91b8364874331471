package builtins

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
// defaults.
type ProgressOptions struct {
	// Interval is the first pause before the task's log is read, and the
	// shortest between reads; reads then come every twentieth of the time
	// waited, at most every 10s. 0 means 2s; negative turns the log
	// reading and the heartbeat off.
	Interval time.Duration
	// Heartbeat is how long a task may print nothing before a heartbeat
	// line says it is still awaited; it doubles after each heartbeat (up
	// to 5m) and starts again when the task prints. 0 means 10s.
	Heartbeat time.Duration
	// Budget, shared by every run of a process, bounds the log reads of
	// all the waits together, so a thousand tasks awaited at once do not
	// cost the host a thousand reads every few seconds; a read the budget
	// refuses is tried at the next pause. nil means no bound.
	Budget *ReadBudget
}

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

// watchTask reports upid's progress to logger until the returned stop is
// called. stop waits for the watcher to end and then, if the watcher had
// begun reading the log, reads what is left of it once more, so the run
// log holds the task's whole log; a task that ends before the first read
// costs no request. stop must be called exactly once.
func watchTask(ctx context.Context, logger *slog.Logger, src proxmox.TaskLogSource, upid proxmox.UPID, o ProgressOptions) (stop func()) {
	if o.Interval < 0 || src == nil || upid.IsZero() {
		return func() {}
	}
	w := &taskWatch{logger: logger, upid: upid, src: src, o: o, start: time.Now()}
	// Nothing but a timer until the first read is due: most tasks end
	// before it (Interval, 2s by default), and then the watch costs
	// neither a goroutine nor a context (BenchmarkFlowEngine).
	w.first = time.AfterFunc(o.interval(), func() { w.begin(ctx) })
	return func() { w.stop(ctx) }
}

// begin starts following the task on the first timer's goroutine, unless
// stop came first.
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

// stop ends the watch and reads what is left of a log it began reading.
func (w *taskWatch) stop(ctx context.Context) {
	w.mu.Lock()
	w.stopped = true
	w.first.Stop()
	// cancel is nil unless begin got the lock first: the timer had not
	// fired, or its function will see stopped; no watcher ran or will.
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-w.done
	if w.began && ctx.Err() == nil {
		w.read(ctx)
	}
}

type taskWatch struct {
	logger *slog.Logger
	upid   proxmox.UPID
	src    proxmox.TaskLogSource
	r      *proxmox.TaskLogReader // from the first read on
	first  *time.Timer            // of the first read; its function is begin

	mu      sync.Mutex
	stopped bool               // stop was called
	cancel  context.CancelFunc // ends the watcher; set by begin, under mu
	done    chan struct{}      // closed when the watcher has ended
	o       ProgressOptions
	start   time.Time
	began   bool      // the log has been read at least once
	heard   time.Time // the last line, or the last heartbeat
	beat    time.Duration
}

// interval is the first pause before a read, and the shortest between
// reads.
func (o ProgressOptions) interval() time.Duration {
	if o.Interval == 0 {
		return defaultProgressInterval
	}
	return o.Interval
}

// run follows the task from its first read on (watchTask's timer has
// waited the first pause) until ctx ends.
func (w *taskWatch) run(ctx context.Context) {
	lo := w.o.interval()
	w.beat = w.o.Heartbeat
	if w.beat <= 0 {
		w.beat = defaultHeartbeat
	}
	w.heard = w.start
	var t *time.Timer
	for ctx.Err() == nil {
		refused := !w.o.Budget.take()
		if !refused {
			w.began = true
			w.read(ctx)
		}
		now := time.Now()
		if now.Sub(w.heard) >= w.beat {
			waited := now.Sub(w.start).Truncate(time.Second)
			w.logger.Info(fmt.Sprintf("waiting for %s: %s", TaskWhat(w.upid), waited),
				AttrUPID, w.upid.String(), AttrWaiting, int64(waited/time.Second))
			w.heard = now
			w.beat = min(2*w.beat, maxHeartbeat)
		}
		pause := min(max(lo, now.Sub(w.start)/20), max(lo, maxProgressInterval))
		if refused {
			// Waits that woke together would be refused together again:
			// try again soon, spread over a few of the budget's slots.
			pause = min(pause, w.o.Budget.every*time.Duration(1+rand.IntN(20)))
		}
		if t == nil {
			t = time.NewTimer(pause)
			defer t.Stop()
		} else {
			t.Reset(pause)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// read logs the task's new lines. A failed read is not the wait's
// business (the wait decides the task's fate): it is logged at debug
// level and the next read tries again from the same line.
func (w *taskWatch) read(ctx context.Context) {
	if w.r == nil {
		w.r = proxmox.NewTaskLogReader(w.src, w.upid)
	}
	lines, err := w.r.Next(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Debug("task log unavailable", AttrUPID, w.upid.String(), "err", err)
		}
		return
	}
	for _, l := range lines {
		attrs := []any{AttrUPID, w.upid.String(), AttrTaskLine, l.N}
		if pct, ok := proxmox.TaskProgress(l.T); ok {
			attrs = append(attrs, AttrProgress, pct)
		}
		w.logger.Info(l.T, attrs...)
	}
	if len(lines) > 0 {
		w.heard = time.Now()
		w.beat = w.o.Heartbeat
		if w.beat <= 0 {
			w.beat = defaultHeartbeat
		}
	}
}
