package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// corruptStore writes a store of a few hundred runs at path, closes it,
// and overwrites pages in its middle with garbage, as a torn write or a
// failing disk would. It returns path.
func corruptStore(t *testing.T, path string) string {
	t.Helper()
	s := openAt(t, path)
	for i := range 300 {
		create(t, s, fmt.Sprintf("pb-%03d", i), t0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	if len(b) < 8*page {
		t.Fatalf("store is %d bytes; want at least 8 pages to corrupt", len(b))
	}
	copy(b[3*page:6*page], bytes.Repeat([]byte{0xA5}, 3*page))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpenRefusesDamagedNeverReplaces: a damaged or empty file is left
// byte for byte as it was, and the refusal names its path and what to do.
func TestOpenRefusesDamagedNeverReplaces(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"empty", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"corrupted", func(t *testing.T, path string) { corruptStore(t, path) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runs.db")
			tc.make(t, path)
			before, _ := os.ReadFile(path)
			_, err := Open(path, Options{})
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open = %v; want ErrDamaged", err)
			}
			for _, want := range []string{path, "state import", "mv " + path} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error %q does not say %q", err, want)
				}
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("the refused file changed: %d bytes before, %d after", len(before), len(after))
			}
		})
	}
}

// TestOpenNewIsWhole: a new store is made under a temporary name and
// renamed into place; leftovers of a crash half-way are replaced.
func TestOpenNewIsWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runs.db")
	if err := os.WriteFile(path+".new", []byte("half-made"), 0o600); err != nil {
		t.Fatal(err)
	}
	openAt(t, path)
	if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat(%s.new) = %v; want it gone", path, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("Stat(%s) = %v; want a non-empty store", path, err)
	}
}

// TestHealthFollowsWrites: a write the store cannot commit (here the
// database at its page limit, which SQLite reports as SQLITE_FULL like a
// full disk) wraps ErrUnwritable and marks the store unhealthy; refused
// input does not; the next write that commits, or a Probe, restores it.
func TestHealthFollowsWrites(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if h := s.Health(); !h.OK {
		t.Fatalf("a new store's Health = %+v; want OK", h)
	}
	r := create(t, s, "backup", t0)
	if err := s.Finish(ctx, "r-missing", FinishInfo{Status: "succeeded"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Finish(missing) = %v", err)
	}
	if h := s.Health(); !h.OK {
		t.Fatalf("after refused input Health = %+v; want OK", h)
	}

	var pages int64
	if err := s.w.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	big := LogLine{Level: "INFO", Msg: strings.Repeat("x", 64<<10)}
	var err error
	for range 100 {
		if err = s.AppendLog(ctx, r.ID, big); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrUnwritable) {
		t.Fatalf("AppendLog on a full store = %v; want ErrUnwritable", err)
	}
	h := s.Health()
	if h.OK || !strings.Contains(h.Err, "full") || h.Since.IsZero() {
		t.Fatalf("Health on a full store = %+v; want not OK, saying full", h)
	}
	if _, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "k1"}, []NewRun{{Playbook: "big", Params: []byte(`"` + strings.Repeat("p", 64<<10) + `"`)}}); !errors.Is(err, ErrUnwritable) {
		t.Fatalf("CreateRuns on a full store = %v; want ErrUnwritable", err)
	}
	if runs, err := s.RunsByKey(ctx, SourceHub, "k1"); err != nil || len(runs) != 0 {
		t.Fatalf("RunsByKey after a failed CreateRuns = %v, %v; want nothing recorded", runs, err)
	}

	if _, err := s.w.Exec("PRAGMA max_page_count = 1000000"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // Since must move
	if err := s.Probe(ctx); err != nil {
		t.Fatalf("Probe after space came back = %v", err)
	}
	if h2 := s.Health(); !h2.OK || !h2.Since.After(h.Since) {
		t.Fatalf("Health after the probe = %+v; want OK since later than %v", h2, h.Since)
	}
}
