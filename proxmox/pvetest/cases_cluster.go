package pvetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Cluster describes the cluster the host is a node of, for the cluster
// cases (World.Cluster); nil skips them (a host in no cluster).
type Cluster struct {
	// Other is another node of the cluster, online. Required.
	Other string
	// OtherGuest is a container on Other. Required.
	OtherGuest int
	// Operator is a client of the suite's node whose token may migrate
	// guests (VM.Migrate; root@pam's on a real cluster). Nil skips the
	// migration cases.
	Operator *proxmox.Client
	// OperatorToken is Operator's token, USER@REALM!TOKENID=SECRET, for
	// the third-party flows' migrations (Proxmoxer moves World.Running
	// to Other and back in restart mode, and MigrateVM online). ""
	// skips those steps.
	OperatorToken string
	// Migrate is a stopped, unlocked container on the suite's node that
	// the migration case moves to Other and back. 0 skips that case.
	Migrate int
	// MigrateVM is a running, unlocked QEMU VM on the suite's node with
	// its disks on local storage, that the third-party flows migrate
	// online (with-local-disks) to Other and back. 0 skips that step.
	MigrateVM int
	// HAGuest is a running, HA-managed container (on any node) that the
	// HA case stops and starts again through the HA stack. 0 skips it.
	HAGuest int
	// NodeDown takes node down (or cuts it off) until t's cleanup. Nil
	// skips the case.
	NodeDown func(t testing.TB, node string)
	// BindMount sets mount point key (mpN) of container vmid to value as
	// root does (pct set VMID --KEY VALUE), wherever the container is;
	// t's cleanup removes the mount point. Nil skips the bind-mount case.
	BindMount func(t testing.TB, vmid int, key, value string)
	// HostDir makes directory path exist on node until t's cleanup. The
	// bind-mount case uses fresh paths below /run/pvetest-bind-, absent
	// on every node before. Nil skips the bind-mount case.
	HostDir func(t testing.TB, node, path string)
	// Settle bounds how long the HA stack may take to act on a request;
	// 0 means 2 minutes.
	Settle time.Duration
}

func (s *suite) cluster(t *testing.T) *Cluster {
	t.Helper()
	if s.w.Cluster == nil {
		t.Skip("World.Cluster is nil: the host is in no cluster")
	}
	return s.w.Cluster
}

// eventually polls cond until it holds or the HA settle time passes.
func (s *suite) eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	limit := s.w.Cluster.Settle
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			t.Fatalf("%s: still %s after %s", what, state, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterCases check what a node of a cluster answers about the others,
// after pve-manager PVE/API2/Cluster.pm, pve-cluster PVE/Cluster.pm and
// the migrate and HA paths of qemu-server and pve-container.
var clusterCases = []testCase{
	{
		name: "cluster-members",
		rule: "GET /cluster/status in a cluster: the cluster entry (name, quorate) and one entry per node with nodeid, online, ip and local set on the answering node only",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			st, err := s.c.ClusterStatus(s.ctx)
			if err != nil {
				t.Fatalf("ClusterStatus: %v", err)
			}
			if st.Name == "" || !st.Quorate || len(st.Members) < 2 {
				t.Fatalf("ClusterStatus = %+v; want a named, quorate cluster of 2 or more", st)
			}
			locals := 0
			for _, m := range st.Members {
				if m.Local {
					locals++
					if m.Name != s.node {
						t.Errorf("local member %q; want the client's node %q", m.Name, s.node)
					}
				}
				if m.NodeID < 1 || m.IP == "" {
					t.Errorf("member %+v; want a nodeid >= 1 and an ip", m)
				}
			}
			if locals != 1 {
				t.Errorf("%d members are local; want 1", locals)
			}
			if m, ok := st.Member(cl.Other); !ok || !m.Online {
				t.Errorf("member %s = %+v (%v); want online", cl.Other, m, ok)
			}
		},
	},
	{
		name: "cluster-resources-nodes",
		rule: "GET /cluster/resources lists every node and every node's guests with the node they are on",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			res, err := s.c.ClusterResources(s.ctx, "node")
			if err != nil {
				t.Fatalf("ClusterResources: %v", err)
			}
			for _, n := range []string{s.node, cl.Other} {
				if !slices.ContainsFunc(res, func(r proxmox.Resource) bool { return r.Node == n && r.Status == "online" }) {
					t.Errorf("resources %+v lack node %s online", res, n)
				}
			}
			loc, found, err := s.c.LocateGuest(s.ctx, cl.OtherGuest)
			if err != nil || !found || loc.Node != cl.Other || loc.Kind != proxmox.LXC {
				t.Errorf("LocateGuest(%d) = %+v %v %v; want a container on %s", cl.OtherGuest, loc, found, err, cl.Other)
			}
		},
	},
	{
		name: "other-node-guest",
		rule: "a guest on another node is not on this node's paths: 500 \"Configuration file 'nodes/NODE/lxc/VMID.conf' does not exist\"; the other node's paths reach it (proxied)",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			_, err := s.c.GuestStatus(s.ctx, proxmox.LXC, cl.OtherGuest)
			wantAPIError(t, "GuestStatus", err, 500, fmt.Sprintf("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", s.node, cl.OtherGuest))
			other, err := s.c.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := other.GuestStatus(s.ctx, proxmox.LXC, cl.OtherGuest); err != nil {
				t.Errorf("GuestStatus through %s: %v", cl.Other, err)
			}
			guests, err := s.c.Guests(s.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(guests, func(g proxmox.Guest) bool { return g.VMID == cl.OtherGuest }) {
				t.Errorf("this node's guest list has %d, which is on %s", cl.OtherGuest, cl.Other)
			}
		},
	},
	{
		name: "vmid-cluster-wide",
		rule: "vmids are unique cluster-wide: nextid?vmid=N of another node's guest answers 400 vmid \"VM N already exists\"; a restore onto it dies \"CT N already exists on node 'OTHER'\"; nextid never offers it",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			err := s.c.CheckVMIDFree(s.ctx, cl.OtherGuest)
			var ae *proxmox.APIError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Errors["vmid"] != fmt.Sprintf("VM %d already exists", cl.OtherGuest) {
				t.Errorf("CheckVMIDFree(%d) = %v; want 400 vmid \"VM %d already exists\"", cl.OtherGuest, err, cl.OtherGuest)
			}
			if id, err := s.c.NextID(s.ctx); err != nil || id == cl.OtherGuest {
				t.Errorf("NextID = %d, %v", id, err)
			}
			if s.archive == "" {
				t.Skip("no archive: the backup case did not pass")
			}
			_, err = s.c.RestoreGuest(s.ctx, proxmox.RestoreOptions{Kind: proxmox.LXC, VMID: cl.OtherGuest, Archive: s.archive, Storage: s.w.GuestStorage})
			wantAPIError(t, "RestoreGuest", err, 500, fmt.Sprintf("CT %d already exists on node '%s'", cl.OtherGuest, cl.Other))
			if node, ok := proxmox.ExistsOnNode(err); !ok || node != cl.Other {
				t.Errorf("ExistsOnNode(%v) = %q %v", err, node, ok)
			}
		},
	},
	{
		name: "vzdump-other-node",
		rule: "a vzdump naming only another node's guests answers \"OK\" and starts no task (PVE/API2/VZDump.pm silent exit)",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			_, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{cl.OtherGuest}, Storage: s.w.BackupStorage})
			if !errors.Is(err, proxmox.ErrNoTask) {
				t.Errorf("Vzdump(%d) = %v; want ErrNoTask", cl.OtherGuest, err)
			}
		},
	},
	{
		name: "storage-usage-per-node",
		rule: "a storage without shared=1 is each node's own disk: a backup on another node to it grows that node's usage (GET /nodes/OTHER/storage, cluster/resources storage/OTHER/STORAGE) and not this node's (pve-storage src/PVE/Storage.pm storage_info runs on the node asked; pve-manager PVE/Service/pvestatd.pm broadcasts pve2-storage/NODE/STORAGE)",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			other, err := s.c.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			sid := s.w.BackupStorage
			usage := func(c *proxmox.Client) proxmox.Storage {
				t.Helper()
				list, err := c.NodeStorages(s.ctx)
				if err != nil {
					t.Fatalf("NodeStorages: %v", err)
				}
				i := slices.IndexFunc(list, func(x proxmox.Storage) bool { return x.Storage == sid })
				if i < 0 {
					t.Fatalf("NodeStorages lacks %s", sid)
				}
				return list[i]
			}
			here, there := usage(s.c), usage(other)
			if here.Shared {
				t.Skipf("World.BackupStorage %s is shared: one usage for the cluster", sid)
			}
			upid, err := other.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{cl.OtherGuest}, Storage: sid})
			s.mustDone(t, "Vzdump on "+cl.Other, upid, err)
			volid, err := other.VzdumpArchive(s.ctx, upid, sid)
			if err != nil {
				t.Fatalf("VzdumpArchive: %v", err)
			}
			defer func() {
				upid, err := other.DeleteVolume(s.ctx, sid, volid)
				s.mustDone(t, "DeleteVolume", upid, err)
			}()
			vols, err := other.StorageContent(s.ctx, sid, "backup", cl.OtherGuest)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(vols, func(v proxmox.Volume) bool { return v.VolID == volid })
			if i < 0 || vols[i].Size == 0 {
				t.Fatalf("%s's content on %s lacks %s with a size: %+v", sid, cl.Other, volid, vols)
			}
			size := vols[i].Size
			// A real node's disk also changes by what else writes to it:
			// half the archive's size is the margin either way.
			if grew := int64(usage(other).Used) - int64(there.Used); grew < int64(size/2) {
				t.Errorf("%s on %s grew by %d after a %d-byte archive; want about that", sid, cl.Other, grew, size)
			}
			if moved := int64(usage(s.c).Used) - int64(here.Used); max(moved, -moved) >= int64(size/2) {
				t.Errorf("%s on %s (this node) changed by %d after a %d-byte archive on %s; want its own disk unchanged", sid, s.node, moved, size, cl.Other)
			}
			s.eventually(t, "cluster/resources storage/"+cl.Other+"/"+sid, func() (bool, string) {
				res, err := s.c.ClusterResources(s.ctx, "storage")
				if err != nil {
					return false, err.Error()
				}
				disk := map[string]uint64{}
				for _, r := range res {
					if r.Storage == sid {
						disk[r.Node] = r.Disk
					}
				}
				return disk[cl.Other] >= there.Used+size/2 && disk[s.node] < here.Used+size/2,
					fmt.Sprintf("disk %v (%s before %d, %s before %d)", disk, cl.Other, there.Used, s.node, here.Used)
			})
		},
	},
	{
		name: "migrate-refused",
		rule: "migrate: to the node itself 400 target \"target is local node.\"; to no member 500 \"no such cluster node 'X'\"; a running container without restart 500 \"can't migrate running container without --online or --restart\"",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.Operator == nil {
				t.Skip("World.Cluster.Operator is nil")
			}
			_, err := cl.Operator.Migrate(s.ctx, proxmox.LXC, s.w.Running, proxmox.MigrateOptions{Target: s.node, Restart: true})
			if ae := wantAPIError(t, "Migrate to itself", err, 400, "Parameter verification failed."); ae != nil && ae.Errors["target"] != "target is local node." {
				t.Errorf("errors = %v", ae.Errors)
			}
			_, err = cl.Operator.Migrate(s.ctx, proxmox.LXC, s.w.Running, proxmox.MigrateOptions{Target: "felhom-no-such-node", Restart: true})
			wantAPIError(t, "Migrate to no member", err, 500, "no such cluster node 'felhom-no-such-node'")
			_, err = cl.Operator.Migrate(s.ctx, proxmox.LXC, s.w.Running, proxmox.MigrateOptions{Target: cl.Other})
			wantAPIError(t, "Migrate running", err, 500, "can't migrate running container without --online or --restart")
		},
	},
	{
		name: "migrate",
		rule: "a container migrates with a vzmigrate task that holds its \"migrate\" lock; then it is on the target, and the source node's paths do not find it",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.Operator == nil || cl.Migrate == 0 {
				t.Skip("World.Cluster.Operator or Migrate unset")
			}
			upid, err := cl.Operator.Migrate(s.ctx, proxmox.LXC, cl.Migrate, proxmox.MigrateOptions{Target: cl.Other})
			if err == nil && upid.Type != "vzmigrate" {
				t.Errorf("UPID type %q; want vzmigrate", upid.Type)
			}
			s.mustDone(t, "Migrate", upid, err)
			loc, found, err := s.c.LocateGuest(s.ctx, cl.Migrate)
			if err != nil || !found || loc.Node != cl.Other || loc.Lock != "" {
				t.Errorf("after migration %d = %+v %v %v; want on %s, unlocked", cl.Migrate, loc, found, err, cl.Other)
			}
			if _, err := s.c.GuestStatus(s.ctx, proxmox.LXC, cl.Migrate); !proxmox.IsNotFound(err) {
				t.Errorf("GuestStatus on the source node = %v; want not found", err)
			}
			back, err := cl.Operator.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			upid, err = back.Migrate(s.ctx, proxmox.LXC, cl.Migrate, proxmox.MigrateOptions{Target: s.node})
			s.mustDone(t, "Migrate back", upid, err)
		},
	},
	{
		name: "migrate-bind-mount",
		rule: "a container with a bind mount point migrates only when it is marked shared=1 (else vzmigrate \"migration aborted\", \"cannot migrate local bind mount point 'mpN'\", pve-container src/PVE/LXC/Migrate.pm prepare); on a node without its directory it does not start (vzstart \"startup for container 'N' failed\", the log \"directory 'P' does not exist\", src/PVE/LXC.pm mountpoint_mount), and starts once the directory exists",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.Operator == nil || cl.Migrate == 0 || cl.BindMount == nil || cl.HostDir == nil {
				t.Skip("World.Cluster.Operator, Migrate, BindMount or HostDir unset")
			}
			vmid := cl.Migrate
			path := fmt.Sprintf("/run/pvetest-bind-%d", time.Now().UnixNano())
			cl.HostDir(t, s.node, path)
			cl.BindMount(t, vmid, "mp255", path+",mp=/mnt/pvetest,ro=1")
			upid, err := cl.Operator.Migrate(s.ctx, proxmox.LXC, vmid, proxmox.MigrateOptions{Target: cl.Other})
			te := s.wantTaskError(t, "Migrate with a local bind mount", upid, err, "migration aborted")
			if !slices.ContainsFunc(te.LogTail, func(l string) bool { return strings.Contains(l, "cannot migrate local bind mount point 'mp255'") }) {
				t.Errorf("migrate log %q; want PVE's refusal of mp255", te.LogTail)
			}
			if loc, _, err := s.c.LocateGuest(s.ctx, vmid); err != nil || loc.Node != s.node || loc.Lock != "" {
				t.Fatalf("after the refused migration %d = %+v, %v; want on %s, unlocked", vmid, loc, err, s.node)
			}

			cl.BindMount(t, vmid, "mp255", path+",mp=/mnt/pvetest,ro=1,shared=1")
			upid, err = cl.Operator.Migrate(s.ctx, proxmox.LXC, vmid, proxmox.MigrateOptions{Target: cl.Other})
			s.mustDone(t, "Migrate with a shared bind mount", upid, err)
			there, err := cl.Operator.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				upid, err := there.Migrate(s.ctx, proxmox.LXC, vmid, proxmox.MigrateOptions{Target: s.node})
				s.mustDone(t, "Migrate back", upid, err)
			}()
			upid, err = there.Start(s.ctx, proxmox.LXC, vmid)
			te = s.wantTaskError(t, "Start without the directory", upid, err, "startup for container '"+itoa(vmid)+"' failed")
			if !slices.ContainsFunc(te.LogTail, func(l string) bool { return strings.Contains(l, "directory '"+path+"' does not exist") }) {
				t.Errorf("start log %q; want PVE's missing directory", te.LogTail)
			}
			cl.HostDir(t, cl.Other, path)
			upid, err = there.Start(s.ctx, proxmox.LXC, vmid)
			s.mustDone(t, "Start with the directory", upid, err)
			upid, err = there.Stop(s.ctx, proxmox.LXC, vmid)
			s.mustDone(t, "Stop", upid, err)
		},
	},
	{
		name: "migrate-keeps-description",
		rule: "a migration moves the guest's whole config file to the target (pve-container src/PVE/LXC/Migrate.pm phase3: PVE::LXC::Config->move_config_to_node), so every line of its description — the agent's guest-API identity line (proxmox/identity.go) among them — is read back from the target node as it was written",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.Operator == nil || cl.Migrate == 0 {
				t.Skip("World.Cluster.Operator or Migrate unset")
			}
			before, err := cl.Operator.GuestConfig(s.ctx, proxmox.LXC, cl.Migrate)
			if err != nil {
				t.Fatal(err)
			}
			id := proxmox.GuestIdentity{VMID: cl.Migrate}
			copy(id.Hash[:], "conformance: a made-up token hash")
			if err := cl.Operator.SetGuestIdentity(s.ctx, id); err != nil {
				t.Fatalf("SetGuestIdentity: %v", err)
			}
			defer func() {
				// Back to what it was: no identity line, wherever it is.
				client := cl.Operator
				if loc, found, err := s.c.LocateGuest(s.ctx, cl.Migrate); err == nil && found && loc.Node != s.node {
					if client, err = cl.Operator.OnNode(loc.Node); err != nil {
						t.Error(err)
						return
					}
				}
				if err := client.ClearGuestIdentity(s.ctx, cl.Migrate); err != nil {
					t.Errorf("removing %d's identity line: %v", cl.Migrate, err)
				}
				if conf, err := client.GuestConfig(s.ctx, proxmox.LXC, cl.Migrate); err != nil || conf.Raw["description"] != before.Raw["description"] {
					t.Errorf("%d's description after the case = %q (%v); want %q", cl.Migrate, conf.Raw["description"], err, before.Raw["description"])
				}
			}()
			upid, err := cl.Operator.Migrate(s.ctx, proxmox.LXC, cl.Migrate, proxmox.MigrateOptions{Target: cl.Other})
			s.mustDone(t, "Migrate", upid, err)
			there, err := cl.Operator.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			conf, err := there.GuestConfig(s.ctx, proxmox.LXC, cl.Migrate)
			if err != nil {
				t.Fatalf("config on %s: %v", cl.Other, err)
			}
			if conf.Identity == nil || *conf.Identity != (proxmox.GuestIdentity{VMID: id.VMID, Hash: id.Hash, Line: id.String()}) || conf.Description != before.Description {
				t.Errorf("on %s: identity %+v, description %q; want %+v and %q", cl.Other, conf.Identity, conf.Description, id, before.Description)
			}
			upid, err = there.Migrate(s.ctx, proxmox.LXC, cl.Migrate, proxmox.MigrateOptions{Target: s.node})
			s.mustDone(t, "Migrate back", upid, err)
		},
	},
	{
		name:  "migrate-restart",
		rule:  "a running container migrates in restart mode: the vzmigrate worker shuts it down first (pve-container src/PVE/LXC/Migrate.pm prepare), so it is stopped and locked \"migrate\" while the task runs, and runs again on the target after",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.Operator == nil {
				t.Skip("World.Cluster.Operator is nil")
			}
			vmid := s.w.Running
			var upid proxmox.UPID
			t.Run("held", func(t *testing.T) {
				s.w.HoldTasks(t)
				var err error
				upid, err = cl.Operator.Migrate(s.ctx, proxmox.LXC, vmid, proxmox.MigrateOptions{Target: cl.Other, Restart: true})
				if err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				st, err := s.c.GuestStatus(s.ctx, proxmox.LXC, vmid)
				if err != nil || st.Status != "stopped" || st.Lock != "migrate" {
					t.Errorf("while migrating %d = %+v, %v; want stopped, locked migrate", vmid, st, err)
				}
			})
			if upid.Type == "" {
				t.FailNow()
			}
			s.mustDone(t, "Migrate", upid, nil)
			other, err := s.c.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := other.GuestStatus(s.ctx, proxmox.LXC, vmid); err != nil || st.Status != "running" {
				t.Errorf("on %s after migration %d = %+v, %v; want running", cl.Other, vmid, st, err)
			}
			back, err := cl.Operator.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			upid, err = back.Migrate(s.ctx, proxmox.LXC, vmid, proxmox.MigrateOptions{Target: s.node, Restart: true})
			s.mustDone(t, "Migrate back", upid, err)
		},
	},
	{
		name: "ha-managed",
		rule: "stopping and starting an HA-managed guest answers hastop and hastart tasks that only ask the HA stack; the state change follows later",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.HAGuest == 0 {
				t.Skip("World.Cluster.HAGuest is 0")
			}
			loc, found, err := s.c.LocateGuest(s.ctx, cl.HAGuest)
			if err != nil || !found {
				t.Fatalf("LocateGuest(%d) = %v %v", cl.HAGuest, found, err)
			}
			c, err := s.c.OnNode(loc.Node)
			if err != nil {
				t.Fatal(err)
			}
			status := func(want string) func() (bool, string) {
				return func() (bool, string) {
					st, err := c.GuestStatus(s.ctx, proxmox.LXC, cl.HAGuest)
					if err != nil {
						return false, err.Error()
					}
					return st.Status == want, st.Status
				}
			}
			for _, step := range []struct {
				typ, want string
				call      func() (proxmox.UPID, error)
			}{
				{"hastop", "stopped", func() (proxmox.UPID, error) { return c.Stop(s.ctx, proxmox.LXC, cl.HAGuest) }},
				{"hastart", "running", func() (proxmox.UPID, error) { return c.Start(s.ctx, proxmox.LXC, cl.HAGuest) }},
			} {
				upid, err := step.call()
				if err == nil && upid.Type != step.typ {
					t.Errorf("UPID type %q; want %s", upid.Type, step.typ)
				}
				s.mustDone(t, step.typ, upid, err)
				s.eventually(t, step.typ, status(step.want))
			}
		},
	},
	{
		name: "node-down",
		rule: "a request for a node that is down fails as pveproxy's proxy fails: 595, no body; the cluster status shows it offline",
		run: func(t *testing.T, s *suite) {
			cl := s.cluster(t)
			if cl.NodeDown == nil {
				t.Skip("World.Cluster.NodeDown is nil")
			}
			cl.NodeDown(t, cl.Other)
			other, err := s.c.OnNode(cl.Other)
			if err != nil {
				t.Fatal(err)
			}
			// The client rides out 595s for its read retry budget; ending
			// the context at the first answer returns that answer, however
			// long the request took (a deadline did not, on a loaded
			// machine, when it fell inside a retry's request).
			ctx, cancel := context.WithCancel(s.ctx)
			defer cancel()
			_, err = other.NodeStatus(proxmox.WithObserver(ctx, firstAnswer{cancel}))
			if !proxmox.IsNodeUnreachable(err) {
				t.Errorf("NodeStatus of %s while down = %v; want 595", cl.Other, err)
			}
			st, err := s.c.ClusterStatus(s.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(st.Offline(), cl.Other) {
				t.Errorf("ClusterStatus offline = %v; want %s", st.Offline(), cl.Other)
			}
		},
	},
}
