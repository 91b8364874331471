package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// writeTree writes files (slash paths -> contents) under a new temporary
// directory and returns it.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		writeFile(t, dir, name, src)
	}
	return dir
}

func writeFile(t testing.TB, dir, name, src string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// blockSignal connects a test to test.block(): arm() returns a channel
// the next call closes when it starts waiting, so tests wait on it
// instead of sleeping; closing release makes waiting calls return None.
type blockSignal struct {
	mu      sync.Mutex
	started chan struct{}
	release chan struct{}
}

func newBlockSignal() *blockSignal { return &blockSignal{release: make(chan struct{})} }

var testTaskError = &proxmox.TaskError{
	UPID:       proxmox.MustParseUPID("UPID:pve:0000F00D:00A1B2C3:65F0A1B2:vzdump:101:felhom@pve!agent:"),
	ExitStatus: "Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)",
	Permission: &proxmox.Permission{Path: "/storage/usb-backup", Privileges: []string{"Datastore.AllocateSpace"}},
	LogTail:    []string{"INFO: starting new backup job", "TASK ERROR: Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"},
}

// testTable is a module of builtins the tests need: a builtin that
// blocks until the run's context ends (as every waiting builtin must),
// one that fails with a typed Proxmox error, one that acts, one that
// panics.
func testTable(sig *blockSignal) *builtins.Table {
	return &builtins.Table{
		Name: "test",
		Doc:  "Test builtins.",
		Funcs: []builtins.Func{
			{Name: "block", Sig: "block()", Doc: "Waits until the run's context ends or the test releases it.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
					return nil, err
				}
				env, err := builtins.RunEnv(thread, b)
				if err != nil {
					return nil, err
				}
				var release chan struct{}
				if sig != nil {
					sig.mu.Lock()
					if sig.started != nil {
						close(sig.started)
						sig.started = nil
					}
					release = sig.release
					sig.mu.Unlock()
				}
				select {
				case <-env.Context.Done():
					return nil, builtins.Errorf(b, "waiting: %w", context.Cause(env.Context))
				case <-release:
					return starlark.None, nil
				}
			}},
			{Name: "vzdump", Sig: "vzdump()", Doc: "Fails like a vzdump task without the privilege.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
					return nil, err
				}
				if _, err := builtins.RunEnv(thread, b); err != nil {
					return nil, err
				}
				return nil, builtins.Errorf(b, "%w", testTaskError)
			}},
			{Name: "act", Sig: "act()", Doc: "Acts: refuses at load time.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
					return nil, err
				}
				if _, err := builtins.RunEnv(thread, b); err != nil {
					return nil, err
				}
				return starlark.True, nil
			}},
			{Name: "panic", Sig: "panic()", Doc: "Panics.", Fn: func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
				panic("test.panic called")
			}},
		},
	}
}

func (s *blockSignal) arm() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = make(chan struct{})
	return s.started
}

func testTables(sig *blockSignal) []*builtins.Table {
	return append(builtins.Tables(), testTable(sig))
}

// loadTree writes files and loads the playbook main from them.
func loadTree(t testing.TB, files map[string]string, main string) (*Playbook, error) {
	t.Helper()
	dir := writeTree(t, files)
	l, err := NewLoader(dir, LoaderOptions{Tables: testTables(nil), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Load(filepath.Join(dir, main))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// diagStrings renders the diagnostics of a *LoadError relative to dir.
func diagStrings(err error, dir string) []string {
	var lerr *LoadError
	if !errors.As(err, &lerr) {
		if err == nil {
			return nil
		}
		return []string{"not a LoadError: " + err.Error()}
	}
	var out []string
	for _, d := range lerr.Diagnostics {
		out = append(out, relDiag(d, dir))
	}
	return out
}

func relDiag(d Diagnostic, dir string) string {
	if rel, err := filepath.Rel(dir, d.File); err == nil && !strings.HasPrefix(rel, "..") {
		d.File = filepath.ToSlash(rel)
	}
	return d.String()
}

// recorder is a slog.Handler that keeps every record with the
// attributes of With() applied.
type recorder struct {
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), records: new([]slog.Record)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.records = append(*r.records, rec)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clip(r.attrs), as...)
	return &c
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

// lines renders every record as "LEVEL msg k=v ...".
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range *r.records {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}
