package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// defaultPruneBatch bounds the runs one Prune transaction deletes, so
// that the writer is not held for long and runs keep logging while
// history goes.
const defaultPruneBatch = 500

// Prune deletes the terminal runs that r lets go, with their log lines and
// tasks, and returns how many runs it deleted. now (zero: now) is the time
// ages are measured from. A run that is queued or running, or that has a
// task whose end is not recorded yet, is never deleted. Then it forgets
// the idempotency keys that have no run left and are older than the key
// age (see Retention.KeyAge), and the playbook versions nothing refers to
// any more (see versions.go).
func (s *Store) Prune(ctx context.Context, r Retention, now time.Time) (int, error) {
	switch {
	case r.KeepLast < 0:
		return 0, fmt.Errorf("store: prune: KeepLast %d is negative: %w", r.KeepLast, ErrInvalid)
	case r.MaxAge < 0:
		return 0, fmt.Errorf("store: prune: MaxAge %v is negative: %w", r.MaxAge, ErrInvalid)
	case r.KeyAge < 0:
		return 0, fmt.Errorf("store: prune: KeyAge %v is negative: %w", r.KeyAge, ErrInvalid)
	}
	now = stamp(now)
	keyAge := r.KeyAge
	if keyAge == 0 {
		keyAge = DefaultKeyAge
	}
	keyAge = max(keyAge, r.MaxAge)

	deleted := 0
	if r.KeepLast > 0 || r.MaxAge > 0 {
		// Without an age limit the cutoff is before any run.
		cutoff := int64(-1 << 63)
		if r.MaxAge > 0 {
			cutoff = now.Add(-r.MaxAge).UnixNano()
		}
		keep := int64(1<<63 - 1)
		if r.KeepLast > 0 {
			keep = int64(r.KeepLast)
		}
		for {
			n, err := s.pruneOnce(ctx, keep, cutoff)
			if err != nil {
				return deleted, fmt.Errorf("store: prune: %w", err)
			}
			deleted += n
			if n < s.pruneBatch {
				break
			}
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM triggers WHERE created < ?
			AND NOT EXISTS (SELECT 1 FROM runs WHERE runs.source = triggers.source AND runs.key = triggers.key)`,
			now.Add(-keyAge).UnixNano())
		return err
	})
	if err != nil {
		return deleted, fmt.Errorf("store: prune keys: %w", err)
	}
	return deleted, s.pruneVersions(ctx, now)
}

// pruneOnce deletes up to s.pruneBatch runs that are beyond the newest keep
// of their playbook or created before cutoff, and are terminal with no
// open task. Foreign keys cascade to logs and tasks.
func (s *Store) pruneOnce(ctx context.Context, keep, cutoff int64) (int, error) {
	var n int
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id IN (
			SELECT id FROM (
				SELECT id, status, created,
					ROW_NUMBER() OVER (PARTITION BY playbook ORDER BY created DESC, id DESC) AS newest
				FROM runs
			) r
			WHERE (r.newest > ? OR r.created < ?)
			  AND r.status NOT IN (?, ?, ?)
			  AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.run = r.id AND tasks.ended IS NULL)
			LIMIT ?)`,
			keep, cutoff, runstate.Queued, runstate.Running, runstate.PendingSignature, s.pruneBatch)
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}
