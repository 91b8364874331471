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
	health     writeHealth
	logs       logCommits // AppendLog's group commit
}

// Open opens the store at path and brings the schema up to date. A missing
// file is a new store: it is created whole under a temporary name (mode
// 0600, its directory 0700) and renamed into place, so that a crash never
// leaves a half-made store behind. An existing file is checked first
// (PRAGMA quick_check) and refused, never replaced, when it is empty (0
// bytes: the records it should hold are gone), not an SQLite database,
// damaged, or of a schema newer than this package knows; the error wraps
// ErrDamaged (all but the last) and says what the operator can do.
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
	if err := prepareFile(abs, opts); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	w, err := openWriter(abs, opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := setup(w, abs); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {busyMillis(opts)},
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
	st := &Store{w: w, r: r, pruneBatch: defaultPruneBatch}
	st.health.h.OK = true
	return st, nil
}

func busyMillis(opts Options) string { return strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10) }

// openWriter opens the one writing connection of the database at abs.
func openWriter(abs string, opts Options) (*sql.DB, error) {
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {busyMillis(opts)},
		"_foreign_keys": {"1"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// that reads then writes never fails half-way on a lock upgrade.
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	return w, nil
}

// Close closes the store. Calls after Close fail.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// setup checks that the writer connection really runs in WAL mode (some
// file systems refuse it), that the file is sound, and migrates the
// schema.
func setup(w *sql.DB, abs string) error {
	ctx := context.Background()
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		if damaged(err) {
			return damagedError(abs, err.Error())
		}
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, not wal", mode)
	}
	if err := quickCheck(ctx, w, abs); err != nil {
		return err
	}
	return migrate(ctx, w)
}

// dsn is a file: URI for abs, so that any byte of the path ('?', '#', '%')
// reaches SQLite escaped rather than being read as a parameter.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// prepareFile creates the database's directory owner-only, creates a
// missing database whole (createNew), refuses an empty one, and tightens
// an existing file that is readable by others: run parameters and logs
// are the operator's business. SQLite gives the -wal and -shm files the
// database file's mode when it creates them.
func prepareFile(abs string, opts Options) error {
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return createNew(abs, opts)
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", abs)
	case fi.Size() == 0:
		return damagedError(abs, "the file is empty (0 bytes), so every record it held is gone")
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

// createNew makes a new, migrated database at abs.new, closes it (which
// checkpoints the WAL into the file) and renames it to abs, so that abs
// either does not exist or is a whole store: a crash half-way leaves
// only the .new files, which the next start replaces.
func createNew(abs string, opts Options) error {
	tmp := abs + ".new"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	w, err := openWriter(tmp, opts)
	if err != nil {
		return err
	}
	if err := migrate(context.Background(), w); err != nil {
		w.Close()
		return fmt.Errorf("creating a new store: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("creating a new store: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, abs); err != nil {
		return err
	}
	return syncFile(filepath.Dir(abs))
}

// syncFile fsyncs the file or directory at p.
func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
