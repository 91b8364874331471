package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/statedir"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// newIdleAgent is an Agent that is never Run: New only, for tests of one
// part.
func newIdleAgent(t *testing.T, files map[string]string) *Agent {
	t.Helper()
	a, err := New(Config{
		PlaybooksDir: enginetest.WriteTree(t, files),
		StateDir:     filepath.Join(t.TempDir(), "state"),
		Loader:       engine.LoaderOptions{Tables: enginetest.Tables(enginetest.NewSignal()), Logger: enginetest.Logger()},
		Logger:       enginetest.Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestMutationGateFailsClosed: the run's observer writes each mutation's
// intent before it is sent; when that write fails the mutation is refused
// (and so is every later one, without asking the store again), the run is
// cancelled with the cause, and health reports the store.
func TestMutationGateFailsClosed(t *testing.T) {
	a := newIdleAgent(t, map[string]string{"p.star": agentPlaybook("p", "    return 1", "")})
	ctx := context.Background()
	runs, _, err := a.store.CreateRuns(ctx, store.Trigger{Source: store.SourceAPI}, []store.NewRun{{Playbook: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	id := runs[0].ID
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lr := &liveRun{id: id, ctx: rctx, cancel: cancel, changed: make(chan struct{}), done: make(chan struct{})}
	lr.log = newRunLogSink(a, lr)
	tasks := &runTasks{a: a, run: id, lr: lr, open: map[string]proxmox.UPID{}}

	if err := tasks.BeforeMutation(ctx, proxmox.Mutation{Method: "POST", Path: "/nodes/n/vzdump"}); err != nil {
		t.Fatalf("BeforeMutation on a sound store = %v", err)
	}
	lines, err := a.store.Logs(ctx, id, 0, 0)
	if err != nil || len(lines) != 1 || lines[0].Msg != "sending mutation" {
		t.Fatalf("log after an approved mutation = %+v, %v; want its intent", lines, err)
	}

	a.store.Close() // every write fails from here: a store that cannot write
	err = tasks.BeforeMutation(ctx, proxmox.Mutation{Method: "POST", Path: "/nodes/n/vzdump"})
	var lost *errRecordLost
	if !errors.As(err, &lost) || !errors.Is(err, store.ErrUnwritable) {
		t.Fatalf("BeforeMutation on a failing store = %v; want errRecordLost wrapping ErrUnwritable", err)
	}
	if !errors.As(context.Cause(rctx), &lost) {
		t.Errorf("the run's context cause = %v; want the lost record", context.Cause(rctx))
	}
	if err2 := tasks.BeforeMutation(ctx, proxmox.Mutation{Method: "POST", Path: "/nodes/n/vzdump"}); !errors.Is(err2, err) && err2 != err {
		t.Errorf("a later mutation = %v; want the same refusal %v", err2, err)
	}
	h := a.Health()
	if h.Store.OK || h.Store.Error == "" || h.Status != "degraded" {
		t.Errorf("Health with a failing store = %+v; want degraded with store.ok false", h)
	}
}

// TestStartRefusedWhileStoreFails: a trigger that cannot be recorded is a
// refusedStore refusal (503 at the hub and the local API), not a 500.
func TestStartRefusedWhileStoreFails(t *testing.T) {
	a := newIdleAgent(t, map[string]string{"p.star": agentPlaybook("p", "    return 1", `triggers = ["p"]`)})
	a.applyChange(a.registry.LoadAll())
	a.store.Close()
	_, err := a.start(context.Background(), startRequest{Source: store.SourceAPI, Playbook: "p"})
	var r *startRefusal
	if !errors.As(err, &r) || r.Reason != refusedStore {
		t.Fatalf("start on a failing store = %v; want a refusedStore refusal", err)
	}
}

// TestSecondAgentRefused: a second agent on the same state directory is
// refused in New, naming the first one's pid; once the first has closed,
// the directory is free again.
func TestSecondAgentRefused(t *testing.T) {
	files := map[string]string{"p.star": agentPlaybook("p", "    return 1", "")}
	state := filepath.Join(t.TempDir(), "state")
	cfg := Config{PlaybooksDir: enginetest.WriteTree(t, files), StateDir: state, Logger: enginetest.Logger(),
		Loader: engine.LoaderOptions{Tables: enginetest.Tables(enginetest.NewSignal()), Logger: enginetest.Logger()}}
	first, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg)
	var le *statedir.LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("a second New on %s = %v; want a LockedError naming pid %d", state, err, os.Getpid())
	}
	first.Close()
	again, err := New(cfg)
	if err != nil {
		t.Fatalf("New after the first agent closed = %v", err)
	}
	again.Close()
}
