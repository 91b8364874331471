package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// The journal of durable runs: one row per journaled builtin call of a
// run, numbered from 1 in the order the playbook made them (see
// builtins.Journal). A row is written when the call is about to act (its
// intent) and completed with its outcome; a read's row is written once,
// with its outcome. The UPID its request returned is not the journal's:
// it is the task's record (TaskStarted, with the call's seq), and the
// journal reads it from there. The undo mark is a row with builtin
// "undo". Writes are durable when they return (synchronous=FULL), so a
// mutation's intent is on disk before its request is sent.

// JournalEntry is one journaled call.
type JournalEntry struct {
	Seq     int
	Builtin string // qualified name, "proxmox.snapshot"; "undo" for the undo mark
	Digest  string // of its arguments
	Pos     string // file:line:col of the call
	Intent  time.Time
	// UPID is the task the call started (the newest recorded with its
	// seq, see TaskStarted); WriteJournal does not write it.
	UPID    string
	Outcome []byte // nil until it returned
	Sealed  bool   // Outcome is encrypted with the state directory's key
}

// UndoMark is the Builtin of the journal row that marks where a run's
// compensations start.
const UndoMark = "undo"

// WriteJournal writes entries of run (new ones, or newer states of ones
// written before) in one durable transaction. Their UPIDs are not
// written: TaskStarted records a call's task.
func (s *Store) WriteJournal(ctx context.Context, run string, entries []JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO journal (run, seq, builtin, digest, pos, intent, outcome, sealed)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (run, seq) DO UPDATE SET intent = excluded.intent,
				outcome = excluded.outcome, sealed = excluded.sealed
			WHERE journal.builtin = excluded.builtin AND journal.digest = excluded.digest`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range entries {
			if e.Seq < 1 || e.Builtin == "" {
				return fmt.Errorf("entry %d (%q): %w", e.Seq, e.Builtin, ErrInvalid)
			}
			var intent any
			if !e.Intent.IsZero() {
				intent = e.Intent.UnixNano()
			}
			var outcome any
			if e.Outcome != nil {
				outcome = e.Outcome
			}
			res, err := st.ExecContext(ctx, run, e.Seq, e.Builtin, e.Digest, e.Pos, intent, outcome, e.Sealed)
			if err != nil {
				return err
			}
			if ok, err := exactlyOne(res); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("entry %d is another call in the journal: %w", e.Seq, ErrInvalid)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: journal of run %s: %w", run, err)
	}
	return nil
}

// Journal returns run's journal, in sequence order.
func (s *Store) Journal(ctx context.Context, run string) ([]JournalEntry, error) {
	var out []JournalEntry
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, builtin, digest, pos, intent, `+callTask+`, outcome, sealed
			FROM journal j WHERE run = ? ORDER BY seq`, run)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e JournalEntry
			var intent sql.NullInt64
			if err := rows.Scan(&e.Seq, &e.Builtin, &e.Digest, &e.Pos, &intent, &e.UPID, &e.Outcome, &e.Sealed); err != nil {
				return err
			}
			e.Intent = fromNanos(intent)
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: journal of run %s: %w", run, err)
	}
	return out, nil
}

// JournalUPIDs returns the UPIDs run's journal records for calls of
// builtin whose outcome is recorded: for example the guests a run
// created (proxmox.restore, whose worker id is the new guest).
func (s *Store) JournalUPIDs(ctx context.Context, run, builtin string) ([]string, error) {
	var out []string
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT upid FROM (SELECT seq, `+callTask+` AS upid FROM journal j WHERE run = ? AND builtin = ?)
			WHERE upid != '' ORDER BY seq`, run, builtin)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u string
			if err := rows.Scan(&u); err != nil {
				return err
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: journal of run %s: %w", run, err)
	}
	return out, nil
}

// callTask is the UPID of journal row j's call: the newest task recorded
// with its seq, ” for none.
const callTask = `COALESCE((SELECT t.upid FROM tasks t WHERE t.run = j.run AND t.seq = j.seq ORDER BY t.rowid DESC LIMIT 1), '')`

// TaskClaimed reports whether upid is recorded as started by a run other
// than run, or by a journal call of run other than seq: a task some call
// already owns, which reconciliation must never adopt for another. A task
// of run recorded with no call (or detached from its call) is not
// claimed.
func (s *Store) TaskClaimed(ctx context.Context, run string, seq int, upid string) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM tasks WHERE upid = ? AND (run != ? OR seq != ?)`, upid, run, seq).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: task %s: %w", upid, err)
	}
	return true, nil
}

// Interrupt moves a running run to interrupted, with why: the agent
// stopped it (past the grace period) and it resumes or is undone at the
// next start. It fails with ErrFinished for a terminal run.
func (s *Store) Interrupt(ctx context.Context, id, reason string, counts JournalCounts) error {
	return s.transition(ctx, "interrupt", id, `UPDATE runs SET status = ?, error = ?,
			replayed = replayed + ?, adopted = adopted + ?, reissued = reissued + ?
			WHERE id = ? AND status = ?`,
		runstate.Interrupted, reason, counts.Replayed, counts.Adopted, counts.Reissued, id, runstate.Running)
}

// Resume moves an interrupted run back to running and counts the
// resume. It fails with ErrFinished for a terminal run and ErrStarted
// for one that is not interrupted.
func (s *Store) Resume(ctx context.Context, id string) error {
	return s.transition(ctx, "resume", id, `UPDATE runs SET status = ?, error = '', resumes = resumes + 1
			WHERE id = ? AND status = ?`,
		runstate.Running, id, runstate.Interrupted)
}
