package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Outcome is how a playbook's runs last ended, as the agent's
// felhom_run_last_* metrics show it after a restart.
type Outcome struct {
	Playbook string
	// Status and Ended are the latest finished run's (by end time).
	Status runstate.Status
	Ended  time.Time
	// LastSuccess is when its latest succeeded run ended; zero if none
	// is on record.
	LastSuccess time.Time
}

// Outcomes returns, for every playbook with a finished run on record, how
// its runs last ended, sorted by playbook. Retention bounds what is on
// record: a success pruned away is not remembered.
func (s *Store) Outcomes(ctx context.Context) ([]Outcome, error) {
	var out []Outcome
	err := s.read(ctx, func(tx *sql.Tx) error {
		// SQLite's bare columns with max(): status comes from the row
		// holding the latest end.
		rows, err := tx.QueryContext(ctx, `
			SELECT l.playbook, l.status, l.ended, s.ended
			FROM (SELECT playbook, status, max(ended) AS ended FROM runs WHERE ended IS NOT NULL GROUP BY playbook) l
			LEFT JOIN (SELECT playbook, max(ended) AS ended FROM runs WHERE status = ? GROUP BY playbook) s
				ON s.playbook = l.playbook
			ORDER BY l.playbook`, string(runstate.Succeeded))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var o Outcome
			var status string
			var ended, success sql.NullInt64
			if err := rows.Scan(&o.Playbook, &status, &ended, &success); err != nil {
				return err
			}
			o.Status, o.Ended, o.LastSuccess = runstate.Status(status), fromNanos(ended), fromNanos(success)
			out = append(out, o)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: outcomes: %w", err)
	}
	return out, nil
}
