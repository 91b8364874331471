package builtins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.starlark.net/starlark"
)

// Durable runs (see [Journal]): a run's builtin calls are journaled as
// they happen, so that a run interrupted by the agent's stop can be
// re-executed from the top with every call answered from the journal by
// its sequence number until the journal ends, and then go on live.
// Starlark is deterministic — no clocks, randomness or unspecified
// iteration besides the builtins — so the playbook calls the same
// builtins with the same arguments again; where it does not, the replay
// stops with [*DivergenceError].

// Journaling is how one builtin is journaled. Every [Func] declares it
// ([Table.Check] refuses the zero value), so a builtin added later —
// notify, hub.*, token minting — cannot be replayed by accident.
type Journaling uint8

// The ways a builtin is journaled.
const (
	journalingUnset Journaling = iota
	// Pure computes only from its arguments (json, struct, catch, undo,
	// log lines): it is not journaled and runs again on replay. Log lines
	// are not written again while a run replays.
	Pure
	// Replayed reads the outside world or varies (reads of Proxmox and the
	// host, time.now, monitors, task waits): its outcome — the value it
	// returned or its typed error — is journaled, and a replay answers it
	// from the journal without calling it.
	Replayed
	// Once changes the world or tells someone (root commands, task.stop,
	// notify.send, gauges): its intent is journaled before it acts and its
	// outcome after; a replay answers it from the journal and never calls
	// it again. A call the agent stopped inside (intent, no outcome) is
	// made again.
	Once
	// Mutation is a Proxmox mutation: its intent is journaled before the
	// request is sent, its UPID as soon as the request returns, and its
	// outcome when the task stops. A replay answers it from the journal; a
	// recorded UPID is waited for and never sent again; an intent without
	// a UPID is looked up in the node's task list and adopted when found,
	// and sent again only when Proxmox shows it never started.
	Mutation
)

// String is the word the reference uses.
func (j Journaling) String() string {
	switch j {
	case Pure:
		return "not journaled (pure)"
	case Replayed:
		return "journaled; answered from the journal on replay"
	case Once:
		return "journaled; never made again on replay"
	case Mutation:
		return "journaled with its intent, UPID and result; a recorded task is waited for, never sent again"
	}
	return "undeclared"
}

// EntryState is what the journal holds for one sequence number.
type EntryState uint8

// The states of a journal entry.
const (
	// EntryLive: the journal has nothing for this call; make it.
	EntryLive EntryState = iota
	// EntryDone: the journal holds its outcome; answer it from there.
	EntryDone
	// EntryPending: the journal holds its intent (and maybe its UPID) but
	// no outcome: the agent stopped inside it.
	EntryPending
)

// Entry is the journal's answer for one call.
type Entry struct {
	Seq     int
	State   EntryState
	Outcome []byte    // EntryDone: the encoded outcome (see EncodeOutcome)
	Intent  time.Time // EntryPending: when its intent was written
	UPID    string    // EntryPending: the task it started, if recorded
}

// Journal is the run's journal as the builtins use it; the agent
// implements it on the run store. Methods are called from the run's
// thread, one call at a time (monitor.all's concurrent readings are one
// call). nil on Env: the run is not journaled (felhom-agent run, tests).
type Journal interface {
	// Next numbers the next journaled call of builtin (its qualified
	// name) whose arguments have digest, made at pos (file:line:col), and
	// returns what the journal holds for it. It fails with
	// *DivergenceError when the journal holds another call there, and
	// with ErrReplayStop when a run replayed to be undone has reached
	// the point where it stopped.
	Next(builtin, digest, pos string) (Entry, error)
	// Intent durably records that call seq is about to act (with every
	// outcome recorded before it). Nothing may act when it fails.
	Intent(seq int) error
	// Started durably records the UPID call seq's request returned.
	Started(seq int, upid string) error
	// Done records call seq's outcome. It may batch the outcome of a
	// Replayed call until the next Intent (or the run's end): a call
	// whose outcome is lost is made again on replay, and nothing acted on
	// it in between.
	Done(seq int, mode Journaling, outcome []byte) error
	// Digest is the digest of a call's encoded arguments (keyed, so a
	// low-entropy secret argument cannot be guessed from it).
	Digest(args []byte) string
	// Replaying reports whether calls are being answered from the journal.
	Replaying() bool
	// Claimed reports whether upid is already recorded as started by any
	// run, so reconciliation never adopts another call's task.
	Claimed(upid string) bool
	// Note counts what happened to a call: "replayed", "adopted",
	// "reissued" or "waited" (a recorded UPID waited for again).
	Note(what string)
}

// ErrReplayStop stops a run that is replayed to be undone (after a crash
// of a run that does not resume, or `runs abandon`) where it had stopped:
// the engine then runs its compensations. catch() does not catch it.
var ErrReplayStop = errors.New("replayed to where the run stopped")

// DivergenceError is a replay that met a call the journal does not hold
// at that sequence number: the playbook (or the agent's builtins) no
// longer behave as when the run started. catch() does not catch it.
type DivergenceError struct {
	Pos      string // file:line:col of the call
	Seq      int
	Journal  string // what the journal holds: "proxmox.start (digest 1a2b3c4d)"
	Playbook string // what the playbook called, in the same form
}

func (e *DivergenceError) Error() string {
	return fmt.Sprintf("non-deterministic replay at %s: journal has %s, playbook called %s (call %d)", e.Pos, e.Journal, e.Playbook, e.Seq)
}

// journalState is the run's journaled call in progress; Env.call holds
// it while the builtin runs, so that mutate can record its intent and
// UPID. Calls a journaled builtin makes itself (catch's function, a
// monitor's reads) are part of it and not journaled again.
type journalState struct {
	entry Entry
	mode  Journaling
}

// journaled wraps fn with the journal of the run, when it has one.
func journaled(mode Journaling, fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	if mode == Pure {
		return fn
	}
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		env := EnvOf(thread)
		if env == nil || env.Journal == nil || env.call != nil {
			return fn(thread, b, args, kwargs)
		}
		j := env.Journal
		e, err := j.Next(b.Name(), j.Digest(EncodeArgs(args, kwargs)), callerPos(thread))
		if err != nil {
			return nil, err
		}
		if e.State == EntryDone {
			j.Note("replayed")
			return DecodeOutcome(e.Outcome)
		}
		if mode == Once && e.State == EntryLive {
			if err := j.Intent(e.Seq); err != nil {
				return nil, fmt.Errorf("%s: not done: recording its intent: %w", b.Name(), err)
			}
		}
		env.call = &journalState{entry: e, mode: mode}
		v, err := fn(thread, b, args, kwargs)
		env.call = nil
		if err != nil && !journalable(env.Context, err) {
			return v, err // left for a resume to make again
		}
		out, encErr := EncodeOutcome(v, err)
		if encErr != nil {
			return nil, fmt.Errorf("%s: its outcome cannot be journaled: %w", b.Name(), encErr)
		}
		if derr := j.Done(e.Seq, mode, out); derr != nil {
			return nil, fmt.Errorf("%s: recording its outcome: %w", b.Name(), derr)
		}
		return v, err
	}
}

// journalable reports whether a builtin's error is its outcome: not when
// the run is being stopped (cancel, deadline, shutdown) or the journal or
// store failed, since a resume must make the call again.
func journalable(ctx context.Context, err error) bool {
	var de *DivergenceError
	switch {
	case ctx != nil && ctx.Err() != nil,
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrReplayStop), errors.As(err, &de), errors.Is(err, ErrAtLoadTime):
		return false
	}
	return true
}

// callerPos is file:line:col of the innermost Starlark call of the running
// builtin (through catch() or undo, the playbook's call of those).
func callerPos(thread *starlark.Thread) string {
	for i := 1; i < thread.CallStackDepth(); i++ {
		if _, builtin := thread.DebugFrame(i).Callable().(*starlark.Builtin); builtin {
			continue
		}
		return thread.CallFrame(i).Pos.String()
	}
	return "?"
}

// unstoppable reports whether err must stop the run even inside catch():
// a replay that diverged or reached its end.
func unstoppable(err error) bool {
	var de *DivergenceError
	return errors.Is(err, ErrReplayStop) || errors.As(err, &de)
}
