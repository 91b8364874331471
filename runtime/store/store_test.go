package store

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

var update = flag.Bool("update", false, "rewrite testdata/v1.db")

func TestOpen(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string) string // returns the path to open
		opts     Options
		wantIs   error
		wantText string
	}{
		{
			name:  "new file in a missing directory",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "state", "agent", "runs.db") },
		},
		{
			name: "empty existing file",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "runs.db")
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantIs:   ErrDamaged,
			wantText: "empty (0 bytes)",
		},
		{
			name: "existing store readable by others",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "runs.db")
				openAt(t, p).Close()
				if err := os.Chmod(p, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "corrupted pages",
			setup: func(t *testing.T, dir string) string {
				return corruptStore(t, filepath.Join(dir, "runs.db"))
			},
			wantIs:   ErrDamaged,
			wantText: "quick_check",
		},
		{
			name:  "path with URI metacharacters",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "a b?c=d#e%20f", "runs.db") },
		},
		{
			name:  "relative path",
			setup: func(t *testing.T, dir string) string { t.Chdir(dir); return "runs.db" },
		},
		{
			name: "not a database",
			setup: func(t *testing.T, dir string) string {
				return copyFile(t, "testdata/not-sqlite.db", filepath.Join(dir, "runs.db"))
			},
			wantIs:   ErrDamaged,
			wantText: "not a database",
		},
		{
			name: "schema newer than this agent",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "runs.db")
				db, err := sql.Open("sqlite", p)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
					t.Fatal(err)
				}
				return p
			},
			wantText: "schema version 99 is newer",
		},
		{
			name:     "empty path",
			setup:    func(t *testing.T, dir string) string { return "" },
			wantIs:   ErrInvalid,
			wantText: "path is empty",
		},
		{
			name:     "negative readers",
			setup:    func(t *testing.T, dir string) string { return filepath.Join(dir, "runs.db") },
			opts:     Options{Readers: -1},
			wantIs:   ErrInvalid,
			wantText: "Readers",
		},
		{
			name:     "negative busy timeout",
			setup:    func(t *testing.T, dir string) string { return filepath.Join(dir, "runs.db") },
			opts:     Options{BusyTimeout: -1},
			wantIs:   ErrInvalid,
			wantText: "BusyTimeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t, t.TempDir())
			s, err := Open(path, tt.opts)
			if tt.wantIs != nil || tt.wantText != "" {
				if err == nil {
					s.Close()
				}
				checkErr(t, "Open", err, tt.wantIs, tt.wantText)
				return
			}
			if err != nil {
				t.Fatalf("Open(%q) = %v", path, err)
			}
			checkPragmas(t, s)
			r := create(t, s, "backup", t0)
			if err := s.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
			// The database is at exactly the path given, whatever bytes it holds.
			if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
				t.Errorf("Stat(%q) = %v; want a non-empty database file", path, err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != 0o600 {
					t.Errorf("mode of %s = %v; want 0600", p, fi.Mode().Perm())
				}
			}
			// Reopening an existing store keeps what it holds.
			s2 := openAt(t, path)
			checkPragmas(t, s2)
			if got := get(t, s2, r.ID); got.Playbook != "backup" {
				t.Errorf("after reopen, Get(%s).Playbook = %q; want backup", r.ID, got.Playbook)
			}
		})
	}
}

// checkPragmas asserts the settings durability depends on.
func checkPragmas(t *testing.T, s *Store) {
	t.Helper()
	for _, c := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"user_version", strconv.Itoa(len(migrations))},
	} {
		var got string
		if err := s.w.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", c.pragma, err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %s; want %s", c.pragma, got, c.want)
		}
	}
}

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	openAt(t, filepath.Join(dir, "runs.db"))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("mode of %s = %v; want 0700", dir, fi.Mode().Perm())
	}
}

func TestClosedStoreFails(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "runs.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateRuns(context.Background(), Trigger{Source: SourceCLI}, []NewRun{{Playbook: "x"}}); err == nil {
		t.Error("CreateRuns after Close = nil; want error")
	}
	if _, err := s.Get(context.Background(), "r-x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Close = %v; want a closed-database error", err)
	}
}

// TestOpenV1Fixture opens a database written by schema version 1, frozen
// in testdata: every later migration must carry its data forward. Run with
// -update only when adding testdata for a new version.
func TestOpenV1Fixture(t *testing.T) {
	ctx := context.Background()
	if *update {
		writeV1Fixture(t)
	}
	s := openAt(t, copyFile(t, "testdata/v1.db", filepath.Join(t.TempDir(), "runs.db")))
	runs, err := s.RunsByKey(ctx, SourceHub, "fixture-1")
	if err != nil || len(runs) != 1 {
		t.Fatalf("RunsByKey(hub, fixture-1) = %d runs, %v; want 1 run", len(runs), err)
	}
	r := runs[0]
	want := Run{
		ID: r.ID, Playbook: "backup", Version: "v-abc", Source: SourceHub, Key: "fixture-1",
		Params: []byte(`{"storage":"usb","token":"<redacted>"}`), Status: runstate.Succeeded,
		Created: t0, Started: t0.Add(1e9), Ended: t0.Add(9e9),
		Result: []byte(`{"backed_up":[101]}`),
		Tasks: []Task{{
			UPID: "UPID:pve:000A1B2C:0123ABCD:6751F3A8:vzdump:101:root@pam:", Run: r.ID,
			Started: t0.Add(2e9), Ended: t0.Add(8e9), ExitStatus: "OK",
		}},
	}
	if !equalRun(r, want) {
		t.Errorf("fixture run = %+v; want %+v", r, want)
	}
	lines, err := s.Logs(ctx, r.ID, 0, 0)
	if err != nil || len(lines) != 2 || lines[1].Msg != "backed up" || string(lines[1].Attrs) != `{"vmid":101}` {
		t.Errorf("fixture logs = %+v, %v; want 2 lines ending in backed up {vmid:101}", lines, err)
	}
	if last, ok, err := s.TimerLast(ctx, "backup"); err != nil || !ok || !last.Equal(t0) {
		t.Errorf("TimerLast(backup) = %v, %v, %v; want %v, true", last, ok, err, t0)
	}
	// The reopened store still takes new work.
	create(t, s, "backup", t0.Add(3600e9))
}

func writeV1Fixture(t *testing.T) {
	ctx := context.Background()
	if len(migrations) != 1 {
		t.Fatal("testdata/v1.db must stay as version 1 wrote it; add a new fixture instead")
	}
	path := filepath.Join(t.TempDir(), "v1.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "fixture-1", At: t0}, []NewRun{{
		Playbook: "backup", Params: []byte(`{"storage":"usb","token":"<redacted>"}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := runs[0].ID
	const upid = "UPID:pve:000A1B2C:0123ABCD:6751F3A8:vzdump:101:root@pam:"
	for _, err := range []error{
		s.MarkStarted(ctx, id, "v-abc", "", t0.Add(1e9)),
		s.TaskStarted(ctx, id, 0, upid, t0.Add(2e9)),
		s.AppendLog(ctx, id, LogLine{Time: t0.Add(2e9), Level: "INFO", Msg: "backing up"},
			LogLine{Time: t0.Add(8e9), Level: "INFO", Msg: "backed up", Attrs: []byte(`{"vmid":101}`)}),
		s.TaskFinished(ctx, upid, "OK", t0.Add(8e9)),
		s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded, Result: []byte(`{"backed_up":[101]}`), At: t0.Add(9e9)}),
		s.TimerMark(ctx, "backup", t0),
		s.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatal("WAL left behind after Close: the fixture would be incomplete")
	}
	copyFile(t, path, "testdata/v1.db")
}

// equalRun compares runs field by field, times with Equal.
func equalRun(a, b Run) bool {
	if a.ID != b.ID || a.Playbook != b.Playbook || a.Version != b.Version || a.Source != b.Source ||
		a.Key != b.Key || string(a.Params) != string(b.Params) || a.Status != b.Status || a.Origin != b.Origin ||
		a.Error != b.Error || a.ErrorKind != b.ErrorKind || !a.Created.Equal(b.Created) ||
		!a.Started.Equal(b.Started) || !a.Ended.Equal(b.Ended) || string(a.Result) != string(b.Result) ||
		len(a.Tasks) != len(b.Tasks) {
		return false
	}
	for i := range a.Tasks {
		x, y := a.Tasks[i], b.Tasks[i]
		if x.UPID != y.UPID || x.Run != y.Run || !x.Started.Equal(y.Started) || !x.Ended.Equal(y.Ended) ||
			x.ExitStatus != y.ExitStatus {
			return false
		}
	}
	return true
}

// copyFile copies src to dst (mode 0600) and returns dst.
func copyFile(t *testing.T, src, dst string) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
