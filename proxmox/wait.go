package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ErrWaitTimeout is the error [Client.WaitTask] wraps when
// WaitOptions.Timeout passed before the task stopped. The task itself
// goes on running; only the wait ended.
var ErrWaitTimeout = errors.New("timed out waiting for the task")

// Defaults of WaitOptions (see its doc in types.go).
const (
	defaultWaitMin     = 250 * time.Millisecond
	defaultWaitMax     = 2 * time.Second
	defaultWaitLogTail = 20
)

// WaitTask polls a task until it stops and returns its final status.
//
// The first poll is immediate; then it sleeps o.MinInterval, doubling up to
// o.MaxInterval. It returns when the task stops, when o.Timeout passes
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
	c.log.DebugContext(ctx, "proxmox task wait", "upid", upid.String(), "status", st.Status, "exitstatus", st.ExitStatus, "took", time.Since(start), "err", err)
	return st, err
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
	last := TaskStatus{UPID: upid}
	interval := min(lo, hi)
	for {
		st, err := c.TaskStatusOnce(wctx, upid)
		switch {
		case err == nil && !st.Running():
			return c.finished(ctx, st, tail)
		case err == nil:
			last = st
		case wctx.Err() != nil:
			return last, c.waitEnded(ctx, wctx, upid, o.Timeout)
		case !pollTransient(err):
			return last, fmt.Errorf("waiting for task %s: %w", upid, err)
		default:
			c.log.DebugContext(ctx, "proxmox task poll failed, polling on", "upid", upid.String(), "err", err)
		}
		if sleepCtx(wctx, interval) != nil {
			return last, c.waitEnded(ctx, wctx, upid, o.Timeout)
		}
		interval = min(interval*2, hi)
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
