package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestVersionStore: Put then Get gives the files back; contents shared by
// versions are stored once; good versions are kept per file; Prune keeps
// what a good version or a run refers to and drops the rest.
func TestVersionStore(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	lib := []byte("v = 1\n")
	v1 := map[string][]byte{"p.star": []byte("playbook v1"), "lib/x.star": lib}
	v2 := map[string][]byte{"p.star": []byte("playbook v2"), "lib/x.star": lib}
	for v, files := range map[string]map[string][]byte{"ver-1": v1, "ver-2": v2} {
		if err := s.PutVersion(ctx, v, files); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutVersion(ctx, "ver-1", v1); err != nil {
		t.Fatalf("PutVersion of a held version = %v; want a no-op", err)
	}
	got, err := s.GetVersion(ctx, "ver-1")
	if err != nil || len(got) != 2 || string(got["p.star"]) != "playbook v1" || string(got["lib/x.star"]) != "v = 1\n" {
		t.Fatalf("GetVersion(ver-1) = %q, %v", got, err)
	}
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM sources`).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d contents stored; want 3 (the shared module once)", n)
	}
	if _, err := s.GetVersion(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersion(unknown) = %v; want ErrNotFound", err)
	}
	if err := s.PutVersion(ctx, "ver-3", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutVersion without files = %v; want ErrInvalid", err)
	}

	if err := s.SetGoodVersion(ctx, "p.star", "p", "ver-2"); err != nil {
		t.Fatal(err)
	}
	good, err := s.GoodVersions(ctx)
	if err != nil || good["p.star"].Version != "ver-2" || good["p.star"].Playbook != "p" {
		t.Fatalf("GoodVersions = %+v, %v", good, err)
	}

	// Within the grace nothing goes; after it, ver-1 (no run, not good)
	// goes with its own contents, and ver-2 stays.
	if _, err := s.Prune(ctx, Retention{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetVersion(ctx, "ver-1"); err != nil {
		t.Errorf("a version inside the grace was pruned: %v", err)
	}
	if _, err := s.Prune(ctx, Retention{}, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetVersion(ctx, "ver-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersion(ver-1) after prune = %v; want it gone", err)
	}
	if got, err := s.GetVersion(ctx, "ver-2"); err != nil || len(got) != 2 {
		t.Errorf("the good version after prune = %v, %v", got, err)
	}
	if err := s.r.QueryRow(`SELECT count(*) FROM sources`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d contents after prune; want 2", n)
	}
}
