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
	w := &taskWatch{logger: logger, upid: upid, r: proxmox.NewTaskLogReader(src, upid), o: o, start: time.Now()}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(wctx) })
	return func() {
		cancel()
		wg.Wait()
		if w.began && ctx.Err() == nil {
			w.read(ctx)
		}
	}
}

type taskWatch struct {
	logger *slog.Logger
	upid   proxmox.UPID
	r      *proxmox.TaskLogReader
	o      ProgressOptions
	start  time.Time
	began  bool      // the log has been read at least once
	heard  time.Time // the last line, or the last heartbeat
	beat   time.Duration
}

func (w *taskWatch) run(ctx context.Context) {
	lo := w.o.Interval
	if lo == 0 {
		lo = defaultProgressInterval
	}
	w.beat = w.o.Heartbeat
	if w.beat <= 0 {
		w.beat = defaultHeartbeat
	}
	w.heard = w.start
	pause := lo
	t := time.NewTimer(pause)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
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
		pause = min(max(lo, now.Sub(w.start)/20), max(lo, maxProgressInterval))
		if refused {
			// Waits that woke together would be refused together again:
			// try again soon, spread over a few of the budget's slots.
			pause = min(pause, w.o.Budget.every*time.Duration(1+rand.IntN(20)))
		}
		t.Reset(pause)
	}
}

// read logs the task's new lines. A failed read is not the wait's
// business (the wait decides the task's fate): it is logged at debug
// level and the next read tries again from the same line.
func (w *taskWatch) read(ctx context.Context) {
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
