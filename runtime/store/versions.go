package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The version store keeps the sources of playbook versions, content
// addressed: a version (the engine's hash of a playbook file and every
// module it loads) is the set of files it was loaded from, each file's
// contents kept once by SHA-256 however many versions share it. The agent
// records the last good version of each playbook file, and serves it at
// start when the file on disk does not load; durable runs will resume on
// the version they started with, from the same store.
//
// Versions are written once and never change: PutVersion of a version
// held already is a no-op. Prune deletes the versions that no run and no
// good version refer to (an hour after they were put), and then the
// contents no version refers to.

// PutVersion records version as the files given (root-relative path to
// contents), in one durable transaction. A version held already is left
// as it is: the same version is the same files.
func (s *Store) PutVersion(ctx context.Context, version string, files map[string][]byte) error {
	if err := checkName("version", version, false); err != nil {
		return fmt.Errorf("store: put version: %w", err)
	}
	if len(files) == 0 {
		return fmt.Errorf("store: put version %s: no files: %w", version, ErrInvalid)
	}
	for p := range files {
		if err := checkName("file path", p, false); err != nil {
			return fmt.Errorf("store: put version %s: %w", version, err)
		}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO versions (version, created) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			version, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if fresh, err := exactlyOne(res); err != nil || !fresh {
			return err
		}
		for _, p := range slices.Sorted(maps.Keys(files)) {
			sum := sha256.Sum256(files[p])
			hash := hex.EncodeToString(sum[:])
			if _, err := tx.ExecContext(ctx, `INSERT INTO sources (hash, body) VALUES (?, ?) ON CONFLICT DO NOTHING`,
				hash, files[p]); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO version_files (version, path, hash) VALUES (?, ?, ?)`,
				version, p, hash); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put version %s: %w", version, err)
	}
	return nil
}

// GetVersion returns the files of version, or ErrNotFound.
func (s *Store) GetVersion(ctx context.Context, version string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT f.path, s.body FROM version_files f JOIN sources s ON s.hash = f.hash
			WHERE f.version = ?`, version)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p string
			var body []byte
			if err := rows.Scan(&p, &body); err != nil {
				return err
			}
			files[p] = body
		}
		return rows.Err()
	})
	if err == nil && len(files) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get version %s: %w", version, err)
	}
	return files, nil
}

// GoodVersion is the last good version of one playbook file.
type GoodVersion struct {
	File     string    // root-relative path of the playbook file
	Playbook string    // the name that version declares
	Version  string    // held in the version store
	Updated  time.Time // when it was recorded
}

// SetGoodVersion records version (which PutVersion must have stored) as
// the last good version of the playbook file, declaring playbook.
func (s *Store) SetGoodVersion(ctx context.Context, file, playbook, version string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO good_versions (file, playbook, version, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (file) DO UPDATE SET playbook = excluded.playbook, version = excluded.version, updated = excluded.updated
			WHERE version != excluded.version OR playbook != excluded.playbook`,
			file, playbook, version, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: good version of %s: %w", file, err)
	}
	return nil
}

// GoodVersions returns the last good version of every playbook file
// recorded, by file.
func (s *Store) GoodVersions(ctx context.Context) (map[string]GoodVersion, error) {
	out := map[string]GoodVersion{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT file, playbook, version, updated FROM good_versions`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g GoodVersion
			var at sql.NullInt64
			if err := rows.Scan(&g.File, &g.Playbook, &g.Version, &at); err != nil {
				return err
			}
			g.Updated = fromNanos(at)
			out[g.File] = g
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: good versions: %w", err)
	}
	return out, nil
}

// versionGrace is how old a version must be before Prune may delete it,
// so that one just put is not lost before its caller refers to it.
const versionGrace = time.Hour

// pruneVersions deletes the versions no run and no good version refers
// to (older than versionGrace), then the contents no version refers to.
func (s *Store) pruneVersions(ctx context.Context, now time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM versions WHERE created < ? AND
			version NOT IN (SELECT version FROM good_versions) AND
			version NOT IN (SELECT version FROM runs)`, now.Add(-versionGrace).UnixNano()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sources WHERE hash NOT IN (SELECT hash FROM version_files)`)
		return err
	})
	if errors.Is(err, context.Canceled) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store: prune versions: %w", err)
	}
	return nil
}
