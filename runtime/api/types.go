package api

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
)

// Run is one run of a playbook as the local API shows it. Times are UTC;
// Started and Ended are nil until they happen.
//
// Invariant: a run is finished exactly when Ended is set. Clients, and the
// follow stream, rely on this rather than on the Status word.
type Run struct {
	ID       string          `json:"id"`
	Playbook string          `json:"playbook"`
	Version  string          `json:"version,omitempty"` // hash of the playbook's source and loads
	Source   string          `json:"source"`            // what started it: "cli", "api", "timer", "hub"
	Key      string          `json:"key,omitempty"`     // the idempotency key of a hub trigger, the timer tick, ...
	Params   json.RawMessage `json:"params,omitempty"`  // coerced parameters, secrets redacted
	Status   string          `json:"status"`            // the run store's status word
	// QueuePosition is the run's place in its playbook's queue while it
	// waits behind another run (1: next to go); absent otherwise.
	QueuePosition int             `json:"queue_position,omitempty"`
	Error         string          `json:"error,omitempty"`      // why it failed, with the Starlark position
	ErrorKind     string          `json:"error_kind,omitempty"` // permission, lock, not_found, task, ...
	Created       time.Time       `json:"created"`
	Started       *time.Time      `json:"started,omitempty"`
	Ended         *time.Time      `json:"ended,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"` // the playbook's return value
	Tasks         []Task          `json:"tasks,omitempty"`  // Proxmox tasks it started, in order
	// Resumes is how often the run resumed (or was replayed into its
	// undo) after the agent's stop interrupted it; Replayed, Adopted and
	// Reissued count the journaled calls those resumes answered from the
	// journal, found started on the host, and sent again.
	Resumes  int `json:"resumes,omitempty"`
	Replayed int `json:"replayed,omitempty"`
	Adopted  int `json:"adopted,omitempty"`
	Reissued int `json:"reissued,omitempty"`
	// Origin is the Proxmox the run was made against, recorded when it
	// started: "https://HOST:PORT node NODE", or "sim" for a simulated
	// host; absent before it started or when an older agent ran it. An
	// interrupted run is resumed or undone only against its origin.
	Origin string `json:"origin,omitempty"`
	// Pending are the destructive calls it parked at for an operator's
	// signature (runs show only), oldest first.
	Pending []PendingOp `json:"pending,omitempty"`
}

// Finished reports whether the run has ended, whatever its status.
func (r Run) Finished() bool { return r.Ended != nil }

// Task is a Proxmox VE worker task that a run started.
type Task struct {
	UPID       string     `json:"upid"`
	Status     string     `json:"status"`                // "running" or "stopped"
	ExitStatus string     `json:"exit_status,omitempty"` // PVE's exitstatus once stopped: "OK", "WARNINGS: 1", an error
	Started    *time.Time `json:"started,omitempty"`
	Ended      *time.Time `json:"ended,omitempty"`
}

// LogLine is one line of a run's log. Seq increases by at least one per
// line within a run, so "after Seq" is a cursor.
type LogLine struct {
	Seq   int64           `json:"seq"`
	Time  time.Time       `json:"time"`
	Level string          `json:"level"`           // DEBUG, INFO, WARN, ERROR
	Msg   string          `json:"msg"`             // the message
	Attrs json.RawMessage `json:"attrs,omitempty"` // a JSON object of the line's attributes
}

// Text renders the line's message and attributes for people: "msg k=v
// k2=v2", keys sorted, values as JSON text.
func (l LogLine) Text() string {
	var b strings.Builder
	b.WriteString(l.Msg)
	var attrs map[string]json.RawMessage
	if len(l.Attrs) > 0 && json.Unmarshal(l.Attrs, &attrs) == nil {
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			b.WriteByte(' ')
			b.WriteString(k)
			b.WriteByte('=')
			b.Write(attrs[k])
		}
	}
	return b.String()
}

// String renders the line as "LEVEL msg k=v k2=v2": how the hub's log tail
// and the CLI show a line (the CLI puts the time in front).
func (l LogLine) String() string { return l.Level + " " + l.Text() }

// Playbook is one playbook the agent knows, loaded or not.
type Playbook struct {
	Name      string     `json:"name"`
	File      string     `json:"file"`              // path relative to the playbooks directory
	Version   string     `json:"version,omitempty"` // the version new runs get; empty if never loaded
	Doc       string     `json:"doc,omitempty"`     // the file's doc string
	Schedule  string     `json:"schedule,omitempty"`
	NextRun   *time.Time `json:"next_run,omitempty"` // the next timer tick, if scheduled
	Triggers  []string   `json:"triggers,omitempty"` // hub trigger names it answers
	Params    []Param    `json:"params,omitempty"`
	LoadError string     `json:"load_error,omitempty"` // the last load's diagnostic; the previous good version keeps serving
	// Saved: the version serving is the file's last good version from the
	// version store, served since the agent started because the file on
	// disk does not load.
	Saved bool `json:"saved,omitempty"`
	// Zone is the time zone the schedule is read in ("Europe/Budapest",
	// "Local" for the agent's own zone); empty without a schedule.
	Zone string `json:"zone,omitempty"`
	// NextRuns are the schedule's next ticks (at most five, without
	// jitter), from now; NextRun is the one the timer waits for, which
	// differs from NextRuns[0] while a missed tick is being caught up.
	NextRuns []time.Time `json:"next_runs,omitempty"`
}

// Param is one declared parameter of a playbook.
type Param struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`              // "string", "int", "list(int)", ...
	Default json.RawMessage `json:"default,omitempty"` // absent: required
	Doc     string          `json:"doc,omitempty"`
}

// TriggerRequest is the body of POST /v1/runs: start Playbook — or every
// playbook that answers Trigger; exactly one of the two is set — with Args
// (command-line values, strings by name, as `felhom-agent run --param`
// takes them) and Params (JSON values by name). The agent coerces both
// against each declaration, with the same rules as `felhom-agent run`,
// before it starts anything; a name may appear in only one of them.
//
// Source is what the run is recorded as started by: "" or "api" (the
// default), or "cli" for `felhom-agent run` from the console going
// through the serving agent. Version, when set, is the playbook version
// the client means: a request for another version (the agent has not
// taken an edit yet, or serves another file of that name) is refused
// (409) with nothing started.
type TriggerRequest struct {
	Playbook string                     `json:"playbook,omitempty"`
	Trigger  string                     `json:"trigger,omitempty"`
	Args     map[string]string          `json:"args,omitempty"`
	Params   map[string]json.RawMessage `json:"params,omitempty"`
	Source   string                     `json:"source,omitempty"`
	Version  string                     `json:"version,omitempty"`
}

// ListFilter narrows GET /v1/runs. The zero value lists the most recent
// runs of every playbook, one page of DefaultListLimit.
type ListFilter struct {
	Playbook string // only runs of this playbook
	Status   string // only runs with this status word
	Limit    int    // at most this many (1..1000); 0 means DefaultListLimit
	// Before is a run id, the cursor: only runs older than it are listed.
	// A page's RunsPage.Next is the Before of the next page.
	Before string
}

// DefaultListLimit is the page size of a list without a limit.
const DefaultListLimit = 50

// RunsPage is the body of GET /v1/runs: one page of runs, newest first.
// List answers leave out each run's result (GET /v1/runs/{id} has it), so
// that a page's size is bounded by its length, not by what playbooks
// returned.
type RunsPage struct {
	Runs []Run `json:"runs"`
	// Next is the cursor of the following page (?before=NEXT), set when
	// this page is full; "" on the last page.
	Next string `json:"next,omitempty"`
}

// FollowEvent is one line of the NDJSON stream of GET /v1/runs/{id}/follow:
// exactly one of its fields is set. Log lines come first, in order; the
// stream ends with the finished Run, or with an Error if following failed.
type FollowEvent struct {
	Log   *LogLine `json:"log,omitempty"`
	Run   *Run     `json:"run,omitempty"`
	Error *Error   `json:"error,omitempty"`
}

// Error is the body of every error answer, and the error the Client returns
// for one. Field names the request field or playbook parameter at fault,
// when there is one.
type Error struct {
	Message string `json:"error"`            // what went wrong, for people
	Field   string `json:"field,omitempty"`  // "playbook", "limit", "params.storage", ...
	Status  int    `json:"status,omitempty"` // the HTTP status of the answer
}

// Error returns the message, which for a 400 already names the field.
func (e *Error) Error() string { return e.Message }

// Is lets errors.Is match an answer's status against the Backend's
// sentinels: 404 is ErrNotFound and 409 is ErrConflict.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == 404
	case ErrConflict:
		return e.Status == 409
	}
	return false
}
