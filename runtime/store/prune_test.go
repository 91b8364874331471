package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// pruneFixture fills s with runs of two playbooks, one per hour, oldest
// first: backup b0..b5, monitor m0..m5, b_i and m_i created at t0+i h.
// b0 is running; m1 finished but has an open task; the rest are
// terminal. Each has a log line and a finished task, and b_i comes from
// hub key "b<i>".
func pruneFixture(t *testing.T, s *Store) map[string]string {
	ctx := context.Background()
	names := map[string]string{} // name → ID
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Hour)
		for _, pb := range []string{"backup", "monitor"} {
			name := fmt.Sprintf("%c%d", pb[0], i)
			runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: name, At: at}, []NewRun{{Playbook: pb}})
			if err != nil {
				t.Fatal(err)
			}
			id := runs[0].ID
			names[name] = id
			upid := "UPID:" + name
			for _, err := range []error{
				s.MarkStarted(ctx, id, "", "", at),
				s.AppendLog(ctx, id, LogLine{Msg: "hello"}),
				s.TaskStarted(ctx, id, 0, upid, at),
			} {
				if err != nil {
					t.Fatal(err)
				}
			}
			if name != "m1" {
				if err := s.TaskFinished(ctx, upid, "OK", at); err != nil {
					t.Fatal(err)
				}
			}
			if name != "b0" {
				if err := s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded, At: at}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return names
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(6 * time.Hour)
	tests := []struct {
		name        string
		r           Retention
		wantDeleted []string
	}{
		{name: "zero retention keeps everything", r: Retention{}},
		{name: "keep last 2 per playbook", r: Retention{KeepLast: 2},
			// b0 runs, m1 has an open task.
			wantDeleted: []string{"b1", "b2", "b3", "m0", "m2", "m3"}},
		{name: "older than 3h30m", r: Retention{MaxAge: 3*time.Hour + 30*time.Minute},
			wantDeleted: []string{"b1", "b2", "m0", "m2"}},
		{name: "count and age together", r: Retention{KeepLast: 5, MaxAge: 4*time.Hour + 30*time.Minute},
			wantDeleted: []string{"b1", "m0"}},
		{name: "keep last 1 and no age", r: Retention{KeepLast: 1},
			wantDeleted: []string{"b1", "b2", "b3", "b4", "m0", "m2", "m3", "m4"}},
		{name: "everything is old", r: Retention{MaxAge: time.Nanosecond},
			wantDeleted: []string{"b1", "b2", "b3", "b4", "b5", "m0", "m2", "m3", "m4", "m5"}},
	}
	// Build the fixture once; each case prunes its own copy.
	template := filepath.Join(t.TempDir(), "template.db")
	s, err := Open(template, Options{})
	if err != nil {
		t.Fatal(err)
	}
	names := pruneFixture(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openAt(t, copyFile(t, template, filepath.Join(t.TempDir(), "runs.db")))
			n, err := s.Prune(ctx, tt.r, now)
			if err != nil {
				t.Fatal(err)
			}
			var deleted []string
			for name, id := range names {
				_, err := s.Get(ctx, id)
				switch {
				case err == nil:
				case errorsIsNotFound(err):
					deleted = append(deleted, name)
				default:
					t.Fatal(err)
				}
			}
			slices.Sort(deleted)
			if !slices.Equal(deleted, tt.wantDeleted) || n != len(tt.wantDeleted) {
				t.Errorf("Prune(%+v) deleted %d: %v; want %v", tt.r, n, deleted, tt.wantDeleted)
			}
			// Logs and tasks go with their runs.
			for _, table := range []string{"logs", "tasks"} {
				var rows int
				if err := s.r.QueryRow("SELECT count(*) FROM " + table).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if want := len(names) - len(tt.wantDeleted); rows != want {
					t.Errorf("%d rows left in %s; want %d", rows, table, want)
				}
			}
		})
	}
}

func errorsIsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

func TestPruneBatches(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	s.pruneBatch = 3
	const n = 3*2 + 1 // two full batches and a short one
	runs := make([]NewRun, n)
	for i := range runs {
		runs[i] = NewRun{Playbook: fmt.Sprint("p", i)}
	}
	// One trigger for speed; each playbook then has one run.
	created, _, err := s.CreateRuns(ctx, Trigger{Source: SourceCLI, At: t0}, runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range created {
		if err := s.Finish(ctx, r.ID, FinishInfo{Status: runstate.Failed}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Prune(ctx, Retention{MaxAge: time.Hour}, t0.Add(2*time.Hour))
	if err != nil || got != n {
		t.Errorf("Prune = %d, %v; want %d", got, err, n)
	}
	if left, err := s.List(ctx, Filter{}); err != nil || len(left) != 0 {
		t.Errorf("List after Prune = %d runs, %v; want none", len(left), err)
	}
}

func TestPruneKeys(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		r           Retention
		pruneAt     time.Duration // after t0
		wantCreated bool          // a replay of the key after Prune creates runs
	}{
		{"runs gone, key younger than the default key age", Retention{KeepLast: 1}, time.Hour, false},
		{"runs gone, key older than the default key age", Retention{KeepLast: 1}, DefaultKeyAge + time.Hour, true},
		{"key age given", Retention{KeepLast: 1, KeyAge: time.Hour}, 2 * time.Hour, true},
		{"key kept at least MaxAge", Retention{KeepLast: 1, MaxAge: 30 * 24 * time.Hour, KeyAge: time.Hour}, 2 * time.Hour, false},
		{"runs kept, key kept", Retention{}, 365 * 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			old, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "k", At: t0}, []NewRun{{Playbook: "p"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Finish(ctx, old[0].ID, FinishInfo{Status: runstate.Succeeded, At: t0}); err != nil {
				t.Fatal(err)
			}
			create(t, s, "p", t0.Add(time.Minute)) // newer: KeepLast 1 drops the keyed run
			if _, err := s.Prune(ctx, tt.r, t0.Add(tt.pruneAt)); err != nil {
				t.Fatal(err)
			}
			runs, created, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "k"}, []NewRun{{Playbook: "p"}})
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.wantCreated {
				t.Errorf("replay after Prune: created = %v (runs %v); want %v", created, ids(runs), tt.wantCreated)
			}
		})
	}
}

func TestPruneInput(t *testing.T) {
	s := newStore(t)
	for _, tt := range []struct {
		r    Retention
		want string
	}{
		{Retention{KeepLast: -1}, "KeepLast -1"},
		{Retention{MaxAge: -time.Second}, "MaxAge -1s"},
		{Retention{KeyAge: -time.Second}, "KeyAge -1s"},
	} {
		_, err := s.Prune(context.Background(), tt.r, t0)
		checkErr(t, fmt.Sprintf("Prune(%+v)", tt.r), err, ErrInvalid, tt.want)
	}
}
