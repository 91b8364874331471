package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The guest API's tokens: each guest has at most one, kept only as the
// SHA-256 of the token (a token is 32 random bytes, so a plain hash is as
// good as a slow one and a lookup by hash reveals nothing). The token
// itself is never stored: it is shown once and written into the guest's
// bootstrap file by the agent.

// TokenHashSize is the length of a guest token's hash: SHA-256.
const TokenHashSize = 32

// SetGuestToken makes hash the one token hash of guest vmid, replacing
// the one it had (rotation: the old token stops answering at once).
func (s *Store) SetGuestToken(ctx context.Context, vmid int, hash []byte, at time.Time) error {
	if vmid <= 0 || len(hash) != TokenHashSize {
		return fmt.Errorf("store: set guest token: vmid %d, %d-byte hash: %w", vmid, len(hash), ErrInvalid)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO guest_tokens (vmid, hash, created) VALUES (?, ?, ?)
			ON CONFLICT (vmid) DO UPDATE SET hash = excluded.hash, created = excluded.created`,
			vmid, hash, stamp(at).UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set guest %d token: %w", vmid, err)
	}
	return nil
}

// GuestByTokenHash returns the guest whose token hashes to hash, and
// false when no guest's does.
func (s *Store) GuestByTokenHash(ctx context.Context, hash []byte) (int, bool, error) {
	var vmid int
	err := s.r.QueryRowContext(ctx, `SELECT vmid FROM guest_tokens WHERE hash = ?`, hash).Scan(&vmid)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: guest token: %w", err)
	}
	return vmid, true, nil
}

// GuestToken is one guest's token as kept: its hash.
type GuestToken struct {
	VMID    int
	Hash    [TokenHashSize]byte
	Created time.Time
}

// GuestTokens returns every guest's token hash, by vmid.
func (s *Store) GuestTokens(ctx context.Context) ([]GuestToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT vmid, hash, created FROM guest_tokens ORDER BY vmid`)
	if err != nil {
		return nil, fmt.Errorf("store: guest tokens: %w", err)
	}
	defer rows.Close()
	var out []GuestToken
	for rows.Next() {
		var g GuestToken
		var h []byte
		var at sql.NullInt64
		if err := rows.Scan(&g.VMID, &h, &at); err != nil {
			return nil, fmt.Errorf("store: guest tokens: %w", err)
		}
		if len(h) != TokenHashSize {
			return nil, fmt.Errorf("store: guest %d token: a %d-byte hash: %w", g.VMID, len(h), ErrInvalid)
		}
		copy(g.Hash[:], h)
		g.Created = fromNanos(at)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: guest tokens: %w", err)
	}
	return out, nil
}

// DeleteGuestToken removes guest vmid's token; removing none is not an
// error.
func (s *Store) DeleteGuestToken(ctx context.Context, vmid int) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM guest_tokens WHERE vmid = ?`, vmid)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete guest %d token: %w", vmid, err)
	}
	return nil
}
