package statedir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// TestExportImport: an export of a live store (its lock held, its store
// open) imports into an empty directory with its runs and the operator's
// files; import refuses a locked directory, one holding a store, and a
// damaged archive, changing nothing.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "state")
	l, err := Lock(src)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := store.Open(filepath.Join(src, StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, _, err := s.CreateRuns(ctx, store.Trigger{Source: store.SourceHub, Key: "k-1"}, []store.NewRun{{Playbook: "backup"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, runs[0].ID, store.FinishInfo{Status: runstate.Succeeded}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "guest-tokens.json"), []byte(`{"101":"t"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "state.tar.gz")
	m, err := Export(ctx, src, file)
	if err != nil {
		t.Fatalf("Export of a live state directory = %v", err)
	}
	if len(m.Files) != 2 || m.Files[0].Name != StoreFile || m.Files[1].Name != "guest-tokens.json" {
		t.Errorf("manifest files = %+v; want the store and the operator's file", m.Files)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive %v, %v; want mode 0600", fi, err)
	}
	if _, err := Export(ctx, src, file); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Export over an existing archive = %v; want a refusal", err)
	}

	if _, err := Import(ctx, src, file); !errors.As(err, new(*LockedError)) {
		t.Errorf("Import into the live directory = %v; want LockedError", err)
	}

	dst := filepath.Join(t.TempDir(), "new-host")
	if _, err := Import(ctx, dst, file); err != nil {
		t.Fatalf("Import into an empty directory = %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "guest-tokens.json")); err != nil || string(b) != `{"101":"t"}` {
		t.Errorf("imported operator file = %q, %v", b, err)
	}
	s2, err := store.Open(filepath.Join(dst, StoreFile), store.Options{})
	if err != nil {
		t.Fatalf("Open of the imported store = %v", err)
	}
	got, err := s2.RunsByKey(ctx, store.SourceHub, "k-1")
	s2.Close()
	if err != nil || len(got) != 1 || got[0].ID != runs[0].ID || got[0].Status != runstate.Succeeded {
		t.Errorf("imported runs by key = %+v, %v; want the exported run", got, err)
	}
	if _, err := Import(ctx, dst, file); err == nil || !strings.Contains(err.Error(), "already holds a run store") {
		t.Errorf("Import over an existing store = %v; want a refusal", err)
	}

	// A damaged archive changes nothing.
	b, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, b[:len(b)/2], 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	if _, err := Import(ctx, empty, bad); err == nil {
		t.Error("Import of a truncated archive = nil")
	}
	if _, err := os.Stat(filepath.Join(empty, StoreFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused import left a store behind: %v", err)
	}
}
