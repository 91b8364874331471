package store

import (
	"context"
	"database/sql"
	"fmt"
)

// IDsWithPrefix returns the ids of the runs whose id starts with prefix,
// in id order (which is creation order), at most limit of them — how a
// run id prefix is resolved, as git resolves an abbreviated commit: one
// id is the run, more are ambiguous. An empty prefix matches nothing.
func (s *Store) IDsWithPrefix(ctx context.Context, prefix string, limit int) ([]string, error) {
	if prefix == "" || limit <= 0 {
		return nil, nil
	}
	var ids []string
	err := s.read(ctx, func(tx *sql.Tx) error {
		// A range on the primary key rather than LIKE: no escaping, and
		// the index answers it. Ids are ASCII, so prefix+"\x7f" is above
		// every id that starts with prefix.
		rows, err := tx.QueryContext(ctx, `SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?`,
			prefix, prefix+"\x7f", limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: runs with id prefix %q: %w", prefix, err)
	}
	return ids, nil
}
