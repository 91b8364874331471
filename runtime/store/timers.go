package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// TimerMark records at as the last time the timer job fired, so that a
// restart can catch up a tick missed while the agent was down, once. The
// mark never moves backwards: an earlier at than the one recorded is
// ignored.
func (s *Store) TimerMark(ctx context.Context, job string, at time.Time) error {
	if err := checkName("job", job, false); err != nil {
		return fmt.Errorf("store: timer mark: %w", err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO timers (job, last) VALUES (?, ?)
			ON CONFLICT (job) DO UPDATE SET last = max(last, excluded.last)`,
			job, stamp(at).UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: timer mark %q: %w", job, err)
	}
	return nil
}

// TimerLast returns the last time TimerMark recorded for job, and false
// when the job never fired.
func (s *Store) TimerLast(ctx context.Context, job string) (time.Time, bool, error) {
	var last sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT last FROM timers WHERE job = ?`, job).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: timer last %q: %w", job, err)
	}
	return fromNanos(last), true, nil
}
