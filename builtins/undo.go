package builtins

import (
	"fmt"
	"strings"
	"sync"

	"go.starlark.net/starlark"
)

// undoFunc is undo(): a playbook registers, as it goes, how to take back
// what it just did; the runtime runs the registrations newest first when
// the run does not succeed.
var undoFunc = Func{
	Name:    "undo",
	Sig:     "undo(fn, *args, **kwargs)",
	Journal: Pure,
	Doc: `Registers a compensation: fn(*args, **kwargs) runs if this run fails, times out, is cancelled or is abandoned — not when it succeeds, and not when the agent merely stops (a resumable run then resumes).
Compensations run newest first, each in its own Starlark call, within the playbook's undo_timeout (default 10m) on a context of their own; one that fails is logged and reported (with the guest and the error) and the others still run. The run keeps its status (failed, cancelled, timed_out) and its error says what was undone and what could not be.
After a crash, a run that does not resume (or whose resume diverges) is replayed from its journal up to where it stopped, then its compensations run; they are journaled like any call, so a crash during the undo resumes the undo. Write compensations so that running one twice is harmless (check the state first: delete a guest only if it still exists).
Returns None. Arguments are frozen when registered.`,
	Fn: undoBuiltin,
}

func undoBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) == 0 {
		return nil, Errorf(b, "missing argument for fn")
	}
	var fn starlark.Callable
	if err := starlark.UnpackPositionalArgs(b.Name(), args[:1], nil, 1, &fn); err != nil {
		return nil, err
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if env.Undo == nil {
		return nil, Errorf(b, "this run has no undo stack")
	}
	rest := append(starlark.Tuple(nil), args[1:]...)
	kw := append([]starlark.Tuple(nil), kwargs...)
	rest.Freeze()
	for _, kv := range kw {
		kv.Freeze()
	}
	env.Undo.push(Compensation{Fn: fn, Args: rest, Kwargs: kw, Pos: callerPos(thread)})
	return starlark.None, nil
}

// Compensation is one undo() registration.
type Compensation struct {
	Fn     starlark.Callable
	Args   starlark.Tuple
	Kwargs []starlark.Tuple
	Pos    string // where undo() was called
}

// String is how logs and the run's error name it: fn(args) at pos.
func (c Compensation) String() string {
	var parts []string
	for _, a := range c.Args {
		parts = append(parts, a.String())
	}
	for _, kv := range c.Kwargs {
		parts = append(parts, fmt.Sprintf("%s = %s", string(kv[0].(starlark.String)), kv[1]))
	}
	return fmt.Sprintf("%s(%s) (registered at %s)", c.Fn.Name(), strings.Join(parts, ", "), c.Pos)
}

// UndoStack is a run's compensations, in registration order. Safe for
// concurrent use.
type UndoStack struct {
	mu    sync.Mutex
	items []Compensation
}

func (s *UndoStack) push(c Compensation) {
	s.mu.Lock()
	s.items = append(s.items, c)
	s.mu.Unlock()
}

// Newest returns the compensations newest first, the order they run in.
func (s *UndoStack) Newest() []Compensation {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Compensation, len(s.items))
	for i, c := range s.items {
		out[len(s.items)-1-i] = c
	}
	return out
}

// Len is how many compensations are registered.
func (s *UndoStack) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}
