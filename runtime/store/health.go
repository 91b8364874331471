package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The store fails closed: the agent must never do what it cannot record.
// Every write transaction's outcome is noted: a failure that is the
// store's own (a full disk, an I/O error, a read-only or corrupted file,
// a lock held too long) marks the store unwritable until a later write
// succeeds, and wraps ErrUnwritable so that callers can tell "the record
// cannot be written" from a refused input. Probe is the write a caller
// makes to find out whether the store has recovered when nothing else is
// writing.

// ErrUnwritable wraps a write the store could not commit for reasons of
// its own (disk full, I/O error, read-only or corrupted file, lock
// timeout), as opposed to refused input (ErrInvalid) or a transition the
// run's status forbids.
var ErrUnwritable = errors.New("the run store cannot write")

// Health is whether the store could write at its last write.
type Health struct {
	// OK: the last write transaction committed (or none failed yet).
	OK bool
	// Err is the last write's failure while !OK, else "".
	Err string
	// Since is when OK last changed; zero before any change.
	Since time.Time
}

type writeHealth struct {
	mu sync.Mutex
	h  Health
}

// note records the outcome of one write transaction and returns err,
// wrapped with ErrUnwritable when it is the store's own failure.
func (w *writeHealth) note(err error) error {
	own := err != nil && !logical(err)
	if err != nil && !own {
		return err // refused input or a status transition: says nothing of the disk
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if own {
		if w.h.OK || w.h.Since.IsZero() {
			w.h.Since = time.Now()
		}
		w.h.OK, w.h.Err = false, err.Error()
		return fmt.Errorf("%w: %w", ErrUnwritable, err)
	}
	if !w.h.OK {
		w.h = Health{OK: true, Since: time.Now()}
	}
	return nil
}

// logical reports whether err is one of the store's own refusals, or the
// caller's context ending, rather than a failure to write.
func logical(err error) bool {
	return errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrFinished) ||
		errors.Is(err, ErrStarted) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Health reports whether the store could write at its last write
// transaction. It does not touch the disk: see Probe.
func (s *Store) Health() Health {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.h
}

// Probe makes one small durable write (a row of its own) and reports
// whether it committed; the outcome updates Health like any write. Call
// it periodically while the store is unwritable, so that it is seen to
// recover without a trigger having to try.
func (s *Store) Probe(ctx context.Context) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO probe (id, at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: probe: %w", err)
	}
	return nil
}
