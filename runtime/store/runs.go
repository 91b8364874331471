package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// runColumns are the columns queryRuns reads, in its order;
// runColumnsNoResult reads NULL for the result.
const (
	runColumns = `id, playbook, version, source, key, params, status, error, error_kind,
	created, started, ended, result, resumes, replayed, adopted, reissued, secrets, signature, origin`
	runColumnsNoResult = `id, playbook, version, source, key, params, status, error, error_kind,
	created, started, ended, NULL, resumes, replayed, adopted, reissued, secrets, signature, origin`
)

// CreateRuns records the runs a trigger asks for, all queued, in one
// durable transaction, and returns them with created=true.
//
// When t.Key is not empty and a trigger with the same Source and Key was
// recorded before, CreateRuns creates nothing and returns that trigger's
// runs as they are now, in the order the first call gave them, with
// created=false (fewer or none once retention has deleted them). Of any
// number of concurrent or repeated calls with one key, exactly one
// creates runs, across restarts too.
//
// runs must name at least one playbook, each at most once.
func (s *Store) CreateRuns(ctx context.Context, t Trigger, runs []NewRun) ([]Run, bool, error) {
	if err := checkNewRuns(t, runs); err != nil {
		return nil, false, fmt.Errorf("store: create runs: %w", err)
	}
	at := stamp(t.At)
	var out []Run
	created := true
	err := s.write(ctx, func(tx *sql.Tx) error {
		if t.Key != "" {
			res, err := tx.ExecContext(ctx,
				`INSERT INTO triggers (source, key, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				t.Source, t.Key, at.UnixNano())
			if err != nil {
				return err
			}
			fresh, err := exactlyOne(res)
			if err != nil {
				return err
			}
			if !fresh {
				created = false
				out, err = queryRuns(ctx, tx, `WHERE source = ? AND key = ? ORDER BY pos`, t.Source, t.Key)
				return err
			}
		}
		out = make([]Run, 0, len(runs))
		for i, nr := range runs {
			r := Run{
				Playbook: nr.Playbook,
				Version:  nr.Version,
				Source:   t.Source,
				Key:      t.Key,
				Params:   bytes.Clone(nr.Params),
				Status:   runstate.Queued,
				Created:  at,
				Secrets:  bytes.Clone(nr.Secrets),

				Signature: bytes.Clone(nr.Signature),
				Origin:    nr.Origin,
			}
			if len(r.Params) == 0 {
				r.Params = nil
			}
			// A fresh random suffix on the rare collision.
			for {
				r.ID = runstate.NewID(at)
				res, err := tx.ExecContext(ctx, `INSERT INTO runs
					(id, playbook, version, source, key, pos, params, status, created, secrets, signature, origin)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
					r.ID, r.Playbook, r.Version, r.Source, r.Key, i, jsonText(r.Params), r.Status, at.UnixNano(), nilBlob(r.Secrets), nilBlob(r.Signature), r.Origin)
				if err != nil {
					return err
				}
				if ok, err := exactlyOne(res); err != nil {
					return err
				} else if ok {
					break
				}
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: create runs (%s %q): %w", t.Source, t.Key, err)
	}
	return out, created, nil
}

// checkNewRuns refuses a trigger or runs CreateRuns cannot record.
func checkNewRuns(t Trigger, runs []NewRun) error {
	if !t.Source.Valid() {
		return fmt.Errorf("trigger source %q is not cli, hub, timer or api: %w", t.Source, ErrInvalid)
	}
	if err := checkName("trigger key", t.Key, true); err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("no runs to create: %w", ErrInvalid)
	}
	seen := make(map[string]bool, len(runs))
	for i, nr := range runs {
		if err := checkName(fmt.Sprintf("runs[%d].Playbook", i), nr.Playbook, false); err != nil {
			return err
		}
		if seen[nr.Playbook] {
			return fmt.Errorf("runs[%d].Playbook %q is listed twice: %w", i, nr.Playbook, ErrInvalid)
		}
		seen[nr.Playbook] = true
		if err := checkName(fmt.Sprintf("runs[%d].Version", i), nr.Version, true); err != nil {
			return err
		}
		if err := checkName(fmt.Sprintf("runs[%d].Origin", i), nr.Origin, true); err != nil {
			return err
		}
		if err := checkJSON(fmt.Sprintf("runs[%d].Params", i), nr.Params); err != nil {
			return err
		}
	}
	return nil
}

// MarkStarted moves a queued run to running at the given time (zero:
// now), recording the version it runs unless version is "", and origin,
// the Proxmox it is made against (Run.Origin; "" records none). It fails
// with ErrStarted for a running run and ErrFinished for a terminal one.
func (s *Store) MarkStarted(ctx context.Context, id, version, origin string, at time.Time) error {
	if err := checkName("version", version, true); err != nil {
		return fmt.Errorf("store: start run %s: %w", id, err)
	}
	if err := checkName("origin", origin, true); err != nil {
		return fmt.Errorf("store: start run %s: %w", id, err)
	}
	return s.transition(ctx, "start", id, `UPDATE runs
			SET status = ?, started = ?, version = CASE WHEN ? = '' THEN version ELSE ? END, origin = ?
			WHERE id = ? AND status = ?`,
		runstate.Running, stamp(at).UnixNano(), version, version, origin, id, runstate.Queued)
}

// Finish gives a queued, running or interrupted run its terminal status, error, result
// and end time. It fails with ErrFinished when the run already has a
// terminal status: the first outcome recorded stands.
func (s *Store) Finish(ctx context.Context, id string, fi FinishInfo) error {
	if err := checkTerminal("status", fi.Status); err != nil {
		return fmt.Errorf("store: finish run %s: %w", id, err)
	}
	if err := checkJSON("result", fi.Result); err != nil {
		return fmt.Errorf("store: finish run %s: %w", id, err)
	}
	return s.transition(ctx, "finish", id, `UPDATE runs
			SET status = ?, error = ?, error_kind = ?, result = ?, ended = ?, secrets = NULL, signature = NULL,
			    replayed = replayed + ?, adopted = adopted + ?, reissued = reissued + ?
			WHERE id = ? AND status IN (?, ?, ?, ?)`,
		fi.Status, fi.Error, fi.ErrorKind, jsonText(fi.Result), stamp(fi.At).UnixNano(),
		fi.Counts.Replayed, fi.Counts.Adopted, fi.Counts.Reissued,
		id, runstate.Queued, runstate.Running, runstate.Interrupted, runstate.PendingSignature)
}

// SetSignature records the operator signature a run that has not ended
// carries from now on (an approval let its parked call go on), sealed by
// the caller (the store never sees it in clear). It fails with
// ErrFinished for a terminal run.
func (s *Store) SetSignature(ctx context.Context, id string, sealed []byte) error {
	return s.transition(ctx, "record the signature of", id, `UPDATE runs SET signature = ?
			WHERE id = ? AND status IN (?, ?, ?, ?)`,
		nilBlob(sealed), id, runstate.Queued, runstate.Running, runstate.Interrupted, runstate.PendingSignature)
}

// transition makes one guarded status change of run id (query, an
// UPDATE whose WHERE names the statuses it may leave): exactly one row
// changes, or refusal says why none did; what names the change in the
// error.
func (s *Store) transition(ctx context.Context, what, id, query string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if ok, err := exactlyOne(res); err != nil || ok {
			return err
		}
		return refusal(ctx, tx, id)
	})
	if err != nil {
		return fmt.Errorf("store: %s run %s: %w", what, id, err)
	}
	return nil
}

// refusal explains why a status change touched no row: the run is
// missing, terminal, or (for MarkStarted) running already.
func refusal(ctx context.Context, q querier, id string) error {
	var st runstate.Status
	err := q.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = ?`, id).Scan(&st)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case st.Terminal():
		return fmt.Errorf("status %s: %w", st, ErrFinished)
	default:
		return fmt.Errorf("status %s: %w", st, ErrStarted)
	}
}

// Get returns the run with the given ID, with its tasks, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Run, error) {
	var runs []Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		runs, err = queryRuns(ctx, tx, `WHERE id = ?`, id)
		return err
	})
	if err == nil && len(runs) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Run{}, fmt.Errorf("store: get run %s: %w", id, err)
	}
	return runs[0], nil
}

// RunsByKey returns the runs created by the trigger with this source and
// idempotency key, in the order CreateRuns was given them, with their
// tasks; none for an unknown key.
func (s *Store) RunsByKey(ctx context.Context, source Source, key string) ([]Run, error) {
	if key == "" {
		return nil, fmt.Errorf("store: runs by key: key is empty: %w", ErrInvalid)
	}
	var runs []Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		runs, err = queryRuns(ctx, tx, `WHERE source = ? AND key = ? ORDER BY pos`, source, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: runs by key (%s %q): %w", source, key, err)
	}
	return runs, nil
}

// List returns the runs f selects, newest first, with their tasks.
func (s *Store) List(ctx context.Context, f Filter) ([]Run, error) {
	var where []string
	var args []any
	if f.Playbook != "" {
		where, args = append(where, "playbook = ?"), append(args, f.Playbook)
	}
	if f.Status != "" {
		if !f.Status.Valid() {
			return nil, fmt.Errorf("store: list runs: filter status %q is unknown: %w", f.Status, ErrInvalid)
		}
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.Source != "" {
		if !f.Source.Valid() {
			return nil, fmt.Errorf("store: list runs: filter source %q is unknown: %w", f.Source, ErrInvalid)
		}
		where, args = append(where, "source = ?"), append(args, f.Source)
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("store: list runs: filter limit %d is negative: %w", f.Limit, ErrInvalid)
	}
	if f.Before != "" {
		where = append(where, "(created, id) < (SELECT created, id FROM runs WHERE id = ?)")
		args = append(args, f.Before)
	}
	clause := ""
	if len(where) > 0 {
		clause = "WHERE " + strings.Join(where, " AND ")
	}
	limit := -1 // SQLite: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	clause += " ORDER BY created DESC, id DESC LIMIT ?"
	args = append(args, limit)

	var runs []Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		if f.Before != "" {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, f.Before).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("filter before: run %s: %w", f.Before, ErrNotFound)
			} else if err != nil {
				return err
			}
		}
		cols := runColumns
		if f.OmitResults {
			cols = runColumnsNoResult
		}
		var err error
		runs, err = queryRunsCols(ctx, tx, cols, clause, args...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return runs, nil
}

// queryRuns reads the runs that clause (WHERE ... ORDER BY ...) selects,
// then their tasks.
func queryRuns(ctx context.Context, q querier, clause string, args ...any) ([]Run, error) {
	return queryRunsCols(ctx, q, runColumns, clause, args...)
}

func queryRunsCols(ctx context.Context, q querier, cols, clause string, args ...any) ([]Run, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+cols+` FROM runs `+clause, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		var (
			r                       Run
			params, result          sql.NullString
			created, started, ended sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Playbook, &r.Version, &r.Source, &r.Key, &params, &r.Status,
			&r.Error, &r.ErrorKind, &created, &started, &ended, &result,
			&r.Resumes, &r.Replayed, &r.Adopted, &r.Reissued, &r.Secrets, &r.Signature, &r.Origin); err != nil {
			return nil, err
		}
		r.Params, r.Result = fromJSONText(params), fromJSONText(result)
		r.Created, r.Started, r.Ended = fromNanos(created), fromNanos(started), fromNanos(ended)
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := attachTasks(ctx, q, runs); err != nil {
		return nil, err
	}
	return runs, nil
}

// attachTasks fills in the Tasks of runs, a bounded batch of IDs per
// query.
func attachTasks(ctx context.Context, q querier, runs []Run) error {
	const batch = 500
	byID := make(map[string]*Run, len(runs))
	for i := range runs {
		byID[runs[i].ID] = &runs[i]
	}
	for start := 0; start < len(runs); start += batch {
		end := min(start+batch, len(runs))
		args := make([]any, 0, end-start)
		for _, r := range runs[start:end] {
			args = append(args, r.ID)
		}
		tasks, err := queryTasks(ctx, q,
			`WHERE run IN (`+placeholders(len(args))+`) ORDER BY started, upid`, args...)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			r := byID[t.Run]
			r.Tasks = append(r.Tasks, t)
		}
	}
	return nil
}

// nilBlob is b for a BLOB column, NULL when empty.
func nilBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
