package engine_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// instantAPI answers the flow's calls at once, without a network: what
// is left of a flow's time is the engine's own.
type instantAPI struct {
	builtins.GuestAPI // nil: any other call panics, failing the run
	kinds             *proxmox.GuestKinds
	upid              proxmox.UPID
}

func (a *instantAPI) Kinds() *proxmox.GuestKinds { return a.kinds }
func (a *instantAPI) Snapshot(context.Context, proxmox.GuestKind, int, proxmox.SnapshotOptions) (proxmox.UPID, error) {
	return a.upid, nil
}
func (a *instantAPI) Rollback(context.Context, proxmox.GuestKind, int, string) (proxmox.UPID, error) {
	return a.upid, nil
}
func (a *instantAPI) DeleteSnapshot(context.Context, proxmox.GuestKind, int, string) (proxmox.UPID, error) {
	return a.upid, nil
}
func (a *instantAPI) WaitTask(_ context.Context, u proxmox.UPID, _ proxmox.WaitOptions) (proxmox.TaskStatus, error) {
	return proxmox.TaskStatus{UPID: u, Status: "stopped", ExitStatus: "OK"}, nil
}

// BenchmarkFlowEngine is BenchmarkFlow's playbook against a Proxmox that
// answers at once: the engine's own cost of a flow (the run, its three
// builtin calls and their waits), which is the playbook's overhead.
func BenchmarkFlowEngine(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "snapflow.star")
	if err := os.WriteFile(path, []byte(flowPlaybook), 0o644); err != nil {
		b.Fatal(err)
	}
	pb, err := engine.LoadFile(path, dir)
	if err != nil {
		b.Fatal(err)
	}
	upid, err := proxmox.ParseUPID("UPID:pve:000A1B2C:0012D687:6553F0A1:vzsnapshot:120:root@pam!felhom:")
	if err != nil {
		b.Fatal(err)
	}
	api := &instantAPI{kinds: new(proxmox.GuestKinds), upid: upid}
	api.kinds.Set(flowVMID, proxmox.LXC)
	e := engine.NewEngine(engine.Config{Env: builtins.Env{Proxmox: api}, Logger: slog.New(slog.DiscardHandler)})
	for b.Loop() {
		if res := e.Run(context.Background(), pb, nil, engine.RunOptions{ID: "bench"}); res.Status != runstate.Succeeded {
			b.Fatalf("run = %s: %s", res.Status, res.Error)
		}
	}
}
