package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrDamaged wraps Open's refusal of a file that is not a sound run store:
// empty, not an SQLite database, or failing PRAGMA quick_check. Such a
// file is never replaced: the error names it and what to do.
var ErrDamaged = errors.New("the run store is damaged")

// damagedError says what is wrong with the store at abs and what the
// operator can do; it wraps ErrDamaged.
func damagedError(abs, what string) error {
	return fmt.Errorf("%w: %s: %s. It is left as it is. Restore the state directory from a backup "+
		"(felhom-agent state import FILE), or move the file aside to start with an empty store "+
		"(mv %s %s.damaged; the -wal and -shm files beside it too)", ErrDamaged, abs, what, abs, abs)
}

// damaged reports whether err is SQLite saying the file is not a
// database or is corrupt.
func damaged(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return true
	}
	return false
}

// quickCheckLines bounds how many of quick_check's findings the error
// quotes.
const quickCheckLines = 3

// quickCheck runs PRAGMA quick_check: the b-trees, their pages and
// records are well formed (it skips only the index-to-table match of a
// full integrity_check, and reads every page once).
func quickCheck(ctx context.Context, w *sql.DB, abs string) error {
	rows, err := w.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", quickCheckLines))
	if err != nil {
		if damaged(err) {
			return damagedError(abs, err.Error())
		}
		return fmt.Errorf("quick_check: %w", err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("quick_check: %w", err)
		}
		found = append(found, line)
	}
	if err := rows.Err(); err != nil {
		if damaged(err) {
			return damagedError(abs, err.Error())
		}
		return fmt.Errorf("quick_check: %w", err)
	}
	if len(found) == 1 && found[0] == "ok" {
		return nil
	}
	return damagedError(abs, "PRAGMA quick_check found: "+strings.Join(found, "; "))
}
