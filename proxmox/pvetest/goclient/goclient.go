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
// [ClusterCheck] is the cluster's part: status, resources, next id, an HA
// guest, migrations (one held running to read its live log) and a node
// down.
package goclient

import (
	"context"
	"errors"
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
// content, given notes (UpdateContent) that the listing shows; the
// content of every PBS and ZFS storage; then the node's tasks and a task
// log. Everything it makes it
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

	// Every PBS and ZFS storage's content decodes: a PBS snapshot's
	// format pbs-ct or pbs-vm and its verification object, a ZFS disk's
	// raw or subvol format.
	storages, err := c.ClusterStorages(ctx)
	if err != nil {
		t.Fatalf("ClusterStorages: %v", err)
	}
	for _, s := range storages {
		if s.Type != "pbs" && s.Type != "zfspool" {
			continue
		}
		content, err := node.StorageRef(s.Storage).GetContent(ctx)
		if err != nil {
			t.Errorf("GetContent of %s storage %s: %v", s.Type, s.Storage, err)
			continue
		}
		for _, item := range content {
			ok := strings.HasPrefix(item.Volid, s.Storage+":") && item.Size > 0
			switch s.Type {
			case "pbs":
				ok = ok && (item.Format == "pbs-ct" || item.Format == "pbs-vm") &&
					(item.Verification == nil || item.Verification.State == "ok" || item.Verification.State == "failed")
			case "zfspool":
				ok = ok && (item.Format == "raw" || item.Format == "subvol")
			}
			if !ok {
				t.Errorf("%s storage %s content %+v", s.Type, s.Storage, item)
			}
		}
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
		// Notes go in whole; the listing shows their first line.
		if err := store.UpdateContent(ctx, archive, &goproxmox.StorageContentUpdateOptions{Notes: "go-proxmox\nsecond line"}); err != nil {
			t.Errorf("UpdateContent(%s, notes): %v", archive, err)
		}
		content, err := store.GetContent(ctx)
		if err != nil {
			t.Fatalf("GetContent: %v", err)
		}
		if i := slices.IndexFunc(content, func(c *goproxmox.StorageContent) bool { return c.Volid == archive }); i < 0 || content[i].Notes != "go-proxmox" {
			t.Errorf("GetContent after UpdateContent: %s not listed with notes \"go-proxmox\"", archive)
		}
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

// ClusterCheck drives the cluster w.Cluster describes with go-proxmox:
// the cluster's status (name, quorum, members) and resources of type vm,
// NextID and CheckID of another node's guest; the HA guest stopped and
// started (hastop and hastart tasks, the state following later); with
// Cluster.OperatorToken, w.Running migrated in restart mode to
// Cluster.Other (held running with World.HoldTasks: the task's status and
// its log read by start and limit; then Task.Watch to its end) and back,
// and Cluster.MigrateVM online (refused by its local disks, then with
// with-local-disks) and back; with Cluster.NodeDown, the other node's
// 595 as ErrNodeUnreachable. It skips without w.Cluster.
func ClusterCheck(t *testing.T, e pvetest.Endpoint, w pvetest.World) {
	t.Helper()
	cl := w.Cluster
	if cl == nil {
		t.Skip("World.Cluster is nil: the host is in no cluster")
	}
	c := client(t, e, e.Token)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wait := func(what string, task *goproxmox.Task, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := task.Wait(ctx, 20*time.Millisecond, 2*time.Minute); err != nil {
			t.Fatalf("%s: task %s: %v", what, task.UPID, err)
		}
	}

	cluster, err := c.Cluster(ctx)
	if err != nil || cluster.Name == "" || cluster.Quorate != 1 || len(cluster.Nodes) < 2 {
		t.Fatalf("Cluster = %+v, %v; want a named, quorate cluster of 2 or more", cluster, err)
	}
	local := 0
	for _, n := range cluster.Nodes {
		if n.Local == 1 {
			local++
			if n.Name != e.Node {
				t.Errorf("local member %s; want %s", n.Name, e.Node)
			}
		}
		if n.Name == cl.Other && n.Status != "online" {
			t.Errorf("member %s is %s; want online", n.Name, n.Status)
		}
	}
	if local != 1 {
		t.Errorf("%d local members; want 1", local)
	}
	res, err := cluster.Resources(ctx, "vm")
	if err != nil {
		t.Fatalf("Resources(vm): %v", err)
	}
	where := map[int]*goproxmox.ClusterResource{}
	for _, r := range res {
		if r.Type != "lxc" && r.Type != "qemu" {
			t.Errorf("Resources(vm) has %+v", r)
		}
		where[int(r.VMID)] = r
	}
	if r := where[cl.OtherGuest]; r == nil || r.Node != cl.Other {
		t.Errorf("resource of %d = %+v; want on %s", cl.OtherGuest, r, cl.Other)
	}
	if next, err := cluster.NextID(ctx); err != nil || where[next] != nil {
		t.Errorf("NextID = %d, %v; want a free id", next, err)
	}
	if free, err := cluster.CheckID(ctx, cl.OtherGuest); err != nil || free {
		t.Errorf("CheckID(%d) = %v, %v; want taken", cl.OtherGuest, free, err)
	}
	if _, err := c.NodeRef(e.Node).Container(ctx, cl.OtherGuest); !errors.Is(err, goproxmox.ErrNotFound) {
		t.Errorf("Container(%d) on %s = %v; want not found (it is on %s)", cl.OtherGuest, e.Node, err, cl.Other)
	}

	if cl.HAGuest != 0 {
		haPower(t, ctx, c, cl, where[cl.HAGuest], wait)
	}
	if cl.OperatorToken != "" {
		op := client(t, e, cl.OperatorToken)
		migrateContainer(t, ctx, c, op, e, w, wait)
		if cl.MigrateVM != 0 {
			migrateVM(t, ctx, c, op, e, w, wait)
		}
	}
	if cl.NodeDown != nil {
		t.Run("node-down", func(t *testing.T) {
			cl.NodeDown(t, cl.Other)
			_, err := c.Node(ctx, cl.Other)
			ae, ok := errors.AsType[*goproxmox.APIError](err)
			if !errors.Is(err, goproxmox.ErrNodeUnreachable) || !ok || ae.Message != "No route to host" {
				t.Errorf("Node(%s) while down = %v; want ErrNodeUnreachable, 595 No route to host", cl.Other, err)
			}
			st, err := c.Cluster(ctx)
			if err != nil {
				t.Fatalf("Cluster: %v", err)
			}
			for _, n := range st.Nodes {
				if n.Name == cl.Other && n.Online != 0 {
					t.Errorf("member %+v while down; want offline", n)
				}
			}
		})
	}
}

// client is a go-proxmox client of e with token.
func client(t *testing.T, e pvetest.Endpoint, token string) *goproxmox.Client {
	t.Helper()
	id, secret, ok := strings.Cut(token, "=")
	if !ok {
		t.Fatal("token is not USER@REALM!TOKENID=SECRET")
	}
	opts := []goproxmox.Option{goproxmox.WithAPIToken(id, secret)}
	if e.HTTPClient != nil {
		opts = append(opts, goproxmox.WithHTTPClient(e.HTTPClient))
	}
	return goproxmox.NewClient(strings.TrimSuffix(e.URL, "/")+"/api2/json", opts...)
}

// settle polls cond until it holds or the cluster's settle time passes.
func settle(t *testing.T, cl *pvetest.Cluster, what string, cond func() bool) {
	t.Helper()
	limit := cl.Settle
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, limit)
		}
	}
}

// haPower stops and starts the HA guest on its node (res): hastop and
// hastart tasks, the guest's state following later.
func haPower(t *testing.T, ctx context.Context, c *goproxmox.Client, cl *pvetest.Cluster, res *goproxmox.ClusterResource, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	if res == nil || res.HAstate != "started" {
		t.Fatalf("resource of HA guest %d = %+v; want hastate started", cl.HAGuest, res)
	}
	ct, err := c.NodeRef(res.Node).Container(ctx, cl.HAGuest)
	if err != nil {
		t.Fatalf("Container(%d) on %s: %v", cl.HAGuest, res.Node, err)
	}
	for _, step := range []struct {
		typ, want string
		call      func(context.Context) (*goproxmox.Task, error)
	}{
		{"hastop", "stopped", ct.Stop},
		{"hastart", "running", ct.Start},
	} {
		task, err := step.call(ctx)
		if err == nil && task.Type != step.typ {
			t.Errorf("HA guest %d: task type %q; want %s", cl.HAGuest, task.Type, step.typ)
		}
		wait(step.typ, task, err)
		settle(t, cl, step.typ, func() bool { return ct.Ping(ctx) == nil && ct.Status == step.want })
	}
}

// migrateContainer moves w.Running to the other node in restart mode with
// the operator's client op, and back.
func migrateContainer(t *testing.T, ctx context.Context, c, op *goproxmox.Client, e pvetest.Endpoint, w pvetest.World, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	other := w.Cluster.Other
	ct, err := op.NodeRef(e.Node).Container(ctx, w.Running)
	if err != nil {
		t.Fatalf("Container(%d): %v", w.Running, err)
	}
	if _, err := ct.Migrate(ctx, &goproxmox.ContainerMigrateOptions{Target: other}); err == nil || !strings.Contains(err.Error(), "can't migrate running container without --online or --restart") {
		t.Errorf("Migrate without restart = %v; want PVE's refusal", err)
	}
	var task *goproxmox.Task
	migrate := func() {
		task, err = ct.Migrate(ctx, &goproxmox.ContainerMigrateOptions{Target: other, Restart: true})
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	if w.HoldTasks == nil {
		migrate()
	} else {
		t.Run("held", func(t *testing.T) {
			w.HoldTasks(t)
			migrate()
			if err := task.Ping(ctx); err != nil || !task.IsRunning || task.ExitStatus != "" {
				t.Errorf("migration task while held = %+v, %v; want running", task, err)
			}
			first, err := task.Log(ctx, 0, 1)
			if err != nil || len(first) != 1 {
				t.Fatalf("Log(0, 1) = %v, %v; want one line", first, err)
			}
			// Log's keys are n-1: the first page is key 0, the rest 1 on.
			rest, err := task.Log(ctx, 1, 50)
			if _, ok := first[0]; !ok || err != nil || len(rest) == 0 || !strings.Contains(rest[len(rest)], "starting migration of CT") {
				t.Errorf("Log(1, 50) = %v, %v; want the lines after the first, up to the migration's start", rest, err)
			}
		})
	}
	if task.Type != "vzmigrate" {
		t.Errorf("migration task type %q; want vzmigrate", task.Type)
	}
	lines, err := task.Watch(ctx, 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var watched []string
	for l := range lines {
		watched = append(watched, l)
	}
	if len(watched) == 0 || watched[len(watched)-1] != "TASK OK" {
		t.Errorf("Watch = %q; want the whole log to TASK OK", watched)
	}
	wait("Migrate", task, nil)
	moved, err := c.NodeRef(other).Container(ctx, w.Running)
	if err != nil || moved.Status != "running" {
		t.Fatalf("Container(%d) on %s after migration = %+v, %v; want running", w.Running, other, moved, err)
	}
	back, err := op.NodeRef(other).Container(ctx, w.Running)
	if err != nil {
		t.Fatal(err)
	}
	task, err = back.Migrate(ctx, &goproxmox.ContainerMigrateOptions{Target: e.Node, Restart: true})
	wait("Migrate back", task, err)
}

// migrateVM moves Cluster.MigrateVM online to the other node and back.
func migrateVM(t *testing.T, ctx context.Context, c, op *goproxmox.Client, e pvetest.Endpoint, w pvetest.World, wait func(string, *goproxmox.Task, error)) {
	t.Helper()
	other, vmid := w.Cluster.Other, w.Cluster.MigrateVM
	vm, err := op.NodeRef(e.Node).VirtualMachine(ctx, vmid)
	if err != nil || vm.Status != "running" {
		t.Fatalf("VirtualMachine(%d) = %+v, %v; want running", vmid, vm, err)
	}
	task, err := vm.Migrate(ctx, &goproxmox.VirtualMachineMigrateOptions{Target: other, Online: true})
	if err != nil {
		t.Fatalf("Migrate online: %v", err)
	}
	var failed *goproxmox.TaskFailedError
	if err := task.Wait(ctx, 20*time.Millisecond, 2*time.Minute); !errors.As(err, &failed) || failed.ExitStatus != "migration aborted" {
		t.Errorf("online migration with local disks = %v; want the task to fail \"migration aborted\"", err)
	}
	task, err = vm.Migrate(ctx, &goproxmox.VirtualMachineMigrateOptions{Target: other, Online: true, WithLocalDisks: true})
	if err == nil && task.Type != "qmigrate" {
		t.Errorf("task type %q; want qmigrate", task.Type)
	}
	wait("Migrate online with-local-disks", task, err)
	moved, err := c.NodeRef(other).VirtualMachine(ctx, vmid)
	if err != nil || moved.Status != "running" {
		t.Fatalf("VirtualMachine(%d) on %s = %+v, %v; want running", vmid, other, moved, err)
	}
	back, err := op.NodeRef(other).VirtualMachine(ctx, vmid)
	if err != nil {
		t.Fatal(err)
	}
	task, err = back.Migrate(ctx, &goproxmox.VirtualMachineMigrateOptions{Target: e.Node, Online: true, WithLocalDisks: true})
	wait("Migrate back", task, err)
}
