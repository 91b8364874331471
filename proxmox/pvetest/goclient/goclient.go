// Package goclient checks a Proxmox VE host — the simulator or a real
// one — with a Go client the project did not write,
// github.com/luthermonson/go-proxmox, fetched through the module proxy.
// It is a module of its own (this directory's go.mod, which replaces the
// parent module with ../../..) so that the agent's go.mod never requires
// that client; CI runs its tests with `cd proxmox/pvetest/goclient && go
// test ./...`.
//
// [Check] is the flow, like pvetest.Proxmoxer's: read the host, then per
// guest kind ([Guest]) snapshot, read the snapshot's config, roll back and
// delete it, start and stop the guest; back it up and find the archive;
// list tasks and read a log. Its guest table has the World's stopped
// container and, when the World names one, its stopped VM.
package goclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goproxmox "github.com/luthermonson/go-proxmox"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
)

// Guest is one guest the flow works on, by kind: "lxc" or "qemu"
// (kindOps picks the client's calls per kind).
type Guest struct {
	Kind    string // lxc or qemu
	Stopped int    // a stopped guest it snapshots, starts, stops and backs up
}

// Guests is the table [Check] works through for w: its stopped container,
// and its stopped VM when it names one.
func Guests(w pvetest.World) []Guest {
	gs := []Guest{{Kind: "lxc", Stopped: w.Stopped}}
	if w.StoppedVM != 0 {
		gs = append(gs, Guest{Kind: "qemu", Stopped: w.StoppedVM})
	}
	return gs
}

// Check drives the host e reaches with go-proxmox: version, nodes, the
// cluster's status and next id, cluster resources, the backup storage's
// status and content; then for every guest of Guests(w) the snapshot
// round trip, a start and a stop, and a vzdump whose archive appears in the
// content; then the node's tasks and a task log. Everything it makes it
// removes again. e.HTTPClient must trust the host.
func Check(t *testing.T, e pvetest.Endpoint, w pvetest.World) {
	t.Helper()
	id, secret, ok := strings.Cut(e.Token, "=")
	if !ok {
		t.Fatal("Endpoint.Token is not USER@REALM!TOKENID=SECRET")
	}
	opts := []goproxmox.Option{goproxmox.WithAPIToken(id, secret)}
	if e.HTTPClient != nil {
		opts = append(opts, goproxmox.WithHTTPClient(e.HTTPClient))
	}
	c := goproxmox.NewClient(strings.TrimSuffix(e.URL, "/")+"/api2/json", opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	v, err := c.Version(ctx)
	if err != nil || v.Version == "" {
		t.Fatalf("Version = %+v, %v", v, err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || !slices.ContainsFunc(nodes, func(n *goproxmox.NodeStatus) bool { return n.Node == e.Node }) {
		t.Fatalf("Nodes = %+v, %v; want %s", nodes, err, e.Node)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatalf("Cluster (GET /cluster/status): %v", err)
	}
	if next, err := cl.NextID(ctx); err != nil || next < 100 {
		t.Errorf("NextID = %d, %v", next, err)
	}
	res, err := cl.Resources(ctx, "vm")
	if err != nil || !slices.ContainsFunc(res, func(r *goproxmox.ClusterResource) bool { return int(r.VMID) == w.Stopped }) {
		t.Errorf("Resources(vm) = %v, %v; want guest %d", res, err, w.Stopped)
	}
	node, err := c.Node(ctx, e.Node)
	if err != nil {
		t.Fatalf("Node(%s): %v", e.Node, err)
	}
	store, err := node.Storage(ctx, w.BackupStorage)
	if err != nil || store.Total == 0 {
		t.Fatalf("Storage(%s) (GET .../storage/%[1]s/status) = %+v, %v", w.BackupStorage, store, err)
	}

	wait := func(what string, task *goproxmox.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := task.Wait(ctx, 20*time.Millisecond, 2*time.Minute); err != nil {
			t.Fatalf("%s: task %s: %v", what, task.UPID, err)
		}
	}
	snap := fmt.Sprintf("felhomgo%x", time.Now().Unix())
	for _, g := range Guests(w) {
		ops, ok := kindOps[g.Kind]
		if !ok {
			t.Fatalf("guest kind %q has no operations", g.Kind)
		}
		ops(t, ctx, node, g, snap, wait)
	}

	// A backup of every guest, found in the storage's content.
	for _, g := range Guests(w) {
		backup(t, ctx, node, store, w, g, wait)
	}

	tasks, err := node.Tasks(ctx, &goproxmox.NodeTasksOptions{Limit: 50})
	if err != nil || len(tasks) == 0 {
		t.Fatalf("Tasks = %v, %v", tasks, err)
	}
	log, err := tasks[0].Log(ctx, 0, 0)
	if err != nil || len(log) == 0 {
		t.Errorf("Log of %s = %v, %v", tasks[0].UPID, log, err)
	}
}

// backup runs vzdump for g, finds the new archive (named for g's kind) in
// the storage's content and deletes it again.
func backup(t *testing.T, ctx context.Context, node *goproxmox.Node, store *goproxmox.Storage, w pvetest.World, g Guest, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	before, err := store.GetContent(ctx)
	if err != nil {
		t.Fatalf("GetContent: %v", err)
	}
	task, err := node.Vzdump(ctx, &goproxmox.VirtualMachineBackupOptions{VMID: uint64(g.Stopped), Storage: w.BackupStorage, Compress: "zstd", Mode: "snapshot"})
	wait("Vzdump", task, err)
	after, err := store.GetContent(ctx)
	if err != nil {
		t.Fatalf("GetContent: %v", err)
	}
	var archive string
	for _, item := range after {
		if !slices.ContainsFunc(before, func(b *goproxmox.StorageContent) bool { return b.Volid == item.Volid }) {
			archive = item.Volid
		}
	}
	prefix := fmt.Sprintf("%s:backup/vzdump-%s-%d-", w.BackupStorage, g.Kind, g.Stopped)
	if !strings.HasPrefix(archive, prefix) {
		t.Errorf("new archive %q; want %s...", archive, prefix)
	}
	if archive != "" {
		task, err := store.DeleteContent(ctx, strings.TrimPrefix(archive, w.BackupStorage+":"))
		wait("DeleteContent", task, err)
	}
}

// kindOps are the per-kind steps of Check.
var kindOps = map[string]func(t *testing.T, ctx context.Context, node *goproxmox.Node, g Guest, snap string, wait func(string, *goproxmox.Task, error)){
	"lxc":  containerSteps,
	"qemu": vmSteps,
}

// vmSteps: the VM's status and config, snapshot, its config, rollback,
// delete; start, stop.
func vmSteps(t *testing.T, ctx context.Context, node *goproxmox.Node, g Guest, snap string, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	vm, err := node.VirtualMachine(ctx, g.Stopped)
	if err != nil {
		t.Fatalf("VirtualMachine(%d): %v", g.Stopped, err)
	}
	if vm.Status != "stopped" || vm.VirtualMachineConfig == nil || vm.VirtualMachineConfig.Name == "" {
		t.Fatalf("VirtualMachine(%d) = status %q, config %+v; want a stopped VM with a name", g.Stopped, vm.Status, vm.VirtualMachineConfig)
	}
	vms, err := node.VirtualMachines(ctx)
	if err != nil || !slices.ContainsFunc(vms, func(v *goproxmox.VirtualMachine) bool { return int(v.VMID) == g.Stopped }) {
		t.Fatalf("VirtualMachines = %v, %v; want %d", vms, err, g.Stopped)
	}
	task, err := vm.NewSnapshot(ctx, snap)
	wait("VM NewSnapshot", task, err)
	snaps, err := vm.Snapshots(ctx)
	if err != nil || !slices.ContainsFunc(snaps, func(s *goproxmox.VirtualMachineSnapshot) bool { return s.Name == snap }) {
		t.Fatalf("VM Snapshots = %v, %v; want %s", snaps, err, snap)
	}
	cfg, err := vm.Snapshot(snap).Config(ctx)
	if err != nil || cfg["snaptime"] == nil {
		t.Errorf("VM snapshot %s Config = %v, %v; want its snaptime", snap, cfg, err)
	}
	task, err = vm.Snapshot(snap).Rollback(ctx)
	wait("VM Rollback", task, err)
	task, err = vm.Snapshot(snap).Delete(ctx)
	wait("VM Delete snapshot", task, err)

	task, err = vm.Start(ctx)
	wait("VM Start", task, err)
	task, err = vm.Stop(ctx)
	wait("VM Stop", task, err)
}

// containerSteps: snapshot, its config, rollback, delete; start, stop.
func containerSteps(t *testing.T, ctx context.Context, node *goproxmox.Node, g Guest, snap string, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	ct, err := node.Container(ctx, g.Stopped)
	if err != nil {
		t.Fatalf("Container(%d): %v", g.Stopped, err)
	}
	if ct.Status != "stopped" {
		t.Fatalf("Container(%d) status %q; want stopped", g.Stopped, ct.Status)
	}
	task, err := ct.NewSnapshot(ctx, snap)
	wait("NewSnapshot", task, err)
	snaps, err := ct.Snapshots(ctx)
	if err != nil || !slices.ContainsFunc(snaps, func(s *goproxmox.ContainerSnapshot) bool { return s.Name == snap }) {
		t.Fatalf("Snapshots = %v, %v; want %s", snaps, err, snap)
	}
	cfg, err := ct.Snapshot(snap).Config(ctx)
	if err != nil || cfg["snaptime"] == nil {
		t.Errorf("snapshot %s Config = %v, %v; want its snaptime", snap, cfg, err)
	}
	task, err = ct.Snapshot(snap).Rollback(ctx, false)
	wait("Rollback", task, err)
	task, err = ct.Snapshot(snap).Delete(ctx)
	wait("Delete snapshot", task, err)

	task, err = ct.Start(ctx)
	wait("Start", task, err)
	task, err = ct.Stop(ctx)
	wait("Stop", task, err)
}
