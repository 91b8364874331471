package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Options tunes Open. The zero Options is the defaults.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock another
	// process holds on the database before failing. Zero means 5 seconds.
	BusyTimeout time.Duration
	// Readers is the number of read-only connections. Zero means 4.
	Readers int
}

const (
	defaultBusyTimeout = 5 * time.Second
	defaultReaders     = 4
)

// Store is an open run store. Its methods are safe for concurrent use.
type Store struct {
	w *sql.DB // exactly one connection: every write, in order
	r *sql.DB // read-only pool; WAL lets it read while w writes

	pruneBatch int // runs deleted per Prune transaction; tests lower it
}

// Open opens the store at path, creating the file (mode 0600) and its
// directory (mode 0700) when missing, and brings the schema up to date.
// An empty file is a new store. A file that is not an SQLite database, or
// whose schema is newer than this package knows, is refused.
//
// Open sets the journal to WAL and synchronous to FULL: durability comes
// before speed, since an acknowledged trigger must survive kill -9.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("store: open: path is empty: %w", ErrInvalid)
	}
	if opts.BusyTimeout < 0 {
		return nil, fmt.Errorf("store: open: BusyTimeout %v is negative: %w", opts.BusyTimeout, ErrInvalid)
	}
	if opts.Readers < 0 {
		return nil, fmt.Errorf("store: open: Readers %d is negative: %w", opts.Readers, ErrInvalid)
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = defaultBusyTimeout
	}
	if opts.Readers == 0 {
		opts.Readers = defaultReaders
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// that reads then writes never fails half-way on a lock upgrade.
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := setup(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"1"},
		"_query_only":   {"1"},
	}))
	if err == nil {
		r.SetMaxOpenConns(opts.Readers)
		r.SetMaxIdleConns(opts.Readers)
		err = r.Ping()
	}
	if err != nil {
		w.Close()
		if r != nil {
			r.Close()
		}
		return nil, fmt.Errorf("store: open %s: readers: %w", path, err)
	}
	return &Store{w: w, r: r, pruneBatch: defaultPruneBatch}, nil
}

// Close closes the store. Calls after Close fail.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// setup checks that the writer connection really runs in WAL mode (some
// file systems refuse it) and migrates the schema.
func setup(w *sql.DB) error {
	ctx := context.Background()
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, not wal", mode)
	}
	return migrate(ctx, w)
}

// dsn is a file: URI for abs, so that any byte of the path ('?', '#', '%')
// reaches SQLite escaped rather than being read as a parameter.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// prepareFile creates the database's directory and file owner-only, and
// tightens an existing file that is readable by others: run parameters and
// logs are the operator's business. SQLite gives the -wal and -shm files
// the database file's mode when it creates them.
func prepareFile(abs string) error {
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return err
			}
		}
	}
	return nil
}
