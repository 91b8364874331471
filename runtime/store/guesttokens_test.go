package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestGuestTokens(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h1 := sha256.Sum256([]byte("one"))
	h2 := sha256.Sum256([]byte("two"))
	h3 := sha256.Sum256([]byte("three"))
	if err := s.SetGuestToken(ctx, 101, h1[:], t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGuestToken(ctx, 102, h2[:], t0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		hash []byte
		vmid int
		ok   bool
	}{{h1[:], 101, true}, {h2[:], 102, true}, {h3[:], 0, false}} {
		vmid, ok, err := s.GuestByTokenHash(ctx, c.hash)
		if err != nil || vmid != c.vmid || ok != c.ok {
			t.Errorf("GuestByTokenHash(%x) = %d, %v, %v; want %d, %v", c.hash[:4], vmid, ok, err, c.vmid, c.ok)
		}
	}
	// Rotation replaces the old hash: the old token stops answering.
	if err := s.SetGuestToken(ctx, 101, h3[:], t0); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GuestByTokenHash(ctx, h1[:]); ok {
		t.Error("the rotated-out token still answers")
	}
	if vmid, ok, _ := s.GuestByTokenHash(ctx, h3[:]); !ok || vmid != 101 {
		t.Errorf("the new token = %d, %v; want 101", vmid, ok)
	}
	// Two guests can never share a hash.
	if err := s.SetGuestToken(ctx, 103, h2[:], t0); err == nil {
		t.Error("a second guest took guest 102's token hash")
	}
	if err := s.SetGuestToken(ctx, 0, h2[:], t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("vmid 0: err = %v; want ErrInvalid", err)
	}
	if err := s.SetGuestToken(ctx, 104, []byte("short"), t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("short hash: err = %v; want ErrInvalid", err)
	}
	all, err := s.GuestTokens(ctx)
	if err != nil || len(all) != 2 || all[0].VMID != 101 || all[0].Hash != h3 || all[1].Hash != h2 {
		t.Fatalf("GuestTokens = %v, %v; want 101 and 102 with their hashes", all, err)
	}
	if err := s.DeleteGuestToken(ctx, 102); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.GuestByTokenHash(ctx, h2[:]); ok {
		t.Error("a deleted token still answers")
	}
	// Nothing but hashes is stored.
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM guest_tokens WHERE length(hash) != 32`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows with a non-hash: %d, %v", n, err)
	}
}
