package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// RecoverInterrupted marks every running run as interrupted (not ended:
// interrupted is not final) and returns every interrupted run — those
// and the ones an earlier stop left interrupted — with all their tasks,
// oldest first. Call it once at start, before any run begins: the runs it
// finds belong to a process that is gone. The caller resumes them (same
// id: a replayed trigger finds its run instead of starting a second one)
// or undoes them; at is unused and kept for callers. Their unfinished tasks
// (Ended zero) are among OpenTasks, to be followed to their end. Queued
// runs are left queued: they never started, so nothing of them happened,
// and the caller starts them (an accepted trigger always runs).
func (s *Store) RecoverInterrupted(ctx context.Context, _ time.Time) ([]Run, error) {
	var runs []Run
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs
			SET status = ?, ended = NULL,
			    error = CASE WHEN error = '' THEN 'the agent stopped while the run was ' || status ELSE error END
			WHERE status IN (?, ?)`,
			runstate.Interrupted, runstate.Running, runstate.PendingSignature); err != nil {
			return err
		}
		var err error
		runs, err = queryRuns(ctx, tx, `WHERE status = ? ORDER BY created, id`, runstate.Interrupted)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: recover interrupted runs: %w", err)
	}
	return runs, nil
}
