package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TaskStarted records that run runID started the Proxmox task upid, at
// the given time (zero: now), by its journal call seq (0: none; see
// journal.go, whose entries read their UPID from here). Call it as soon
// as the POST that started the task returns: when TaskStarted returns,
// the UPID survives any crash. The run may have any status, since a task
// that exists must be recorded. Recording the same UPID for the same run
// again is a no-op, except that it attaches a task recorded with no call
// to seq; for another run it is an error.
func (s *Store) TaskStarted(ctx context.Context, runID string, seq int, upid string, at time.Time) error {
	if err := checkName("upid", upid, false); err != nil {
		return fmt.Errorf("store: task started (run %s): %w", runID, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run: %w", ErrNotFound)
		} else if err != nil {
			return err
		}
		var call any
		if seq > 0 {
			call = seq
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tasks (upid, run, seq, started, kind) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (upid) DO UPDATE SET seq = excluded.seq WHERE tasks.run = excluded.run AND tasks.seq IS NULL AND excluded.seq IS NOT NULL`,
			upid, runID, call, stamp(at).UnixNano(), taskKind(upid))
		if err != nil {
			return err
		}
		if ok, err := exactlyOne(res); err != nil || ok {
			return err
		}
		var owner string
		if err := tx.QueryRowContext(ctx, `SELECT run FROM tasks WHERE upid = ?`, upid).Scan(&owner); err != nil {
			return err
		}
		if owner != runID {
			return fmt.Errorf("task is already recorded for run %s: %w", owner, ErrInvalid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: task %s started (run %s): %w", upid, runID, err)
	}
	return nil
}

// DetachTasks records that the tasks run's journal call seq started are no
// longer its own: the call is sent afresh (its request or task failed and
// changed nothing), and a resume must not wait for them. They stay the
// run's tasks.
func (s *Store) DetachTasks(ctx context.Context, run string, seq int) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tasks SET seq = NULL WHERE run = ? AND seq = ?`, run, seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: tasks of call %d of run %s: %w", seq, run, err)
	}
	return nil
}

// TaskFinished records that the task upid stopped at the given time (zero:
// now) with PVE's exit status ("OK", "WARNINGS: N" or the error text). It
// fails with ErrNotFound for an unknown UPID and ErrFinished when the
// task's end is already recorded.
func (s *Store) TaskFinished(ctx context.Context, upid, exitStatus string, at time.Time) error {
	if exitStatus == "" {
		return fmt.Errorf("store: task %s finished: exit status is empty: %w", upid, ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE tasks SET ended = ?, exit_status = ? WHERE upid = ? AND ended IS NULL`,
			stamp(at).UnixNano(), exitStatus, upid)
		if err != nil {
			return err
		}
		if ok, err := exactlyOne(res); err != nil || ok {
			return err
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM tasks WHERE upid = ?`, upid).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		}
		return ErrFinished
	})
	if err != nil {
		return fmt.Errorf("store: task %s finished: %w", upid, err)
	}
	return nil
}

// TaskHistory returns how long the last n tasks of upid's kind took —
// tasks of the same worker type on the same guest and node, that stopped
// OK or with warnings — newest first: from the return of the POST that
// started each to when it was seen stopped. It returns none for a UPID
// of no kind (not PVE's form) and for n <= 0. upid itself need not be
// recorded.
func (s *Store) TaskHistory(ctx context.Context, upid string, n int) ([]time.Duration, error) {
	kind := taskKind(upid)
	if kind == "" || n <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT ended - started FROM tasks
		WHERE kind = ? AND ended IS NOT NULL AND (exit_status = 'OK' OR exit_status LIKE 'WARNINGS: %')
		ORDER BY ended DESC LIMIT ?`, kind, n)
	if err != nil {
		return nil, fmt.Errorf("store: task history of %s: %w", kind, err)
	}
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("store: task history of %s: %w", kind, err)
		}
		out = append(out, time.Duration(max(d, 0)))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: task history of %s: %w", kind, err)
	}
	return out, nil
}

// taskKind is the kind of a task by its UPID, "node:type:id": the fields
// 1, 5 and 6 of PVE's UPID:node:pid:pstart:starttime:type:id:user: (pve-
// common PVE/Tools.pm upid_encode), or "" for a text not of that form.
func taskKind(upid string) string {
	f := strings.Split(upid, ":")
	if len(f) != 9 || f[0] != "UPID" || f[1] == "" || f[5] == "" {
		return ""
	}
	return f[1] + ":" + f[5] + ":" + f[6]
}

// OpenTasks returns every task whose end is not recorded, oldest first,
// whatever its run's status. At start, before any run begins, these are
// the tasks a previous process left behind: follow each on the host and
// record its end with TaskFinished.
func (s *Store) OpenTasks(ctx context.Context) ([]Task, error) {
	tasks, err := queryTasks(ctx, s.r, `WHERE ended IS NULL ORDER BY started, upid`)
	if err != nil {
		return nil, fmt.Errorf("store: open tasks: %w", err)
	}
	return tasks, nil
}

// queryTasks reads the tasks that clause (WHERE ... ORDER BY ...) selects.
func queryTasks(ctx context.Context, q querier, clause string, args ...any) ([]Task, error) {
	rows, err := q.QueryContext(ctx, `SELECT upid, run, started, ended, exit_status FROM tasks `+clause, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tasks []Task
	for rows.Next() {
		var (
			t              Task
			started, ended sql.NullInt64
		)
		if err := rows.Scan(&t.UPID, &t.Run, &started, &ended, &t.ExitStatus); err != nil {
			return nil, err
		}
		t.Started, t.Ended = fromNanos(started), fromNanos(ended)
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}
