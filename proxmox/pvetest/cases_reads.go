package pvetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// readCases check the reads a flow starts from, and that their values
// arrive typed whatever shape PVE sends them in.
var readCases = []testCase{
	{
		name: "version",
		rule: "GET /version answers {version, release, repoid}; the release is the version's major.minor",
		run: func(t *testing.T, s *suite) {
			v, err := s.c.Version(s.ctx)
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if v.Version == "" || v.Release == "" || !strings.HasPrefix(v.Version, v.Release) {
				t.Errorf("Version = %+v; want version starting with its release", v)
			}
		},
	},
	{
		name: "node-version",
		rule: "GET /nodes/{node}/version (pve-manager PVE/API2/Nodes.pm \"version\", any user, proxied to the node) answers " +
			"what GET /version does; for a node the host does not have, 500 \"no such cluster node 'X'\" (pve-cluster " +
			"PVE::Cluster check_node_exists), the start-up check of `felhom-agent run`",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			v, err := s.c.NodeVersion(s.ctx)
			if err != nil {
				t.Fatalf("NodeVersion: %v", err)
			}
			if want, err := s.c.Version(s.ctx); err != nil || v != want {
				t.Errorf("NodeVersion = %+v; Version = %+v (%v): want the same", v, want, err)
			}
			s.raw(t).fails("GET", "/nodes/felhom-no-such-node/version", nil, 500, "no such cluster node 'felhom-no-such-node'")
		},
	},
	{
		name: "nodes",
		rule: "GET /nodes lists the host itself, online, with cpu as a 0..1 fraction",
		run: func(t *testing.T, s *suite) {
			nodes, err := s.c.Nodes(s.ctx)
			if err != nil {
				t.Fatalf("Nodes: %v", err)
			}
			i := slices.IndexFunc(nodes, func(n proxmox.Node) bool { return n.Node == s.node })
			if i < 0 {
				t.Fatalf("Nodes = %+v; want node %q", nodes, s.node)
			}
			if n := nodes[i]; n.Status != "online" || n.CPU < 0 || n.CPU > 1 || n.MaxCPU < 1 || n.MaxMem == 0 {
				t.Errorf("node %+v; want online, 0 <= cpu <= 1, maxcpu and maxmem set", n)
			}
		},
	},
	{
		name: "node-status",
		rule: "GET /nodes/{node}/status: cpu is a 0..1 fraction, loadavg an array of strings, memory/rootfs/swap nested {total, used, free}",
		run: func(t *testing.T, s *suite) {
			st, err := s.c.NodeStatus(s.ctx)
			if err != nil {
				t.Fatalf("NodeStatus: %v", err)
			}
			if st.CPU < 0 || st.CPU > 1 || st.CPUs < 1 || st.Uptime <= 0 || st.PVEVersion == "" {
				t.Errorf("NodeStatus = %+v; want 0 <= cpu <= 1, cpus, uptime and pveversion", st)
			}
			for _, u := range []struct {
				name string
				u    proxmox.Usage
			}{{"memory", st.Memory}, {"rootfs", st.RootFS}} {
				if u.u.Total == 0 || u.u.Used > u.u.Total {
					t.Errorf("NodeStatus %s = %+v; want total > 0 and used <= total", u.name, u.u)
				}
			}
			if st.LoadAvg == [3]float64{} {
				t.Errorf("NodeStatus loadavg = %v; want the strings PVE sends read as numbers", st.LoadAvg)
			}
		},
	},
	{
		name: "cluster-resources",
		rule: "GET /cluster/resources lists guests as type lxc with an integer vmid, and storages as type storage",
		run: func(t *testing.T, s *suite) {
			vms, err := s.c.ClusterResources(s.ctx, "vm")
			if err != nil {
				t.Fatalf("ClusterResources(vm): %v", err)
			}
			for _, want := range []struct {
				vmid   int
				status string
			}{{s.w.Running, "running"}, {s.w.Stopped, "stopped"}} {
				i := slices.IndexFunc(vms, func(r proxmox.Resource) bool { return r.VMID == want.vmid })
				if i < 0 {
					t.Errorf("ClusterResources(vm) lacks guest %d", want.vmid)
					continue
				}
				if r := vms[i]; r.Type != "lxc" || r.Status != want.status || r.Node != s.node || r.ID != "lxc/"+itoa(want.vmid) {
					t.Errorf("resource %+v; want type lxc, id lxc/%d, status %s on %s", r, want.vmid, want.status, s.node)
				}
			}
			stores, err := s.c.ClusterResources(s.ctx, "storage")
			if err != nil {
				t.Fatalf("ClusterResources(storage): %v", err)
			}
			if !slices.ContainsFunc(stores, func(r proxmox.Resource) bool {
				return r.Type == "storage" && r.Storage == s.w.BackupStorage
			}) {
				t.Errorf("ClusterResources(storage) lacks %s: %+v", s.w.BackupStorage, stores)
			}
			s.noRequest(t, "ClusterResources(qemu)", "type", func(ctx context.Context) error {
				_, err := s.c.ClusterResources(ctx, "qemu")
				return err
			})
		},
	},
	{
		name: "guests",
		rule: "GET /nodes/{node}/lxc lists every container with an integer vmid (a string before PVE 8.1) and its status",
		run: func(t *testing.T, s *suite) {
			gs, err := s.c.Guests(s.ctx)
			if err != nil {
				t.Fatalf("Guests: %v", err)
			}
			for _, want := range []struct {
				vmid   int
				status string
			}{{s.w.Running, "running"}, {s.w.Stopped, "stopped"}} {
				i := slices.IndexFunc(gs, func(g proxmox.Guest) bool { return g.VMID == want.vmid })
				if i < 0 {
					t.Errorf("Guests lacks %d: %+v", want.vmid, gs)
					continue
				}
				if g := gs[i]; g.Status != want.status || g.Name == "" || g.MaxMem == 0 {
					t.Errorf("guest %+v; want status %s, a name and maxmem", g, want.status)
				}
			}
		},
	},
	{
		name: "guest-status",
		rule: "GET .../lxc/{vmid}/status/current: status running with uptime, or stopped with none",
		run: func(t *testing.T, s *suite) {
			st, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Running)
			if err != nil {
				t.Fatalf("GuestStatus(%d): %v", s.w.Running, err)
			}
			if st.VMID != s.w.Running || st.Status != "running" || st.Uptime <= 0 || st.MaxMem == 0 {
				t.Errorf("GuestStatus(%d) = %+v; want running with uptime and maxmem", s.w.Running, st)
			}
			st, err = s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("GuestStatus(%d): %v", s.w.Stopped, err)
			}
			if st.Status != "stopped" || st.Uptime != 0 {
				t.Errorf("GuestStatus(%d) = %+v; want stopped, uptime 0", s.w.Stopped, st)
			}
		},
	},
	{
		name: "guest-config",
		rule: "GET .../lxc/{vmid}/config: every key of the config file, typed by the schema, with a digest; rootfs is VOLUME,size=N",
		run: func(t *testing.T, s *suite) {
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			if gc.Hostname == "" || gc.Digest == "" || gc.Memory <= 0 || gc.RootFS.Volume == "" || gc.RootFS.Size == "" || gc.RootFS.Path != "/" {
				t.Errorf("GuestConfig(%d) = %+v; want hostname, digest, memory and a parsed rootfs", s.w.Stopped, gc)
			}
			if gc.Raw["hostname"] != gc.Hostname {
				t.Errorf("GuestConfig Raw[hostname] = %q; want %q", gc.Raw["hostname"], gc.Hostname)
			}
		},
	},
	{
		name: "storages",
		rule: "GET /storage is the configuration (type, content, prune-backups); GET /nodes/{node}/storage adds usage and active/enabled",
		run: func(t *testing.T, s *suite) {
			conf, err := s.c.Storages(s.ctx)
			if err != nil {
				t.Fatalf("Storages: %v", err)
			}
			i := slices.IndexFunc(conf, func(st proxmox.Storage) bool { return st.Storage == s.w.BackupStorage })
			if i < 0 || conf[i].Type == "" || !conf[i].Enabled {
				t.Errorf("Storages = %+v; want %s with a type, enabled", conf, s.w.BackupStorage)
			}
			node, err := s.c.NodeStorages(s.ctx)
			if err != nil {
				t.Fatalf("NodeStorages: %v", err)
			}
			i = slices.IndexFunc(node, func(st proxmox.Storage) bool { return st.Storage == s.w.BackupStorage })
			if i < 0 {
				t.Fatalf("NodeStorages = %+v; want %s", node, s.w.BackupStorage)
			}
			if st := node[i]; !st.Active || !st.Enabled || st.Total == 0 || st.Used > st.Total || !slices.Contains(st.Content, "backup") {
				t.Errorf("NodeStorages %+v; want active, enabled, total > 0, content backup", st)
			}
			s.noRequest(t, "StorageContent(bad id)", "storage", func(ctx context.Context) error {
				_, err := s.c.StorageContent(ctx, "../etc", "", 0)
				return err
			})
		},
	},
	{
		name: "nextid",
		rule: "GET /cluster/nextid returns the next free id as a JSON string (the schema says integer)",
		run: func(t *testing.T, s *suite) {
			id, err := s.c.NextID(s.ctx)
			if err != nil {
				t.Fatalf("NextID: %v", err)
			}
			if id < 100 {
				t.Fatalf("NextID = %d; want >= 100", id)
			}
			if _, err := s.c.GuestStatus(s.ctx, proxmox.LXC, id); !proxmox.IsNotFound(err) {
				t.Errorf("NextID = %d, but GuestStatus(%d) = %v; want the id free", id, id, err)
			}
		},
	},
	{
		name: "disks",
		rule: "GET /nodes/{node}/disks/list lists block devices; disks/smart answers health, and dies \"not a valid block device\" for anything else",
		run: func(t *testing.T, s *suite) {
			disks, err := s.c.Disks(s.ctx)
			if err != nil {
				t.Fatalf("Disks: %v", err)
			}
			if len(disks) == 0 {
				t.Fatal("Disks = []; want the host's disks")
			}
			d := disks[0]
			if !strings.HasPrefix(d.DevPath, "/dev/") || d.Size == 0 {
				t.Errorf("disk %+v; want a /dev path and a size", d)
			}
			smart, err := s.c.DiskSMART(s.ctx, d.DevPath)
			if err != nil {
				t.Fatalf("DiskSMART(%s): %v", d.DevPath, err)
			}
			if smart.Health == "" {
				t.Errorf("DiskSMART(%s) = %+v; want a health", d.DevPath, smart)
			}
			_, err = s.c.DiskSMART(s.ctx, "/dev/felhomconfnosuchdisk")
			wantAPIError(t, "DiskSMART(missing disk)", err, 500, "not a valid block device")
			s.noRequest(t, "DiskSMART(not a device)", "disk", func(ctx context.Context) error {
				_, err := s.c.DiskSMART(ctx, "sda; reboot")
				return err
			})
		},
	},
}
