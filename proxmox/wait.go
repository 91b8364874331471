package proxmox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ErrWaitTimeout is the error [Client.WaitTask] wraps when
// WaitOptions.Timeout passed before the task stopped. The task itself
// goes on running; only the wait ended.
var ErrWaitTimeout = errors.New("timed out waiting for the task")

// WaitTask polls a task until it stops and returns its final status.
//
// A lone wait polls the task's status at once, then after sleeping a
// twentieth of the time it has waited so far, at least o.MinInterval and at
// most o.MaxInterval: it notices the end at most 5% of the task's duration
// or MinInterval late. Waits on tasks of one node, from any goroutines
// sharing this Client, share one poll of the node's active task list
// instead (GET /nodes/{node}/tasks?source=active), which follows the
// youngest wait, and each reads its task's status once, when the task has
// left the list; n such waits are also up to min(n, 10) times MinInterval
// late, and cost the host a few requests a second however many they are.
//
// It returns when the task stops, when o.Timeout passes
// (the error wraps [ErrWaitTimeout] and context.DeadlineExceeded), or when
// ctx ends (the error wraps ctx's error) — at once, also mid-sleep. A lost
// connection, a gateway error or a timed-out poll does not end the wait:
// PVE's task goes on regardless, so polling resumes.
//
// A task that stopped with "OK" or "WARNINGS: N" is a success: the status
// (warnings included) and a nil error. Any other exit status returns the
// status and a [*TaskError] with the parsed permission failure, if any, and
// the last o.LogTail log lines. The zero UPID (a synchronous operation)
// returns a stopped "OK" status at once, without a request.
func (c *Client) WaitTask(ctx context.Context, upid UPID, o WaitOptions) (TaskStatus, error) {
	if upid.IsZero() {
		return TaskStatus{Status: "stopped", ExitStatus: "OK"}, nil
	}
	start := time.Now()
	st, err := c.waitTask(ctx, upid, o)
	if obs := observerFrom(ctx); obs != nil {
		obs.TaskWaited(upid, time.Since(start), st, err)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.logWait(ctx, upid, st, time.Since(start), err)
	}
	return st, err
}

// logWait writes one wait's debug line, from a function of its own for
// the reason logRequest is one: WaitTask's frame is on the stack of every
// status poll.
//
//go:noinline
func (c *Client) logWait(ctx context.Context, upid UPID, st TaskStatus, took time.Duration, err error) {
	c.log.LogAttrs(ctx, slog.LevelDebug, "proxmox task wait", slog.String("upid", upid.String()), slog.String("status", st.Status),
		slog.String("exitstatus", st.ExitStatus), slog.Duration("took", took), slog.Any("err", err))
}

func (c *Client) waitTask(ctx context.Context, upid UPID, o WaitOptions) (TaskStatus, error) {
	lo, hi, tail := o.MinInterval, o.MaxInterval, o.LogTail
	if lo <= 0 {
		lo = defaultWaitMin
	}
	if hi <= 0 {
		hi = defaultWaitMax
	}
	if tail == 0 {
		tail = defaultWaitLogTail
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, ErrWaitTimeout)
		defer cancel()
	}
	w := &taskWait{upid: upid, id: upid.String(), ctx: wctx, since: time.Now(), lo: lo, hi: hi, expect: o.Expected, polled: o.Polled, poll: make(chan struct{}, 1)}
	c.waits.join(c, w)
	defer c.waits.leave(w)
	last := TaskStatus{UPID: upid}
	// seen is the last status known: the wait's own, or running as the
	// shared list showed it.
	seen := func() TaskStatus {
		c.waits.mu.Lock()
		defer c.waits.mu.Unlock()
		if last.Status == "" && w.listed {
			return TaskStatus{UPID: upid, Status: "running"}
		}
		return last
	}
	for {
		select {
		case <-wctx.Done():
			return seen(), c.waitEnded(ctx, wctx, upid, o.Timeout)
		case <-w.poll:
		}
		st, err := c.TaskStatusOnce(wctx, upid)
		switch {
		case err == nil && !st.Running():
			return c.finished(ctx, st, tail)
		case err == nil:
			last = st
			if w.polled != nil {
				w.polled()
			}
		case wctx.Err() != nil:
			return seen(), c.waitEnded(ctx, wctx, upid, o.Timeout)
		case !pollTransient(err):
			return seen(), fmt.Errorf("waiting for task %s: %w", upid, err)
		default:
			c.log.DebugContext(ctx, "proxmox task poll failed, polling on", "upid", upid.String(), "err", err)
		}
	}
}

// waitEnded is the error of a wait that ctx or the wait's own timeout cut
// short.
func (c *Client) waitEnded(ctx, wctx context.Context, upid UPID, timeout time.Duration) error {
	if ctx.Err() == nil && errors.Is(context.Cause(wctx), ErrWaitTimeout) {
		return fmt.Errorf("waiting for task %s: %w after %s: %w", upid, ErrWaitTimeout, timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("waiting for task %s: %w", upid, context.Cause(ctx))
}

// pollTransient reports whether a failed status poll should be repeated:
// network failures (lost, refused or timed-out connections) and PVE's
// gateway errors. A refusal from PVE (permission, missing task), a changed
// certificate or an undecodable answer will not go away by polling.
func pollTransient(err error) bool {
	if ae, ok := errors.AsType[*APIError](err); ok {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 595, 596:
			return true
		}
		return false
	}
	if trustError(err) {
		return false
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet || retryable(err)
}

// finished turns a stopped task's status into WaitTask's result. The log
// tail of a failed task is best effort: the task's error is the answer
// even when its log cannot be read.
func (c *Client) finished(ctx context.Context, st TaskStatus, tail int) (TaskStatus, error) {
	if st.Succeeded() {
		return st, nil
	}
	te := &TaskError{UPID: st.UPID, ExitStatus: st.ExitStatus}
	if p, ok := ParsePermission(st.ExitStatus); ok {
		te.Permission = p
	}
	if tail > 0 {
		lines, err := c.TaskLogTail(ctx, st.UPID, tail)
		if err != nil {
			c.log.DebugContext(ctx, "proxmox task log unavailable", "upid", st.UPID.String(), "err", err)
		}
		te.LogTail = lines
	}
	return st, te
}
