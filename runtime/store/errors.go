package store

import "errors"

// The sentinel errors of the store. Methods wrap them with the operation
// and the run, task or field concerned; test with errors.Is.
var (
	// ErrInvalid is bad input: a missing or malformed field, named in the
	// wrapping error.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound is a run or task the store does not hold.
	ErrNotFound = errors.New("not found")
	// ErrFinished is a run that already has a terminal status, or a task
	// whose end is already recorded.
	ErrFinished = errors.New("already finished")
	// ErrStarted is MarkStarted on a run that is already running.
	ErrStarted = errors.New("already started")
)
