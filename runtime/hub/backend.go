package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Backend is what the hub endpoints need from the daemon. The daemon
// (package runtime/agent) implements it; the handler calls it only for requests
// whose signature verified and whose body parsed.
//
// Both methods may be called concurrently.
type Backend interface {
	// StartTrigger starts a run of every playbook that answers t.Name, or,
	// if a trigger with t.ID was accepted before, starts nothing and
	// returns the runs that one started with existing = true.
	//
	// It must be all or nothing: t.Params are validated and coerced against
	// the declaration of every answering playbook before any run starts,
	// and the trigger id is recorded together with the runs, so that a
	// crash or a concurrent retry can never start a second set. keyID is
	// the id of the key that signed the request, for the run record.
	//
	// Errors: ErrUnknownTrigger (or an error wrapping it) when no playbook
	// answers t.Name; ErrBlocked while the hub has blocked the host; a
	// *ParamError when a parameter is refused; ErrUnavailable when the
	// agent cannot record the trigger (503); a *QueueFullError when a
	// playbook's queue is full (429); anything else is an internal
	// failure, answered 500 and logged. In every error case nothing is
	// recorded as accepted.
	StartTrigger(ctx context.Context, keyID string, t Trigger) (runs []RunRef, existing bool, err error)

	// TriggeredRun returns the state of run id, if and only if a hub trigger
	// started it; for any other id, including runs started from the
	// command line or by a timer, it returns ErrUnknownRun.
	TriggeredRun(ctx context.Context, id string) (RunStatus, error)
}

// RunRef names one run that a trigger started. It is the element of the
// "runs" array of a trigger's answer.
type RunRef struct {
	ID       string `json:"id"`
	Playbook string `json:"playbook"`
}

// RunStatus is what GET /v1/runs/{id} tells the hub of a run. Times are
// UTC in RFC 3339; Started and Ended are absent until they happen, and a
// run is finished exactly when Ended is set.
type RunStatus struct {
	ID        string `json:"id"`
	Playbook  string `json:"playbook"`
	TriggerID string `json:"trigger_id"` // the idempotency key that started it
	Status    string `json:"status"`     // the run store's status word
	// QueuePosition is the run's place in its playbook's queue while it
	// is queued behind another run (1: next to go); absent otherwise.
	QueuePosition int             `json:"queue_position,omitempty"`
	Error         string          `json:"error,omitempty"`   // why the run failed, as people read it
	Created       time.Time       `json:"created"`           // when the trigger was accepted
	Started       *time.Time      `json:"started,omitempty"` // when the playbook began
	Ended         *time.Time      `json:"ended,omitempty"`   // when the run finished
	Result        json.RawMessage `json:"result,omitempty"`  // the playbook's return value
	Log           []string        `json:"log,omitempty"`     // the last lines of the run's log, oldest first
	// Resumes is how often the run resumed after the agent's stop
	// interrupted it (the same run going on).
	Resumes int `json:"resumes,omitempty"`
}

// Errors a Backend returns; the handler maps them to answers with errors.Is.
var (
	// ErrUnknownTrigger means no playbook answers the trigger: 404.
	ErrUnknownTrigger = errors.New("no playbook answers the trigger")
	// ErrUnknownRun means no run with that id was started by the hub: 404.
	ErrUnknownRun = errors.New("no such run")
	// ErrBlocked means the hub's control envelope blocked this host: 403,
	// and nothing starts.
	ErrBlocked = errors.New("the hub has blocked this host")
	// ErrUnavailable means the agent cannot take the trigger now because
	// it cannot record it (its run store cannot write): 503, to be retried
	// later with the same id.
	ErrUnavailable = errors.New("the agent cannot record runs now")
)

// QueueFullError is a trigger refused because a playbook that does not
// run concurrently already has as many runs waiting as the agent queues
// (runs.queue_max): 429, nothing recorded, to be retried later with the
// same id.
type QueueFullError struct {
	Playbook string // the playbook whose queue is full
	Max      int    // how many runs it queues
}

// Error names the playbook and the bound.
func (e *QueueFullError) Error() string {
	return fmt.Sprintf("playbook %s already has %d runs queued (runs.queue_max)", e.Playbook, e.Max)
}

// ParamError is a trigger parameter refused by a playbook's declaration:
// 400, with the parameter named in the answer's "field" as "params.NAME".
//
// Msg is shown to the hub and written to the log, so it says what was
// wanted ("must be an int"), never the value that came (it may be secret).
type ParamError struct {
	Playbook string // the playbook whose declaration refused it
	Param    string // the parameter's name
	Msg      string // what is wrong with it
}

// Error names the playbook, the parameter and what is wrong, for the log.
func (e *ParamError) Error() string {
	return fmt.Sprintf("playbook %s: parameter %s: %s", e.Playbook, e.Param, e.Msg)
}
