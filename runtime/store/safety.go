package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// PendingOp is a destructive call parked for an operator's signature
// (runtime/safety): what would be done and the exact blob to sign.
type PendingOp struct {
	ID       string
	Run      string // the run that is (or was) parked at it
	Playbook string
	Guest    int
	What     string
	Blob     []byte // the canonical op JSON to sign
	Created  time.Time
	Expires  time.Time
	// State is PendingOpen, PendingApproved or PendingRefused.
	State    string
	Resolved time.Time
	// Detail says how it was resolved; NewRun is the run an approval
	// started when the parked run was gone.
	Detail string
	NewRun string
}

// The states of a PendingOp.
const (
	PendingOpen     = "open"
	PendingApproved = "approved"
	PendingRefused  = "refused"
)

// AddPending records an open pending operation.
func (s *Store) AddPending(ctx context.Context, p PendingOp) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO pending_ops (id, run, playbook, guest, what, blob, created, expires, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.Run, p.Playbook, p.Guest, p.What, p.Blob, stamp(p.Created).UnixNano(), stamp(p.Expires).UnixNano(), PendingOpen)
		if err != nil {
			return fmt.Errorf("store: pending operation %s: %w", p.ID, err)
		}
		return nil
	})
}

// ResolvePending moves an open pending operation to state (approved or
// refused) with detail and the run an approval started (or ""). It fails
// with ErrFinished when the operation is resolved already, ErrNotFound
// when there is none.
func (s *Store) ResolvePending(ctx context.Context, id, state, detail, newRun string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE pending_ops SET state = ?, detail = ?, new_run = ?, resolved = ?
			WHERE id = ? AND state = ?`, state, detail, newRun, stamp(time.Time{}).UnixNano(), id, PendingOpen)
		if err != nil {
			return err
		}
		if ok, err := exactlyOne(res); err != nil || ok {
			return err
		}
		var st string
		err = tx.QueryRowContext(ctx, `SELECT state FROM pending_ops WHERE id = ?`, id).Scan(&st)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("pending operation %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("pending operation %s is %s: %w", id, st, ErrFinished)
	})
}

// PendingOps returns the pending operations, newest first: only the open
// ones when open, else every one (at most limit; 0 means 100).
func (s *Store) PendingOps(ctx context.Context, open bool, limit int) ([]PendingOp, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + pendingColumns + ` FROM pending_ops`
	if open {
		q += ` WHERE state = 'open'`
	}
	q += ` ORDER BY created DESC, id LIMIT ?`
	return s.queryPending(ctx, q, limit)
}

// queryPending reads the pending operations that query q (selecting
// pendingColumns) answers with args.
func (s *Store) queryPending(ctx context.Context, q string, args ...any) ([]PendingOp, error) {
	var out []PendingOp
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPending(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}

// Pending returns one pending operation, or ErrNotFound.
func (s *Store) Pending(ctx context.Context, id string) (PendingOp, error) {
	var p PendingOp
	err := s.read(ctx, func(tx *sql.Tx) error {
		row := tx.QueryRowContext(ctx, `SELECT `+pendingColumns+` FROM pending_ops WHERE id = ?`, id)
		var err error
		p, err = scanPending(row)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("pending operation %s: %w", id, ErrNotFound)
		}
		return err
	})
	return p, err
}

// pendingColumns are the columns of pending_ops that scanPending reads,
// in its order.
const pendingColumns = `id, run, playbook, guest, what, blob, created, expires, state, resolved, detail, new_run`

func scanPending(r interface{ Scan(...any) error }) (PendingOp, error) {
	var p PendingOp
	var created, expires int64
	var resolved sql.NullInt64
	err := r.Scan(&p.ID, &p.Run, &p.Playbook, &p.Guest, &p.What, &p.Blob, &created, &expires, &p.State, &resolved, &p.Detail, &p.NewRun)
	p.Created, p.Expires = time.Unix(0, created).UTC(), time.Unix(0, expires).UTC()
	p.Resolved = fromNanos(resolved)
	return p, err
}

// SetParked moves a running run to pending_signature (parked) or back to
// running; ErrFinished when the run has ended meanwhile.
func (s *Store) SetParked(ctx context.Context, id string, parked bool) error {
	from, to := runstate.Running, runstate.PendingSignature
	if !parked {
		from, to = to, from
	}
	return s.transition(ctx, "park", id, `UPDATE runs SET status = ? WHERE id = ? AND status = ?`,
		to, id, from)
}

// AuditRecord is one stored gate decision: the entry as JSON, with its
// sequence number (the hub report's cursor).
type AuditRecord struct {
	Seq   int64
	At    time.Time
	Run   string
	Entry json.RawMessage
}

// AppendAudit records a gate decision.
func (s *Store) AppendAudit(ctx context.Context, at time.Time, run string, entry json.RawMessage) error {
	if err := checkJSON("entry", entry); err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO gate_audit (at, run, entry) VALUES (?, ?, ?)`, stamp(at).UnixNano(), run, string(entry))
		return err
	})
}

// Audit returns the gate decisions after seq, oldest first, at most limit
// (0 means 1000); run, when set, keeps only that run's.
func (s *Store) Audit(ctx context.Context, after int64, run string, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		limit = 1000
	}
	var out []AuditRecord
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, at, run, entry FROM gate_audit
			WHERE seq > ? AND (? = '' OR run = ?) ORDER BY seq LIMIT ?`, after, run, run, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r AuditRecord
			var at int64
			var entry string
			if err := rows.Scan(&r.Seq, &at, &r.Run, &entry); err != nil {
				return err
			}
			r.At, r.Entry = time.Unix(0, at).UTC(), json.RawMessage(entry)
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// PendingOfRun returns the pending operations a run parked at (or was
// refused), oldest first.
func (s *Store) PendingOfRun(ctx context.Context, run string) ([]PendingOp, error) {
	return s.queryPending(ctx, `SELECT `+pendingColumns+` FROM pending_ops WHERE run = ? ORDER BY created, id`, run)
}
