package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
)

// Backend is what the local API needs from the daemon. Package runtime
// implements it; every method may be called concurrently, and ctx is the
// request's (cancelled when the client goes away).
//
// Errors: wrap ErrNotFound for an unknown run or playbook (404),
// ErrConflict for a request the run's state forbids (409), ErrTooMany for
// a full queue (429) and ErrUnavailable for what cannot be done now (503,
// the store cannot write); return a
// *BadRequestError for refused input (400, naming the field). Any other
// error is answered 500 with a generic message and logged in full.
type Backend interface {
	// Runs lists runs matching f, newest first.
	Runs(ctx context.Context, f ListFilter) ([]Run, error)
	// Run returns one run. id may be a unique prefix of a run id, as
	// git takes one (the answer carries the full id); a prefix more
	// than one run starts with is an *AmbiguousError.
	Run(ctx context.Context, id string) (Run, error)
	// Logs returns up to limit lines of run id's log with Seq > after,
	// oldest first; fewer than limit means there are no more right now.
	// limit is always at least 1.
	Logs(ctx context.Context, id string, after int64, limit int) ([]LogLine, error)
	// Cancel asks run id to stop and returns without waiting for it.
	// Cancelling a finished run is ErrConflict; cancelling a run that is
	// already being cancelled is not an error.
	Cancel(ctx context.Context, id string) error
	// Playbooks lists every playbook file the agent knows, including those
	// whose last load failed, sorted by name.
	Playbooks(ctx context.Context) ([]Playbook, error)
	// Start validates req.Params against the playbook's declaration and
	// starts a run (Source "api"), returning it as recorded. A refused
	// parameter is a *BadRequestError with Field "params.NAME".
	Start(ctx context.Context, req TriggerRequest) (Run, error)
}

// Waiter is an optional Backend extension, found by type assertion, that
// lets the follow stream wake on news instead of polling.
type Waiter interface {
	// WaitChange blocks until run id has a log line with Seq > after or
	// has finished, or ctx is done (then it returns ctx's error). It must
	// return at once when either is already true, so that no change
	// between the caller's last look and this call is lost; returning
	// early without news is allowed.
	WaitChange(ctx context.Context, id string, after int64) error
}

// FollowMarker is an optional Backend extension, found by type assertion:
// a follow stream tells the daemon that someone follows run id's log as
// it is written, from the call until done is called, so that the run
// reads its tasks' logs into it (which it does only while followed).
type FollowMarker interface {
	Following(id string) (done func())
}

// TriggerStarter is an optional Backend extension, found by type
// assertion, that starts runs by trigger name (TriggerRequest.Trigger):
// every playbook whose declaration lists the trigger, all or none. Without
// it such a request is refused (400).
type TriggerStarter interface {
	// StartTrigger validates req's parameters against every playbook that
	// answers req.Trigger and starts one run of each (Source "api"),
	// returning them as recorded, in playbook name order. No playbook
	// answering is ErrNotFound; a refused parameter is a
	// *BadRequestError with Field "params.NAME" and starts nothing.
	StartTrigger(ctx context.Context, req TriggerRequest) ([]Run, error)
}

// Planner is an optional Backend extension, found by type assertion: the
// daemon plans a run of a playbook (POST /v1/plan, `felhom-agent trigger
// --plan`) — what it would do, changing nothing on the host. Without it
// such a request is 503.
type Planner interface {
	// Plan validates req.Params against playbook req.Playbook exactly as
	// Start does (a refused parameter is a *BadRequestError with Field
	// "params.NAME", an unknown playbook ErrNotFound) and returns the
	// plan as a JSON object (runtime/plan's Report).
	Plan(ctx context.Context, req TriggerRequest) (json.RawMessage, error)
}

// GuestTokenMinter is an optional Backend extension, found by type
// assertion: the daemon serves the guest API and mints guest tokens
// (POST /v1/guests/{vmid}/token, `felhom-agent guest-token rotate`).
// Without it such a request is 503.
type GuestTokenMinter interface {
	// MintGuestToken gives guest vmid a new token (the old one stops
	// answering), rewrites its bootstrap file and attaches it. A VM is a
	// *BadRequestError; an unknown guest ErrNotFound.
	MintGuestToken(ctx context.Context, vmid int) (GuestToken, error)
}

// GuestToken is a minted guest token, shown once.
type GuestToken struct {
	VMID      int    `json:"vmid"`
	Token     string `json:"token"`     // the bearer token; this answer is the only place it appears
	Bootstrap string `json:"bootstrap"` // the bootstrap file on the host
	Mount     string `json:"mount,omitempty"`
	Attached  bool   `json:"attached"`
	Warning   string `json:"warning,omitempty"` // what is left to do, when something was
}

// Resumer is an optional Backend extension, found by type assertion, for
// runs the agent's stop interrupted: Resume resumes run id from its
// journal, Abandon replays it to where it stopped and runs its
// compensations (undo), then it fails. Both return once the run is under
// way; a run that is not interrupted is ErrConflict. Without it both
// requests are answered 404.
type Resumer interface {
	Resume(ctx context.Context, id string) error
	Abandon(ctx context.Context, id string) error
}

// AmbiguousError is a run id prefix that more than one run starts with:
// 400, listing (some of) them, so that people can pick.
type AmbiguousError struct {
	Prefix     string
	Candidates []string // full run ids, at most a handful
}

// Error is "run id prefix P is ambiguous: ID, ID, ...".
func (e *AmbiguousError) Error() string {
	return "run id prefix " + e.Prefix + " is ambiguous: " + strings.Join(e.Candidates, ", ")
}

var (
	// ErrNotFound is an unknown run or playbook: 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict is a request the run's state forbids, such as cancelling
	// a run that has finished: 409.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is a request the agent cannot take now, such as a
	// run while its run store cannot write: 503, with the error's text.
	ErrUnavailable = errors.New("unavailable")
	// ErrTooMany is a start refused because the playbook's queue is full:
	// 429, with the error's text.
	ErrTooMany = errors.New("too many runs queued")
)

// BadRequestError is input the backend refuses: 400, with Field in the
// answer. Field is a request field ("playbook") or a parameter
// ("params.storage"); Msg says what is wrong and, since requests are logged,
// should not repeat a value that may be secret.
type BadRequestError struct {
	Field string
	Msg   string
}

// Error is "FIELD: MSG", the message the client sees.
func (e *BadRequestError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}
