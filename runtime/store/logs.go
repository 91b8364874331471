package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// AppendLog appends lines to run id's log durably and in order,
// numbering them after the run's last line (the first line of a run is
// Seq 1). Each line's Run and Seq are ignored and assigned; a zero Time
// means now. Lines may be appended to a run of any status, so that a
// recovery can note what it found.
//
// Every commit is an fsync, so appends of all runs are committed together
// (group commit): a call that finds a commit in progress queues its lines
// and the next commit writes every queued call's lines in one transaction.
// AppendLog returns only once the commit holding its lines is durable (or
// failed), so durability is that of one call per commit; one run's
// unknown id (ErrNotFound) fails that call alone. ctx bounds only the
// wait to be queued: once queued, lines are committed or fail with the
// commit. Batch lines rather than appending one at a time on a busy run:
// each call still costs its statements.
func (s *Store) AppendLog(ctx context.Context, id string, lines ...LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	for i, l := range lines {
		if err := checkJSON(fmt.Sprintf("lines[%d].Attrs", i), l.Attrs); err != nil {
			return fmt.Errorf("store: append log (run %s): %w", id, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: append log (run %s): %w", id, err)
	}
	req := &logAppend{id: id, lines: lines, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	s.logs.mu.Lock()
	s.logs.queue = append(s.logs.queue, req)
	if !s.logs.committing {
		s.logs.committing = true
		req.lead <- struct{}{}
	}
	s.logs.mu.Unlock()
	for {
		select {
		case <-req.lead:
			s.commitLogs()
		case err := <-req.done:
			if err != nil {
				return fmt.Errorf("store: append log (run %s): %w", id, err)
			}
			return nil
		}
	}
}

// logCommits is the group commit of AppendLog: the queue of calls waiting
// for the next commit, and whether a caller is committing (the leader).
// The leader commits the whole queue, its own call included, in one
// transaction, then hands the lead to the oldest call queued meanwhile,
// so no caller waits for more than the commit in progress and its own.
//
// Invariant: committing is true exactly while one caller leads or has
// been handed the lead.
type logCommits struct {
	mu         sync.Mutex
	queue      []*logAppend
	committing bool
	commits    atomic.Int64 // transactions committed (or tried); tests read it
	// beforeBatch, when set (tests), is called by the leader before it
	// takes the queue.
	beforeBatch func()
}

// logAppend is one AppendLog call waiting for its commit.
type logAppend struct {
	id    string
	lines []LogLine
	done  chan error    // receives the call's outcome, once
	lead  chan struct{} // receives the lead, at most once
}

// commitLogs is the leader's turn: it commits the queue (which holds the
// leader's own call) in one transaction, then hands the lead to the
// oldest call queued since, or stops leading when there is none.
func (s *Store) commitLogs() {
	if s.logs.beforeBatch != nil {
		s.logs.beforeBatch()
	}
	s.logs.mu.Lock()
	batch := s.logs.queue
	s.logs.queue = nil
	s.logs.mu.Unlock()
	s.commitLogBatch(batch)
	s.logs.mu.Lock()
	if len(s.logs.queue) > 0 {
		s.logs.queue[0].lead <- struct{}{}
	} else {
		s.logs.committing = false
	}
	s.logs.mu.Unlock()
}

// commitLogBatch writes every call of batch in one transaction and tells
// each its outcome: the commit's error, or ErrNotFound for a call whose
// run does not exist (its lines are skipped, the others' kept).
func (s *Store) commitLogBatch(batch []*logAppend) {
	ctx := context.Background() // one caller's deadline must not fail the others
	s.logs.commits.Add(1)
	missing := make([]bool, len(batch))
	err := s.write(ctx, func(tx *sql.Tx) error {
		clear(missing)
		seqOf, err := tx.PrepareContext(ctx, `UPDATE runs SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq`)
		if err != nil {
			return err
		}
		defer seqOf.Close()
		ins, err := tx.PrepareContext(ctx,
			`INSERT INTO logs (run, seq, time, level, msg, attrs) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, req := range batch {
			var last int64
			err := seqOf.QueryRowContext(ctx, len(req.lines), req.id).Scan(&last)
			if errors.Is(err, sql.ErrNoRows) {
				missing[i] = true
				continue
			} else if err != nil {
				return err
			}
			seq := last - int64(len(req.lines))
			for _, l := range req.lines {
				seq++
				if _, err := ins.ExecContext(ctx, req.id, seq, stamp(l.Time).UnixNano(), l.Level, l.Msg, jsonText(l.Attrs)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	for i, req := range batch {
		switch {
		case err != nil:
			req.done <- err
		case missing[i]:
			req.done <- ErrNotFound
		default:
			req.done <- nil
		}
	}
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
