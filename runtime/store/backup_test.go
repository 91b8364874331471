package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// TestBackupOnline: a backup taken while the store is open (and written
// to, afterwards) holds every run committed before it, opens as a store,
// and refuses to overwrite.
func TestBackupOnline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "runs.db"))
	r := create(t, s, "backup", t0)
	if err := s.Finish(ctx, r.ID, FinishInfo{Status: runstate.Succeeded, Result: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := Backup(ctx, filepath.Join(dir, "runs.db"), dst); err != nil {
		t.Fatalf("Backup = %v", err)
	}
	create(t, s, "after", t0) // the live store goes on
	if err := Backup(ctx, filepath.Join(dir, "runs.db"), dst); err == nil {
		t.Error("Backup over an existing file = nil; want a refusal")
	}
	c := openAt(t, dst)
	if got := get(t, c, r.ID); got.Status != runstate.Succeeded || string(got.Result) != "1" {
		t.Errorf("backed-up run = %+v", got)
	}
	if runs, _ := c.List(ctx, Filter{}); len(runs) != 1 {
		t.Errorf("backup holds %d runs; want the 1 committed before it", len(runs))
	}
	if err := Check(ctx, dst); err != nil {
		t.Errorf("Check(backup) = %v", err)
	}
	if err := Check(ctx, corruptStore(t, filepath.Join(t.TempDir(), "bad.db"))); !errors.Is(err, ErrDamaged) {
		t.Errorf("Check(corrupted) = %v; want ErrDamaged", err)
	}
}
