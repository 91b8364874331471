package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the base of the times tests record.
var t0 = time.Date(2026, 11, 23, 19, 30, 0, 0, time.UTC)

// newStore opens a fresh store in a temporary directory, closed at the end
// of the test.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return openAt(tb, filepath.Join(tb.TempDir(), "runs.db"))
}

// openAt opens the store at path, closed at the end of the test.
func openAt(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		tb.Fatalf("Open(%q) = %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close() = %v", err)
		}
	})
	return s
}

// create makes one queued run of playbook through the CLI, without a key,
// created at the given time.
func create(tb testing.TB, s *Store, playbook string, at time.Time) Run {
	tb.Helper()
	runs, _, err := s.CreateRuns(context.Background(), Trigger{Source: SourceCLI, At: at}, []NewRun{{Playbook: playbook}})
	if err != nil {
		tb.Fatalf("CreateRuns(%s) = %v", playbook, err)
	}
	return runs[0]
}

// get reads run id back or fails the test.
func get(tb testing.TB, s *Store, id string) Run {
	tb.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("Get(%s) = %v", id, err)
	}
	return r
}

// checkErr fails the test unless err matches want: nil for none, else an
// error that Is wantIs (if not nil) and whose text holds wantText.
func checkErr(tb testing.TB, what string, err, wantIs error, wantText string) {
	tb.Helper()
	switch {
	case wantIs == nil && wantText == "":
		if err != nil {
			tb.Errorf("%s = %v; want no error", what, err)
		}
	case err == nil:
		tb.Errorf("%s = nil; want error %v %q", what, wantIs, wantText)
	case wantIs != nil && !errors.Is(err, wantIs):
		tb.Errorf("%s = %v; want errors.Is %v", what, err, wantIs)
	case !strings.Contains(err.Error(), wantText):
		tb.Errorf("%s = %v; want text %q", what, err, wantText)
	}
}

// ids lists the IDs of runs.
func ids(runs []Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}
