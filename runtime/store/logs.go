package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AppendLog appends lines to run id's log in one durable transaction,
// numbering them after the run's last line (the first line of a run is
// Seq 1). Each line's Run and Seq are ignored and assigned; a zero Time
// means now. Lines may be appended to a run of any status, so that a
// recovery can note what it found. Every commit is an fsync: batch lines
// rather than appending one at a time on a busy run.
func (s *Store) AppendLog(ctx context.Context, id string, lines ...LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	for i, l := range lines {
		if err := checkJSON(fmt.Sprintf("lines[%d].Attrs", i), l.Attrs); err != nil {
			return fmt.Errorf("store: append log (run %s): %w", id, err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx,
			`UPDATE runs SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq`,
			len(lines), id).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx,
			`INSERT INTO logs (run, seq, time, level, msg, attrs) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		seq := last - int64(len(lines))
		for _, l := range lines {
			seq++
			if _, err := ins.ExecContext(ctx, id, seq, stamp(l.Time).UnixNano(), l.Level, l.Msg, jsonText(l.Attrs)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: append log (run %s): %w", id, err)
	}
	return nil
}

// Logs returns run id's log lines with Seq greater than afterSeq, in
// order, at most limit of them (zero: all). Following a live run is
// calling Logs again with the last Seq seen. It fails with ErrNotFound
// for an unknown run.
func (s *Store) Logs(ctx context.Context, id string, afterSeq int64, limit int) ([]LogLine, error) {
	if limit < 0 {
		return nil, fmt.Errorf("store: logs (run %s): limit %d is negative: %w", id, limit, ErrInvalid)
	}
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	var lines []LogLine
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT seq, time, level, msg, attrs FROM logs
			WHERE run = ? AND seq > ? ORDER BY seq LIMIT ?`, id, afterSeq, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l := LogLine{Run: id}
			var (
				t     sql.NullInt64
				attrs sql.NullString
			)
			if err := rows.Scan(&l.Seq, &t, &l.Level, &l.Msg, &attrs); err != nil {
				return err
			}
			l.Time, l.Attrs = fromNanos(t), fromJSONText(attrs)
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(lines) > 0 {
			return nil
		}
		// No lines: tell an empty log from an unknown run.
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: logs (run %s): %w", id, err)
	}
	return lines, nil
}

// LogTail returns the last n lines of run id's log, oldest first (n <= 0:
// none). The store keeps each run's last line number, so this is one
// bounded query however long the log is. It fails with ErrNotFound for an
// unknown run.
func (s *Store) LogTail(ctx context.Context, id string, n int) ([]LogLine, error) {
	var last int64
	err := s.read(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT log_seq FROM runs WHERE id = ?`, id).Scan(&last)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: log tail (run %s): %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: log tail (run %s): %w", id, err)
	}
	if n <= 0 || last == 0 {
		return nil, nil
	}
	return s.Logs(ctx, id, max(0, last-int64(n)), n)
}
