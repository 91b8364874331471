package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// The undo path: a run that does not succeed — it failed, timed out, was
// cancelled or abandoned, or a replay diverged or reached where a crashed
// run had stopped — runs the compensations it registered with undo(),
// newest first, each in its own Starlark call on a thread and context of
// their own, bounded together by the playbook's undo_timeout. A run the
// agent interrupted (ErrInterrupt) runs none: it resumes, or is undone,
// at the next start. Compensations are journaled like the body's calls,
// after a mark (Journal.BeginUndo), so a crash during the undo replays
// into it and goes on where it stopped.

// undoPath is what a run leaves for its undo: the Env its builtins had
// (journal and compensations included).
type undoPath struct {
	env    builtins.Env
	params *Params
}

// runUndo runs the compensations of a run that did not succeed and adds
// what they did to res.
func (e *Engine) runUndo(parent context.Context, pb *Playbook, res *Result, logger *slog.Logger, opts RunOptions, u *undoPath) {
	comps := u.env.Undo.Newest()
	timeout := pb.Decl.UndoTimeout
	if timeout <= 0 {
		timeout = DefaultUndoTimeout
	}
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	defer cancel(nil)
	ctx, cancelT := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the undo did not finish within undo_timeout (%s)", timeout))
	defer cancelT()
	if opts.Stopping != nil {
		stop := context.AfterFunc(opts.Stopping, func() {
			if errors.Is(context.Cause(opts.Stopping), ErrInterrupt) {
				cancel(ErrInterrupt)
			}
		})
		defer stop()
	}
	ctx = context.WithValue(ctx, runIDKey{}, res.ID)
	if j := opts.Journal; j != nil {
		if err := j.BeginUndo(res.Error); err != nil {
			res.Error += fmt.Sprintf("; nothing was undone: the journal could not record the undo's start: %v", err)
			logger.Error("cannot start the undo: the journal cannot record it", "err", err)
			return
		}
	}
	logger.Warn("undoing the run: running its compensations, newest first", "compensations", len(comps), "timeout", timeout)

	env := u.env
	env.Context = ctx
	thread := &starlark.Thread{
		Name: res.ID + "/undo",
		Print: func(_ *starlark.Thread, msg string) {
			if env.Journal == nil || !env.Journal.Replaying() {
				logger.InfoContext(ctx, msg)
			}
		},
		Load: func(*starlark.Thread, string) (starlark.StringDict, error) {
			return nil, errors.New("load() runs only while a file loads")
		},
	}
	thread.SetMaxExecutionSteps(e.cfg.MaxSteps)
	env.Undo = nil // a compensation registers none
	builtins.SetEnv(thread, &env)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(context.Cause(ctx).Error()) })
	defer stop()

	var failed []string
	for i, c := range comps {
		if ctx.Err() != nil {
			for _, left := range comps[i:] {
				res.Undo = append(res.Undo, UndoStep{Call: left.String(), Error: "not run: " + context.Cause(ctx).Error()})
				failed = append(failed, left.String()+": not run")
			}
			break
		}
		start := time.Now()
		err := compensate(thread, c)
		step := UndoStep{Call: c.String()}
		if err != nil {
			msg := err.Error()
			var ee *starlark.EvalError
			if errors.As(err, &ee) {
				msg = ee.Msg
				if pos := errPos(err); pos != "" {
					msg = pos + ": " + msg
				}
			}
			step.Error = msg
			failed = append(failed, c.String()+": "+msg)
			logger.Error("cleanup failed", "compensation", c.String(), "err", msg, "took", time.Since(start))
			var de *builtins.DivergenceError
			if errors.As(err, &de) {
				res.Undo = append(res.Undo, step)
				for _, left := range comps[i+1:] {
					res.Undo = append(res.Undo, UndoStep{Call: left.String(), Error: "not run: the undo's replay diverged from its journal"})
					failed = append(failed, left.String()+": not run")
				}
				break
			}
		} else {
			logger.Info("undone", "compensation", c.String(), "took", time.Since(start))
		}
		res.Undo = append(res.Undo, step)
	}
	switch {
	case errors.Is(context.Cause(ctx), ErrInterrupt):
		// The agent stopped during the undo: the run waits, interrupted,
		// for the next start to replay into its undo and go on.
		res.Status = runstate.Interrupted
		res.Error += "; the agent stopped during its undo, which goes on at the next start"
	case len(failed) == 0:
		res.Error += fmt.Sprintf("; undone: %d compensation(s) ran", len(comps))
	default:
		res.Error += "; cleanup failed: " + strings.Join(failed, "; ")
	}
}

// compensate calls one compensation, turning a builtin's panic into an
// error as call does for the body.
func compensate(thread *starlark.Thread, c builtins.Compensation) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	_, err = starlark.Call(thread, c.Fn, c.Args, c.Kwargs)
	return err
}
