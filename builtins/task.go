package builtins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TaskTable is the `task` module: follow, inspect and stop Proxmox worker
// tasks, given a task that a proxmox mutation returned or a UPID string.
//
// Every task, from a proxmox mutation or task.wait, is a value of type
// "task" (taskvalue.go) that reads, compares and prints like a struct
// of the fields
//
//	upid        string    PVE's task id; "" for a synchronous change
//	node        string    node that runs the task
//	type        string    worker type: vzdump, vzrestore, vzstart, ...
//	id          string    worker id, usually the vmid
//	status      string    "running" or "stopped"
//	exitstatus  string    "OK", "WARNINGS: N" or the error; "" while running
//	ok          bool      stopped with OK or WARNINGS
//	warnings    int       N of "WARNINGS: N", else 0
//	duration    time.duration  wall time the builtin spent (request and wait)
//	volid       string    the backup archive of a one-guest vzdump, else ""
//	backups     list      a one-guest vzdump's guest's backups on storage, listed after it (the listing volid was found in), else []
//	storage     string    the target storage of a vzdump, else ""
//	sync        bool      the change was applied without a task (LXC config)
var TaskTable = &Table{
	Name:  "task",
	Waits: true,
	Doc: "Follow Proxmox worker tasks. Every function takes a task " +
		"(returned by a proxmox mutation, for example with wait = False) or " +
		"a UPID string, and blocks at most until the run is cancelled.",
	Funcs: []Func{
		{
			Name: "wait", Effect: Reads,
			Journal: Replayed,
			Sig:     "wait(task, timeout=None)",
			Returns: taskShape,
			Doc: "Blocks until the task stops and returns the finished " +
				"task. Fails with the task's error (permission, lock, log " +
				"tail kept) when it did not stop OK or with warnings; fails " +
				"when timeout (a duration, \"10m\" or int seconds; default " +
				"the agent's wait timeout) passes first — the task itself " +
				"keeps running in Proxmox. For a one-guest vzdump started by " +
				"proxmox.vzdump, volid is the archive and backups the guest's " +
				"backups on the storage as listed after the task (the listing " +
				"volid was found in; see proxmox.content).",
			Fn: taskWait,
		},
		{
			Name: "status", Effect: Reads,
			Journal: Replayed,
			Sig:     "status(task)",
			Returns: taskStatusShape,
			Doc: "Asks Proxmox once for the task's state and returns " +
				"struct(upid, status, exitstatus, ok, running). Does not fail " +
				"because the task failed; only when Proxmox cannot answer.",
			Fn: taskStatus,
		},
		{
			Name: "log", Effect: Reads, Journal: Replayed,
			Sig: "log(task, tail=50)",
			Doc: "Returns the task log as a list of strings: the last tail " +
				"lines, or every line when tail = 0. The last line of a " +
				"stopped task is PVE's \"TASK OK\" / \"TASK ERROR: ...\".",
			Fn: taskLog,
		},
		{
			Name: "stop", Effect: Gated, Destructive: "for a task this run did not start", Journal: Once,
			Sig: "stop(task)",
			Doc: "Asks Proxmox to stop a running task and returns None " +
				"without waiting; follow with task.wait to see it end.",
			Fn: taskStop,
		},
	},
}

// taskResult is what the task struct shows; see [TaskTable].
type taskResult struct {
	UPID       proxmox.UPID
	text       string // UPID's text when already made ("" makes it)
	Status     string // "running" or "stopped"
	ExitStatus string
	Duration   time.Duration
	VolID      string
	Backups    []proxmox.Volume // the listing VolID was found in
	Storage    string
	Sync       bool
}

// syncResult is a change Proxmox applied without a task.
func syncResult(d time.Duration) taskResult {
	return taskResult{Status: "stopped", ExitStatus: "OK", Duration: d, Sync: true}
}

// The usual values of a task's status and exit status, boxed once.
var (
	boxedRunning starlark.Value = starlark.String("running")
	boxedStopped starlark.Value = starlark.String("stopped")
	boxedOK      starlark.Value = starlark.String("OK")
)

// taskString is s as a Starlark value, without an allocation for a task's
// usual status and exit status.
func taskString(s string) starlark.Value {
	switch s {
	case "running":
		return boxedRunning
	case "stopped":
		return boxedStopped
	case "OK":
		return boxedOK
	}
	return starlark.String(s)
}

// waitOptions is the run's wait configuration with a per-call timeout.
func waitOptions(env *Env, timeout durationArg) proxmox.WaitOptions {
	o := env.Wait
	if timeout.set {
		o.Timeout = timeout.d
	}
	return o
}

// finish waits for upid and fills in r, expecting it to run as long as
// its history says (Env.History) unless someone follows the run; while it
// waits, the task's log
// and a heartbeat go to the run log (progress.go). WaitTask returns the
// client's *proxmox.TaskError for a failed task, which passes through
// unchanged. For a one-guest vzdump (PVE names the guest in the UPID's id
// only then) with a known storage, it finds the archive in one listing of
// the guest's backups, which the task struct carries on (so a check of the
// archive and a retention plan need no listing of their own).
func finish(env *Env, api taskWaiter, r taskResult, o proxmox.WaitOptions, start time.Time) (taskResult, error) {
	ctx := env.Context
	// History makes a wait poll sparsely early on, and the log of a task
	// someone follows is read only at polls: a followed wait keeps the
	// ordinary schedule, for the follower's sake.
	if o.Expected == 0 && env.History != nil && (env.Progress.Followers == nil || env.Progress.Followers.Follows(ctx) == 0) {
		o.Expected = env.History.ExpectedDuration(ctx, r.UPID)
	}
	w := watchTask(ctx, env.Logger, api, r.UPID, env.Progress)
	if w != nil {
		o.Polled = w.polled
	}
	st, err := api.WaitTask(ctx, r.UPID, o)
	w.stop()
	if err != nil {
		return r, err
	}
	if st.Running() {
		return r, fmt.Errorf("task %s: wait returned while it is still running", r.UPID)
	}
	if !st.Succeeded() {
		// WaitTask's contract: a failed task comes with its *TaskError.
		return r, fmt.Errorf("task %s stopped with %q, but the wait reported no error", r.UPID, st.ExitStatus)
	}
	r.Status, r.ExitStatus = st.Status, st.ExitStatus
	if r.UPID.Type == "vzdump" && r.UPID.ID != "" && r.Storage != "" {
		volid, backups, err := api.VzdumpBackups(ctx, r.UPID, r.Storage)
		if err != nil {
			return r, fmt.Errorf("backup task %s succeeded, but its archive on %s was not found: %w", r.UPID, r.Storage, err)
		}
		r.VolID, r.Backups = volid, backups
	}
	r.Duration = time.Since(start)
	return r, nil
}

// taskRef is a task argument: a task struct (its upid, storage and sync
// fields) or a UPID string.
type taskRef struct {
	upid    proxmox.UPID
	storage string
	sync    bool
}

var _ starlark.Unpacker = (*taskRef)(nil)

func (t *taskRef) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.String:
		return t.parse(string(v))
	case *taskValue:
		if v.r.Sync {
			*t = taskRef{sync: true}
			return nil
		}
		if v.r.UPID.IsZero() {
			return fmt.Errorf("task has no upid")
		}
		*t = taskRef{upid: v.r.UPID, storage: v.r.Storage}
		return nil
	case *starlarkstruct.Struct:
		if s, err := v.Attr("sync"); err == nil && s == starlark.True {
			*t = taskRef{sync: true}
			return nil
		}
		u, err := v.Attr("upid")
		if err != nil {
			return fmt.Errorf("struct has no upid field, want a task")
		}
		s, ok := starlark.AsString(u)
		if !ok {
			return fmt.Errorf("task upid is %s, want string", u.Type())
		}
		if err := t.parse(s); err != nil {
			return err
		}
		if st, err := v.Attr("storage"); err == nil {
			t.storage, _ = starlark.AsString(st)
		}
		return nil
	}
	return fmt.Errorf("got %s, want a task or a UPID string", v.Type())
}

func (t *taskRef) parse(s string) error {
	u, err := proxmox.ParseUPID(s)
	if err != nil {
		return err
	}
	*t = taskRef{upid: u}
	return nil
}

// unpackTask unpacks a builtin's arguments whose first is the task, and
// keeps a malformed UPID's *proxmox.UPIDError in the chain.
func unpackTask(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, more ...any) (taskRef, error) {
	var raw starlark.Value
	pairs := append([]any{"task", &raw}, more...)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return taskRef{}, err
	}
	var t taskRef
	if err := t.Unpack(raw); err != nil {
		return taskRef{}, fmt.Errorf("%s: for parameter task: %w", b.Name(), err)
	}
	return t, nil
}

func taskWait(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var timeout durationArg
	t, err := unpackTask(b, args, kwargs, "timeout??", &timeout)
	if err != nil {
		return nil, err
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if t.sync {
		return syncResult(0).value(), nil
	}
	r, err := finish(env, api, taskResult{UPID: t.upid, Storage: t.storage}, waitOptions(env, timeout), start)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return r.value(), nil
}

func taskStatus(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	t, err := unpackTask(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	st := proxmox.TaskStatus{UPID: t.upid, Status: "stopped", ExitStatus: "OK"}
	if !t.sync {
		if st, err = api.TaskStatusOnce(env.Context, t.upid); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	return newStruct(starlark.StringDict{
		"upid":       starlark.String(t.upid.String()),
		"status":     starlark.String(st.Status),
		"exitstatus": starlark.String(st.ExitStatus),
		"ok":         starlark.Bool(st.Succeeded()),
		"running":    starlark.Bool(st.Running()),
	}), nil
}

// logPage is how many lines one task-log request asks for when the whole
// log is wanted; logMax bounds it, so a runaway log cannot exhaust memory.
const (
	logPage = 500
	logMax  = 100000
)

func taskLog(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	tail := 50
	t, err := unpackTask(b, args, kwargs, "tail?", &tail)
	if err != nil {
		return nil, err
	}
	if tail < 0 {
		return nil, fmt.Errorf("%s: tail must be >= 0, got %d", b.Name(), tail)
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if t.sync {
		return starlark.NewList(nil), nil
	}
	var lines []string
	if tail > 0 {
		lines, err = api.TaskLogTail(env.Context, t.upid, tail)
	} else {
		lines, err = fullLog(env.Context, api, t.upid)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return stringList(lines), nil
}

// fullLog pages through the whole task log.
func fullLog(ctx context.Context, api taskAPI, upid proxmox.UPID) ([]string, error) {
	var out []string
	for len(out) < logMax {
		page, err := api.TaskLog(ctx, upid, len(out), logPage)
		if err != nil {
			return nil, err
		}
		for _, l := range page {
			out = append(out, l.T)
		}
		if len(page) < logPage {
			return out, nil
		}
	}
	return out, nil
}

func taskStop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	t, err := unpackTask(b, args, kwargs)
	if err != nil {
		return nil, err
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if t.sync {
		return nil, fmt.Errorf("%s: the change was applied synchronously; there is no task to stop", b.Name())
	}
	if err := api.StopTask(env.Context, t.upid); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

// errNoProxmox is returned (wrapped with the builtin's name) when the run
// has no Proxmox API client.
var errNoProxmox = errors.New("no Proxmox API configured")

// proxmoxEnv is how builtins that call Proxmox start: the run's Env and
// its client, or ErrAtLoadTime / errNoProxmox named after the builtin.
func proxmoxEnv(thread *starlark.Thread, b *starlark.Builtin) (*Env, GuestAPI, error) {
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, nil, err
	}
	if env.Proxmox == nil {
		return nil, nil, fmt.Errorf("%s: %w", b.Name(), errNoProxmox)
	}
	return env, env.Proxmox, nil
}
