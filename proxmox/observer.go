package proxmox

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Observer is told what a Client does on behalf of one context: the run
// store records the UPIDs a run started, and a run counts its API requests.
// Attach one with [WithObserver]; a Client calls the observer of the
// context each method was given, synchronously, so methods must be quick
// and must not call back into the Client. One context may be shared by
// goroutines, so an Observer must be safe for concurrent use.
type Observer interface {
	// Request is called once per HTTP attempt, retries included, after
	// the attempt has finished. A poll that several task waits share (see
	// [Client.WaitTask]) is reported to one of them, the youngest, and
	// possibly just after that wait has returned.
	Request(RequestInfo)
	// TaskStarted is called as soon as a mutation returned a UPID, before
	// the caller waits for it. Synchronous mutations (zero UPID) do not
	// call it.
	TaskStarted(UPID)
	// TaskWaited is called when [Client.WaitTask] returns, with the time
	// it waited, the last status it saw and the error it returns.
	TaskWaited(UPID, time.Duration, TaskStatus, error)
}

// MutationGate is an optional extension of an [Observer], found by type
// assertion: a Client asks it before sending each mutation and sends
// nothing when it refuses. The agent uses it so that a mutation is never
// sent unless the run's record can be written (it writes the mutation's
// intent first). BeforeMutation runs synchronously on the caller's
// goroutine, like the Observer's methods; its error is returned to the
// caller wrapped with [ErrNotSent]. [Privileged] asks it too, before each
// fenced command that changes the host, with method "EXEC" and the
// command line as path, when the context has no [RootGate].
//
// The safety gate (runtime/safety) is one: it classifies each mutation by
// its effect from m and refuses, or parks, a destructive one.
type MutationGate interface {
	BeforeMutation(ctx context.Context, m Mutation) error
}

// Mutation is one mutating request as a [MutationGate] sees it, before it
// is sent.
type Mutation struct {
	Method string     // POST, PUT, DELETE
	Path   string     // below /api2/json, unescaped: /nodes/pve/lxc/100
	Params url.Values // the form it sends; read only
}

// RootGate is an optional extension of an [Observer], found by type
// assertion like [MutationGate]: [Privileged] asks it before each root
// command that changes the host (a read such as smartctl is not asked),
// and runs nothing when it refuses; the error is returned wrapped with
// [ErrNotSent].
type RootGate interface {
	BeforeRoot(ctx context.Context, op RootOp) error
}

// RootOp is one changing root command as a [RootGate] sees it.
type RootOp struct {
	Op   string   // the operation's name: "create_golden", "mount_usb"
	VMID int      // the guest it creates or changes; 0 for none
	Argv []string // the validated command line it would run
}

// ErrNoGate is returned by a Client or Privileged told to require a gate
// ([Client.RequireGate], [Privileged.RequireGate]) for a change
// asked with a context that carries none: a path that forgot the gate
// fails closed instead of reaching the host.
var ErrNoGate = errors.New("no safety gate on this call's context; nothing was sent")

// RequestInfo describes one HTTP attempt.
type RequestInfo struct {
	Method  string        // GET, POST, PUT, DELETE
	Path    string        // below /api2/json, unescaped, without query
	Attempt int           // 1 for the first try, 2 for the first retry, ...
	Status  int           // HTTP status; 0 when no response arrived
	Took    time.Duration // from sending to the end of the body
	Err     error         // nil on success; an *APIError or a transport error
}

type observerKey struct{}

// WithObserver returns a copy of ctx that carries o; every Client call made
// with that context (or one derived from it) reports to o. A nil o removes
// an observer set further up.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// observerFrom returns ctx's Observer, or nil.
func observerFrom(ctx context.Context) Observer {
	o, _ := ctx.Value(observerKey{}).(Observer)
	return o
}
