package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the store at src to dst (which must
// not exist) with VACUUM INTO: an online backup, safe while an agent has
// the store open and writing (it reads one snapshot; the agent's writes go
// on). The copy is a plain database file without -wal or -shm, checked
// with quick_check before Backup returns. src must be an existing store.
func Backup(ctx context.Context, src, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("store: backup %s: %w", src, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return fmt.Errorf("store: backup %s: %w", src, err)
	case fi.Size() == 0:
		return fmt.Errorf("store: backup: %w", damagedError(abs, "the file is empty (0 bytes)"))
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: backup to %s: the file exists", dst)
	}
	db, err := sql.Open("sqlite", dsn(abs, url.Values{"_busy_timeout": {busyMillis(Options{BusyTimeout: defaultBusyTimeout})}}))
	if err != nil {
		return fmt.Errorf("store: backup %s: %w", src, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := quickCheck(ctx, db, abs); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("store: backup %s to %s: %w", src, dst, err)
	}
	if err := Check(ctx, dst); err != nil {
		return fmt.Errorf("store: backup: the copy: %w", err)
	}
	return nil
}

// Check opens the database at path without changing it and runs
// quick_check and the schema check Open would: nil means Open would take
// it. A damaged file wraps ErrDamaged.
func Check(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return err
	case fi.Size() == 0:
		return damagedError(abs, "the file is empty (0 bytes)")
	}
	db, err := sql.Open("sqlite", dsn(abs, url.Values{"mode": {"ro"}}))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := quickCheck(ctx, db, abs); err != nil {
		return err
	}
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("%s: schema version %d is newer than this agent's (%d): a newer felhom-agent wrote it", abs, v, len(migrations))
	}
	return nil
}
