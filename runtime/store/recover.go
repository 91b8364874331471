package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// RecoverInterrupted marks every running run as interrupted, ended at the
// given time (zero: now), and returns those runs with all their tasks.
// Call it once at start, before any run begins: the runs it finds belong
// to a process that is gone. They are never re-run, so a replayed trigger
// finds its run instead of starting a second one. Their unfinished tasks
// (Ended zero) are among OpenTasks, to be followed to their end. Queued
// runs are left queued: they never started, so nothing of them happened,
// and the caller starts them (an accepted trigger always runs).
func (s *Store) RecoverInterrupted(ctx context.Context, at time.Time) ([]Run, error) {
	end := stamp(at).UnixNano()
	var runs []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE runs
			SET status = ?, ended = ?,
			    error = CASE WHEN error = '' THEN 'the agent stopped while the run was ' || status ELSE error END
			WHERE status = ? RETURNING id`,
			runstate.Interrupted, end, runstate.Running)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		// Few runs are ever in flight at once: one IN list is enough.
		runs, err = queryRuns(ctx, tx, `WHERE id IN (`+placeholders(len(ids))+`) ORDER BY created, id`, ids...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: recover interrupted runs: %w", err)
	}
	return runs, nil
}
