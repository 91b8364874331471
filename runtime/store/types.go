package store

import (
	"encoding/json"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Source is what asked for a run. The zero value is not a source.
type Source string

// The sources of a run.
const (
	SourceCLI   Source = "cli"   // felhom-agent run / trigger from the command line
	SourceHub   Source = "hub"   // a signed trigger from the hub
	SourceTimer Source = "timer" // a playbook's schedule
	SourceAPI   Source = "api"   // the local API
	// SourceDesired is a new desired-state generation from the hub
	// channel; the key is "generation-N".
	SourceDesired Source = "desired"
	// SourceGuest is an in-guest controller over the guest API
	// (runtime/guestapi): only benign work on its own guest. The key is
	// the guest's request id.
	SourceGuest Source = "guest"
	// SourceApproval is a run started by an operator's signed approval
	// (felhom-agent approve) of a pending operation whose run is gone; the
	// key is the signed op's nonce.
	SourceApproval Source = "approval"
	// SourceJob is an operator-signed job fetched from the hub; the key is
	// the job id.
	SourceJob Source = "job"
)

// Valid reports whether s is one of the Source constants.
func (s Source) Valid() bool {
	switch s {
	case SourceCLI, SourceHub, SourceTimer, SourceAPI, SourceDesired, SourceGuest, SourceApproval, SourceJob:
		return true
	}
	return false
}

// Run is one execution of one playbook, as recorded.
type Run struct {
	// ID is "r-<UTC creation time, seconds>-<8 random hex digits>", e.g.
	// "r-20261123T193000-1a2b3c4d": unique, and sorting by ID sorts by
	// creation second.
	ID       string
	Playbook string // the playbook's name
	Version  string // hash of the source it ran (or will run); "" until known
	Source   Source // what asked for it
	Key      string // its trigger's idempotency key; "" for none

	// Params are the run's parameters as JSON text, stored exactly as
	// given: secret-typed values must be redacted by the caller. Nil for
	// none.
	Params json.RawMessage

	Status    runstate.Status
	Error     string // why it failed, was cancelled or interrupted; "" otherwise
	ErrorKind string // the runtime's classification of Error (permission, lock, ...); may be ""

	Created time.Time // when its trigger arrived
	Started time.Time // zero until MarkStarted
	Ended   time.Time // zero until it has a terminal status

	Result json.RawMessage // the playbook's return value as JSON text; nil for none
	Tasks  []Task          // the Proxmox tasks it started, oldest first

	// Secrets is what NewRun.Secrets stored, until the run ends.
	Secrets []byte
	// Signature is the sealed operator signature the run carries
	// (NewRun.Signature, SetSignature), until the run ends; nil for none.
	Signature []byte

	// Origin is the Proxmox the run is made against, as CreateRuns (for
	// the host it was accepted on) and then MarkStarted recorded it: the
	// agent's words for its host (runtime/agent's origin), "" for a run
	// recorded by an agent that did not say (an older store).
	Origin string

	// Resumes is how often the run was resumed (or replayed into its
	// undo) after an interruption; the counts say what its replays did
	// with the journal's calls, over every resume.
	Resumes int
	JournalCounts
}

// JournalCounts is what a run's resumes did with its journaled calls.
type JournalCounts struct {
	Replayed int // answered from the journal
	Adopted  int // requests whose answer was lost, found started on the host and followed
	Reissued int // requests the host showed never started, sent again
}

// Task is one Proxmox VE worker task a run started.
type Task struct {
	UPID    string    // PVE's task id, as PVE wrote it
	Run     string    // ID of the run that started it
	Started time.Time // when the POST that started it returned
	Ended   time.Time // when it was seen stopped; zero while unknown

	// ExitStatus is PVE's exitstatus once the task has stopped ("OK",
	// "WARNINGS: 2", or the error text); "" while Ended is zero.
	ExitStatus string
}

// Done reports whether the task's end has been recorded.
func (t Task) Done() bool { return !t.Ended.IsZero() }

// LogLine is one line a run logged. AppendLog assigns Run and Seq; the
// lines of a run are numbered 1, 2, 3, ... in the order they were appended.
type LogLine struct {
	Run   string
	Seq   int64
	Time  time.Time
	Level string          // e.g. "INFO", as the runtime's logger names it
	Msg   string          // the message
	Attrs json.RawMessage // key/value attributes as a JSON object; nil for none
}

// Trigger is what asks CreateRuns for runs.
type Trigger struct {
	Source Source
	// Key is the idempotency key: a second CreateRuns with the same Source
	// and Key returns the first call's runs instead of creating new ones.
	// "" means every call creates runs.
	Key string
	At  time.Time // when it arrived; zero means now
}

// NewRun is one run to create.
type NewRun struct {
	Playbook string          // required
	Version  string          // the version it will run, if known already; MarkStarted may set it
	Params   json.RawMessage // JSON text, secrets already redacted; nil for none
	// Secrets are the run's secret parameters, sealed by the caller (the
	// store never sees them in clear); nil for none. Cleared by Finish.
	Secrets []byte
	// Signature is the operator signature the run carries (a signed job,
	// an approval), sealed by the caller; nil for none. Cleared by Finish.
	Signature []byte
	// Origin is the Proxmox the run is accepted to be made against (see
	// Run.Origin); "" records none.
	Origin string
}

// FinishInfo is how a run ended.
type FinishInfo struct {
	Status    runstate.Status // required; must be terminal
	Error     string          // why it did not succeed; "" for succeeded
	ErrorKind string          // the runtime's classification of Error; may be ""
	Result    json.RawMessage // JSON text; nil for none
	At        time.Time       // zero means now
	// Counts are added to the run's (what this execution's replay did).
	Counts JournalCounts
}

// Filter selects runs for List. The zero Filter selects every run.
type Filter struct {
	Playbook string          // only this playbook's runs; "" for all
	Status   runstate.Status // only runs with this status; "" for all
	Source   Source          // only runs from this source; "" for all
	// Before is a run ID: only runs created before that run are listed.
	// Pass the last ID of one page to get the next. "" starts at the newest.
	Before string
	Limit  int // at most this many runs; zero means no limit
	// OmitResults leaves each run's Result nil, so that a page of many
	// runs costs no more than their records without what they returned.
	OmitResults bool
}

// Retention says which runs Prune deletes. The zero Retention deletes no
// run (and forgets only idempotency keys older than DefaultKeyAge whose
// runs are gone).
type Retention struct {
	// KeepLast keeps the newest KeepLast runs of each playbook; older
	// terminal runs are deleted. Zero means no limit by count. Counting
	// per playbook keeps a minutely monitor from pushing the nightly
	// backup's history out.
	KeepLast int
	// MaxAge deletes terminal runs created longer than MaxAge ago. Zero
	// means no limit by age.
	MaxAge time.Duration
	// KeyAge is how long an idempotency key is remembered after its
	// trigger, once its runs are gone: a replay within that time creates
	// nothing. Keys are kept at least MaxAge; zero means DefaultKeyAge.
	// After it, a replay of the key creates new runs, so it must exceed
	// how long the hub may retry a trigger.
	KeyAge time.Duration
}

// DefaultKeyAge is the KeyAge used when Retention.KeyAge is zero.
const DefaultKeyAge = 7 * 24 * time.Hour
