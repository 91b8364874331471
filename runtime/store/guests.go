package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
	"unicode/utf8"
)

// The kinds of the per-guest index.
const (
	GuestBackup       = "backup"        // a vzdump of the guest ended
	GuestRestoreDrill = "restore_drill" // a restore drill of the guest's archive ended
)

// GuestEvent is one backup or restore drill of a guest, for the
// per-guest index.
type GuestEvent struct {
	VMID   int
	Kind   string // GuestBackup or GuestRestoreDrill
	At     time.Time
	OK     bool
	Run    string // the run that did it, "" for none
	Detail string // e.g. the UPID or archive; clipped to 1 KiB
}

// GuestIndexEntry is what the index holds for one guest and kind: the
// last attempt, and the last success (zero At when none).
type GuestIndexEntry struct {
	Last, LastOK GuestEvent
}

// IndexGuest records e in the per-guest index. The last attempt and the
// last success only move forwards in time: an event older than the one
// held is ignored, so events recorded out of order (a task follower
// after a run) never roll the index back.
func (s *Store) IndexGuest(ctx context.Context, e GuestEvent) error {
	if e.VMID <= 0 || (e.Kind != GuestBackup && e.Kind != GuestRestoreDrill) {
		return fmt.Errorf("store: index guest: vmid %d kind %q: %w", e.VMID, e.Kind, ErrInvalid)
	}
	at := stamp(e.At).UnixNano()
	detail := clipDetail(e.Detail, 1024)
	var okAt sql.NullInt64
	if e.OK {
		okAt = sql.NullInt64{Int64: at, Valid: true}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO guest_index (vmid, kind, at, ok, run, detail, ok_at, ok_run, ok_detail)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?7 IS NULL THEN '' ELSE ?5 END, CASE WHEN ?7 IS NULL THEN '' ELSE ?6 END)
			ON CONFLICT (vmid, kind) DO UPDATE SET
				at     = CASE WHEN excluded.at >= at THEN excluded.at ELSE at END,
				ok     = CASE WHEN excluded.at >= at THEN excluded.ok ELSE ok END,
				run    = CASE WHEN excluded.at >= at THEN excluded.run ELSE run END,
				detail = CASE WHEN excluded.at >= at THEN excluded.detail ELSE detail END,
				ok_run    = CASE WHEN excluded.ok_at IS NOT NULL AND (ok_at IS NULL OR excluded.ok_at >= ok_at) THEN excluded.ok_run ELSE ok_run END,
				ok_detail = CASE WHEN excluded.ok_at IS NOT NULL AND (ok_at IS NULL OR excluded.ok_at >= ok_at) THEN excluded.ok_detail ELSE ok_detail END,
				ok_at     = CASE WHEN excluded.ok_at IS NOT NULL AND (ok_at IS NULL OR excluded.ok_at >= ok_at) THEN excluded.ok_at ELSE ok_at END`,
			e.VMID, e.Kind, at, e.OK, e.Run, detail, okAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: index guest %d %s: %w", e.VMID, e.Kind, err)
	}
	return nil
}

// GuestIndex returns the whole per-guest index, by vmid then kind.
func (s *Store) GuestIndex(ctx context.Context) (map[int]map[string]GuestIndexEntry, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT vmid, kind, at, ok, run, detail, ok_at, ok_run, ok_detail FROM guest_index`)
	if err != nil {
		return nil, fmt.Errorf("store: guest index: %w", err)
	}
	defer rows.Close()
	out := map[int]map[string]GuestIndexEntry{}
	for rows.Next() {
		var (
			e          GuestIndexEntry
			at, okAt   sql.NullInt64
			ok         bool
			run, det   string
			okRun, okD string
		)
		var vmid int
		var kind string
		if err := rows.Scan(&vmid, &kind, &at, &ok, &run, &det, &okAt, &okRun, &okD); err != nil {
			return nil, fmt.Errorf("store: guest index: %w", err)
		}
		e.Last = GuestEvent{VMID: vmid, Kind: kind, At: fromNanos(at), OK: ok, Run: run, Detail: det}
		if okAt.Valid {
			e.LastOK = GuestEvent{VMID: vmid, Kind: kind, At: fromNanos(okAt), OK: true, Run: okRun, Detail: okD}
		}
		if out[vmid] == nil {
			out[vmid] = map[string]GuestIndexEntry{}
		}
		out[vmid][kind] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: guest index: %w", err)
	}
	return out, nil
}

// HubState returns the value kept under key, and false when none is.
func (s *Store) HubState(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM hub_state WHERE key = ?`, key).Scan(&v)
	if err == sql.ErrNoRows {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: hub state %q: %w", key, err)
	}
	return v, true, nil
}

// SetHubState keeps value under key, durably, replacing what was there.
func (s *Store) SetHubState(ctx context.Context, key string, value []byte) error {
	if err := checkName("key", key, false); err != nil {
		return fmt.Errorf("store: set hub state: %w", err)
	}
	if value == nil {
		value = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hub_state (key, value, updated) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
			key, value, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set hub state %q: %w", key, err)
	}
	return nil
}

// EndedSince returns, oldest first, at most limit runs that ended after
// the position (ended, id) — runs ordered by end time, then id — and how
// many more there are. A zero ended starts at the first run that ended.
func (s *Store) EndedSince(ctx context.Context, ended time.Time, id string, limit int) ([]Run, int, error) {
	if limit <= 0 {
		limit = 100
	}
	after := int64(0)
	if !ended.IsZero() {
		after = ended.UnixNano()
	}
	var runs []Run
	var total int
	err := s.read(ctx, func(tx *sql.Tx) error {
		const where = `WHERE ended IS NOT NULL AND (ended > ?1 OR (ended = ?1 AND id > ?2))`
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM runs `+where, after, id).Scan(&total); err != nil {
			return err
		}
		var err error
		runs, err = queryRuns(ctx, tx, where+` ORDER BY ended, id LIMIT ?3`, after, id, limit)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: runs ended since: %w", err)
	}
	return runs, total - len(runs), nil
}

// clipDetail cuts s to at most max bytes at a rune boundary.
func clipDetail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
