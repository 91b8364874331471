// Package runstate is the run vocabulary that the run store owns and that
// every part of the agent shares: a run's [Status] with the one table that
// says which statuses are live and which are final, and the one run-id
// format. It is a leaf (the standard library only) so that the engine,
// which must never open the store, speaks the store's words.
//
// Every list of statuses that people see — error messages, CLI filters,
// documentation — is built from [All], so that a status added here (later
// work adds pending_signature and resumable states) appears everywhere at
// once.
package runstate

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// Status is where a run is in its life. The zero value is not a status.
type Status string

// The statuses of a run, as the store records them.
const (
	Queued  Status = "queued"  // accepted, not started yet: waiting for its playbook to be free, or about to start
	Running Status = "running" // its Starlark thread is executing
	// PendingSignature: the run is parked at a destructive call that
	// waits for an operator's signature (docs/safety.md).
	PendingSignature Status = "pending_signature"
	Succeeded        Status = "succeeded"   // returned without error
	Failed           Status = "failed"      // stopped with an error (see its error kind)
	Cancelled        Status = "cancelled"   // cancelled from the CLI or API, or by shutdown
	Refused          Status = "refused"     // never started: its parameters were refused (see its error kind)
	TimedOut         Status = "timed_out"   // its deadline passed
	Interrupted      Status = "interrupted" // the agent stopped while it was running; it resumes or is undone at the next start
)

// Info is one row of the status table.
type Info struct {
	Status Status
	// Final: a run with this status never changes status again.
	Final bool
	// Meaning is one line for people (CLI help, documentation).
	Meaning string
}

// table is the one list of statuses, live ones first. Invariant: every
// Status constant appears exactly once.
var table = []Info{
	{Queued, false, "accepted, not started yet: waiting for its playbook to be free (kept across restarts)"},
	{Running, false, "its Starlark thread is executing"},
	{Interrupted, false, "the agent stopped while it was running: at the next start (or runs resume) a resumable run resumes from its journal, another is replayed to where it stopped and undone; runs abandon undoes it"},
	{PendingSignature, false, "parked at a destructive call until an operator signs its pending operation (felhom-agent pending, sign, approve), at most until its deadline"},
	{Succeeded, true, "returned without error"},
	{Failed, true, "stopped with an error"},
	{Cancelled, true, "cancelled from the CLI or API, or by shutdown"},
	{Refused, true, "never started: its parameters were refused"},
	{TimedOut, true, "its deadline passed"},
}

// All returns the status table, live statuses first. The caller may not
// modify it.
func All() []Info { return table }

// Names is every status, comma-separated in table order: "queued,
// running, succeeded, ...", for messages that list the valid values.
func Names() string {
	names := make([]string, len(table))
	for i, in := range table {
		names[i] = string(in.Status)
	}
	return strings.Join(names, ", ")
}

func (s Status) info() (Info, bool) {
	for _, in := range table {
		if in.Status == s {
			return in, true
		}
	}
	return Info{}, false
}

// Valid reports whether s is one of the Status constants.
func (s Status) Valid() bool {
	_, ok := s.info()
	return ok
}

// Terminal reports whether s is final: a run with a terminal status never
// changes status again. An invalid status is not terminal.
func (s Status) Terminal() bool {
	in, ok := s.info()
	return ok && in.Final
}

// NewID returns a new run id, "r-<UTC time, seconds>-<8 random hex
// digits>": the time prefix makes ids sort by creation and tell their age
// at a glance. The store checks the random part for collisions on insert;
// a CLI run that keeps no record uses the same format.
func NewID(at time.Time) string {
	var b [4]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return "r-" + at.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}
