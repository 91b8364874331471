package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// querier is what both *sql.DB and *sql.Tx offer, so that reads can run
// inside a write transaction or on the read pool alike.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// write runs fn in one write transaction (BEGIN IMMEDIATE) and commits it.
// The commit is durable when write returns nil. The outcome is noted in
// the store's Health; a failure of the store's own wraps ErrUnwritable.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.health.note(s.writeTx(ctx, fn))
}

func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// read runs fn in one read transaction on the read pool: everything fn
// reads comes from one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// stamp turns a caller's time into what the store keeps: now for zero,
// UTC, no monotonic reading, so that a returned value equals the one
// read back later.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

// fromNanos reads a stored time: NULL is the zero time.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// jsonText is JSON as stored: TEXT (a []byte would be a BLOB, which the
// STRICT tables refuse), NULL for none (nil or empty).
func jsonText(m json.RawMessage) sql.NullString {
	if len(m) == 0 {
		return sql.NullString{}
	}
	return sql.NullString{String: string(m), Valid: true}
}

// fromJSONText is the inverse of jsonText.
func fromJSONText(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

// placeholders is "?, ?, ?" for n values.
func placeholders(n int) string {
	b := make([]byte, 0, 3*n)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '?')
	}
	return string(b)
}

// exactlyOne reports whether an UPDATE or INSERT touched one row.
func exactlyOne(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n > 1 {
		return false, fmt.Errorf("%d rows changed, want at most 1", n)
	}
	return n == 1, nil
}
