// Package enginetest holds the fixtures that the engine's and the agent's
// tests share: playbook trees written to a temporary directory, a test
// builtin module whose calls block until released or cancelled, and a
// silent logger. It is internal to runtime/ and imported only by tests.
package enginetest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// WriteTree writes files (slash paths -> contents) under a new temporary
// directory and returns it.
func WriteTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		WriteFile(t, dir, name, src)
	}
	return dir
}

// WriteFile writes src to the slash path name under dir, creating its
// directories.
func WriteFile(t testing.TB, dir, name, src string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Signal connects a test to test.block(): Arm returns a channel the next
// call closes when it starts waiting, so tests wait on it instead of
// sleeping; closing Release makes waiting calls return None.
type Signal struct {
	mu      sync.Mutex
	started chan struct{}
	// Release, once closed, lets every waiting test.block() return. A
	// test may replace it (before any call reads it) to block again.
	Release chan struct{}
}

// NewSignal returns a Signal whose Release is open.
func NewSignal() *Signal { return &Signal{Release: make(chan struct{})} }

// Arm returns a channel that the next test.block() closes when it starts
// waiting.
func (s *Signal) Arm() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = make(chan struct{})
	return s.started
}

// TaskError is the typed error test.vzdump() fails with: a vzdump task
// refused the storage privilege.
var TaskError = &proxmox.TaskError{
	UPID:       proxmox.MustParseUPID("UPID:pve:0000F00D:00A1B2C3:65F0A1B2:vzdump:101:felhom@pve!agent:"),
	ExitStatus: "Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)",
	Permission: &proxmox.Permission{Path: "/storage/usb-backup", Privileges: []string{"Datastore.AllocateSpace"}},
	LogTail:    []string{"INFO: starting new backup job", "TASK ERROR: Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"},
}

// Table is a module of builtins the tests need: test.block() blocks until
// the run's context ends (as every waiting builtin must) or sig releases
// it; test.vzdump() fails with [TaskError]; test.act() acts (and so
// refuses at load time); test.panic() panics. sig may be nil.
func Table(sig *Signal) *builtins.Table {
	return &builtins.Table{
		Effect: builtins.Reads,
		Name:   "test",
		Doc:    "Test builtins.",
		Waits:  true, // test.block waits like a Proxmox call
		Funcs: []builtins.Func{
			{Name: "block", Journal: builtins.Pure, Sig: "block()", Doc: "Waits until the run's context ends or the test releases it.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
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
					release = sig.Release
					sig.mu.Unlock()
				}
				select {
				case <-env.Context.Done():
					return nil, builtins.Errorf(b, "waiting: %w", context.Cause(env.Context))
				case <-release:
					return starlark.None, nil
				}
			}},
			{Name: "vzdump", Journal: builtins.Pure, Sig: "vzdump()", Doc: "Fails like a vzdump task without the privilege.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
					return nil, err
				}
				if _, err := builtins.RunEnv(thread, b); err != nil {
					return nil, err
				}
				return nil, builtins.Errorf(b, "%w", TaskError)
			}},
			{Name: "act", Journal: builtins.Pure, Sig: "act()", Doc: "Acts: refuses at load time.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
					return nil, err
				}
				if _, err := builtins.RunEnv(thread, b); err != nil {
					return nil, err
				}
				return starlark.True, nil
			}},
			{Name: "panic", Journal: builtins.Pure, Sig: "panic()", Doc: "Panics.", Fn: func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
				panic("test.panic called")
			}},
		},
	}
}

// Tables is every shipped builtin table plus [Table](sig).
func Tables(sig *Signal) []*builtins.Table {
	return append(builtins.Tables(), Table(sig))
}

// Logger returns a logger that drops everything.
func Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
