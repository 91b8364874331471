package builtins

import (
	"errors"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// catchFunc is catch(): Starlark has no try/except, so a flow that wants to
// react to a failure ("is it a lock? wait and retry"; "is the snapshot
// already gone? fine") calls through catch and inspects the typed result.
var catchFunc = Func{
	Name:    "catch",
	Sig:     "catch(fn, *args, **kwargs)",
	Journal: Pure,
	Returns: catchShape,
	Doc: `Calls fn(*args, **kwargs) and returns struct(ok, value, error) instead of failing the run.
On success: ok = True, value = what fn returned, error = None.
On failure: ok = False, value = None, and error is a struct with
  message     the error text, starting with the failing builtin's name
  kind        "permission", "lock", "elsewhere" (on another node of the cluster), "not_found", "ambiguous", "task", "api", "signature" (the safety gate held a destructive call for an operator's signature) or "error"
  privilege   the missing privilege(s) of a permission failure ("VM.Config.Disk|VM.Config.CPU"), else ""
  path        the ACL path of a permission failure ("/vms/101"), else ""
  lock        the guest lock PVE named ("backup", "snapshot"), else ""
  exitstatus  a failed task's exit status, else ""
  upid        a failed task's UPID, else ""
  log         the last lines of a failed task's log (list of strings)
  status      the HTTP status of a failed API request, else 0
Cancellation, a timeout, the step budget, a replay that diverged from its journal and calls that may only run at run time are never caught: they still stop the run (or the file's load).`,
	Fn: catch,
}

func catch(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	// fn is positional-only and everything after it is passed through, so
	// catch(f, x, fn = 1) calls f(x, fn = 1).
	if len(args) == 0 {
		return nil, Errorf(b, "missing argument for fn")
	}
	var fn starlark.Callable
	if err := starlark.UnpackPositionalArgs(b.Name(), args[:1], nil, 1, &fn); err != nil {
		return nil, err
	}
	v, err := starlark.Call(thread, fn, args[1:], kwargs)
	if err == nil {
		return catchResult(true, v, starlark.None), nil
	}
	// A run that is being stopped must stop: the interpreter would fail at
	// the caller's next step anyway (Thread.Cancel is checked on every
	// step), but returning the error here keeps the reason intact.
	if env := EnvOf(thread); env != nil && env.Context != nil && env.Context.Err() != nil {
		return nil, err
	}
	if errors.Is(err, ErrAtLoadTime) || unstoppable(err) {
		return nil, err
	}
	return catchResult(false, starlark.None, errorStruct(err)), nil
}

func catchResult(ok bool, value, errv starlark.Value) starlark.Value {
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"ok":    starlark.Bool(ok),
		"value": value,
		"error": errv,
	})
}

// errorStruct describes err for a flow, using the same classification as
// the run record (proxmox.Kind), looked up through the *starlark.EvalError
// chain with errors.As.
func errorStruct(err error) starlark.Value {
	kind := proxmox.Kind(err)
	if kind == "" {
		kind = "error"
	}
	var privilege, path, lock, exitstatus, upid string
	var status int
	logLines := starlark.NewList(nil)
	if p, ok := proxmox.IsPermission(err); ok {
		privilege, path = strings.Join(p.Privileges, "|"), p.Path
	}
	if l, ok := proxmox.IsLocked(err); ok {
		lock = l
	}
	if te, ok := errors.AsType[*proxmox.TaskError](err); ok {
		exitstatus = te.ExitStatus
		if !te.UPID.IsZero() {
			upid = te.UPID.String()
		}
		for _, line := range te.LogTail {
			logLines.Append(starlark.String(line))
		}
	}
	if ae, ok := errors.AsType[*proxmox.APIError](err); ok {
		status = ae.Status
	}
	msg := err.Error()
	if ee, ok := errors.AsType[*starlark.EvalError](err); ok {
		msg = ee.Msg
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"message":    starlark.String(msg),
		"kind":       starlark.String(kind),
		"privilege":  starlark.String(privilege),
		"path":       starlark.String(path),
		"lock":       starlark.String(lock),
		"exitstatus": starlark.String(exitstatus),
		"upid":       starlark.String(upid),
		"log":        logLines,
		"status":     starlark.MakeInt(status),
	})
}
