package proxmox_test

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestReads decodes every read against real (or realistic) fixture shapes:
// numbers as strings, vmid as a string (PVE < 8.1), loadavg as strings,
// booleans as 0/1, unix times, the snapshot list's "current" entry.
func TestReads(t *testing.T) {
	tests := []struct {
		name      string
		route     string // METHOD /path the read must send
		fixture   string
		call      func(context.Context, *proxmox.Client) (any, error)
		wantQuery url.Values
		check     func(t *testing.T, got any)
	}{
		{
			name: "version", route: "GET /version", fixture: "responses/version.pve7x_2.json",
			call:  func(ctx context.Context, c *proxmox.Client) (any, error) { return c.Version(ctx) },
			check: want(proxmox.Version{Version: "7.7-7", Release: "7.7", RepoID: "777777"}),
		},
		{
			name: "nodes", route: "GET /nodes", fixture: "responses/nodes.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.Nodes(ctx) },
			check: func(t *testing.T, got any) {
				nodes := got.([]proxmox.Node)
				if len(nodes) != 4 {
					t.Fatalf("got %d nodes, want 4", len(nodes))
				}
				want(proxmox.Node{
					Node: "node1", Status: "online", CPU: 0.00348605577689243, MaxCPU: 12,
					Mem: 11508809728, MaxMem: 33568288768, Disk: 2310930432, MaxDisk: 940743983104, Uptime: 2236708,
				})(t, nodes[0])
			},
		},
		{
			name: "node status pve7", route: "GET /nodes/node1/status", fixture: "responses/nodes_node_status.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.NodeStatus(ctx) },
			check: want(proxmox.NodeStatus{
				CPU: 0.00260552371026576, CPUs: 8, LoadAvg: [3]float64{0, 0, 0},
				Memory: proxmox.Usage{Total: 65919459328, Used: 8095399936, Free: 57824059392},
				RootFS: proxmox.Usage{Total: 948338819072, Used: 10487595008, Free: 937851224064},
				Uptime: 2501631, Kernel: "Linux 5.15.108-1-pve #1 SMP PVE 5.15.108-2 (2023-07-20T10:06Z)",
				PVEVersion: "pve-manager/7.4-16/0f39f621",
			}),
		},
		{
			name: "node status loadavg strings", route: "GET /nodes/node1/status", fixture: "responses/nodes_node_status.pve9x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.NodeStatus(ctx) },
			check: func(t *testing.T, got any) {
				s := got.(proxmox.NodeStatus)
				if s.LoadAvg != [3]float64{0.15, 0.25, 0.30} || s.CPUs != 8 || s.Memory.Percent() != 25 {
					t.Errorf("got loadavg %v, cpus %d, memory %.1f%%; want [0.15 0.25 0.3], 8, 25%%", s.LoadAvg, s.CPUs, s.Memory.Percent())
				}
			},
		},
		{
			name: "cluster resources", route: "GET /cluster/resources", fixture: "responses/cluster_resources.pve7x_2.json",
			call:      func(ctx context.Context, c *proxmox.Client) (any, error) { return c.ClusterResources(ctx, "vm") },
			wantQuery: url.Values{"type": {"vm"}},
			check: func(t *testing.T, got any) {
				rs := got.([]proxmox.Resource)
				if len(rs) != 20 {
					t.Fatalf("got %d resources, want 20", len(rs))
				}
				want(proxmox.Resource{
					ID: "qemu/101", Type: "qemu", Node: "node1", Name: "leap154", Status: "stopped",
					VMID: 101, MaxCPU: 4, MaxMem: 16777216000, MaxDisk: 68719476736, Template: true,
				})(t, rs[1])
				var st proxmox.Resource
				for _, r := range rs {
					if r.Type == "storage" {
						st = r
						break
					}
				}
				want(proxmox.Resource{
					ID: "storage/node3/local-zfs", Type: "storage", Node: "node3", Status: "available",
					Storage: "local-zfs", Disk: 98304, MaxDisk: 479730032640,
				})(t, st)
			},
		},
		{
			name: "guests with string vmids", route: "GET /nodes/node1/lxc", fixture: "responses/lxc_list.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestsOf(ctx, proxmox.LXC) },
			check: func(t *testing.T, got any) {
				gs := got.([]proxmox.Guest)
				if len(gs) != 3 {
					t.Fatalf("got %d guests, want 3", len(gs))
				}
				want(proxmox.Guest{
					Type: proxmox.LXC, VMID: 106, Name: "test", Status: "running", CPUs: 1, Mem: 34304000, MaxMem: 536870912,
					Disk: 640397312, MaxDisk: 8350298112, Uptime: 919760,
				})(t, gs[0])
				if gs[2].VMID != 101 || !gs[2].Template {
					t.Errorf("third guest: vmid %d template %v, want 101 true", gs[2].VMID, gs[2].Template)
				}
			},
		},
		{
			name: "guests with int vmids", route: "GET /nodes/node1/lxc", fixture: "responses/lxc_list.pve9x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestsOf(ctx, proxmox.LXC) },
			check: func(t *testing.T, got any) {
				gs := got.([]proxmox.Guest)
				var ids []int
				for _, g := range gs {
					ids = append(ids, g.VMID)
				}
				want([]int{100, 101, 102})(t, ids)
				if gs[0].Tags != "prod;web" {
					t.Errorf("tags %q, want prod;web", gs[0].Tags)
				}
			},
		},
		{
			name: "guest status", route: "GET /nodes/node1/lxc/101/status/current", fixture: "responses/lxc_status_current.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestStatus(ctx, proxmox.LXC, 101) },
			check: want(proxmox.GuestStatus{
				Type: proxmox.LXC, VMID: 101, Name: "test-container", Status: "stopped", Template: true, CPUs: 2,
				MaxMem: 536870912, MaxDisk: 8589934592, MaxSwap: 536870912,
			}),
		},
		{
			name: "guest status vmid from path", route: "GET /nodes/node1/lxc/250/status/current", fixture: "responses/lxc_status_current.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestStatus(ctx, proxmox.LXC, 250) },
			check: func(t *testing.T, got any) {
				if id := got.(proxmox.GuestStatus).VMID; id != 250 {
					t.Errorf("VMID = %d; want 250 (the path's)", id)
				}
			},
		},
		{
			name: "guest config pve7", route: "GET /nodes/node1/lxc/101/config", fixture: "responses/lxc_config_get.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestConfig(ctx, proxmox.LXC, 101) },
			check: func(t *testing.T, got any) {
				gc := got.(proxmox.GuestConfig)
				if gc.Hostname != "test-container" || gc.Cores != 2 || gc.Memory != 4096 || gc.Swap != 512 || !gc.OnBoot || gc.OSType != "debian" {
					t.Errorf("typed fields = %+v", gc)
				}
				want(proxmox.MountPoint{
					Volume: "vmstore:subvol-101-disk-0", Path: "/", Size: "30G",
					Options: map[string]string{"volume": "vmstore:subvol-101-disk-0", "size": "30G"},
				})(t, gc.RootFS)
				want(proxmox.MountPoint{
					Volume: "/mnt/foo/bar", Path: "/storage",
					Options: map[string]string{"volume": "/mnt/foo/bar", "mp": "/storage"},
				})(t, gc.MountPoints["mp0"])
				n := gc.Nets["net0"]
				if n.Name != "eth0" || n.Bridge != "vmbr0" || !n.Firewall || n.HWAddr != "5D:CF:BD:B2:C5:39" || n.IP != "dhcp" || n.Options["type"] != "veth" {
					t.Errorf("net0 = %+v", n)
				}
				if len(gc.Raw) != 14 || gc.Raw["onboot"] != "1" || !strings.HasPrefix(gc.Raw["lxc"], `[["lxc.cgroup2.devices.allow","c 226:0 rwm"]`) {
					t.Errorf("Raw has %d keys, onboot %q, lxc %q", len(gc.Raw), gc.Raw["onboot"], gc.Raw["lxc"])
				}
			},
		},
		{
			name: "guest config wide indexes", route: "GET /nodes/node1/lxc/102/config", fixture: "responses/lxc_config_get.pve9x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestConfig(ctx, proxmox.LXC, 102) },
			check: func(t *testing.T, got any) {
				gc := got.(proxmox.GuestConfig)
				if len(gc.MountPoints) != 3 || gc.MountPoints["mp255"].Path != "/last" || len(gc.Nets) != 2 || gc.Nets["net20"].Bridge != "vmbr20" {
					t.Errorf("mount points %v, nets %v", gc.MountPoints, gc.Nets)
				}
				if gc.Raw["dev15"] != "/dev/sdb15" || gc.Raw["unused100"] == "" {
					t.Errorf("Raw lost keys: %v", gc.Raw)
				}
			},
		},
		{
			name: "guest config full", route: "GET /nodes/node1/lxc/101/config", fixture: "custom/lxc_config.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.GuestConfig(ctx, proxmox.LXC, 101) },
			check: func(t *testing.T, got any) {
				gc := got.(proxmox.GuestConfig)
				if gc.Description != "Web front end\nmanaged by felhom\n" || gc.Lock != "backup" || !gc.Unprivileged || gc.Template {
					t.Errorf("description %q lock %q unprivileged %v template %v", gc.Description, gc.Lock, gc.Unprivileged, gc.Template)
				}
				n := gc.Nets["net0"]
				if n.Tag != 20 || n.Gateway != "192.168.1.1" || n.IP != "192.168.1.50/24" || n.IP6 != "auto" {
					t.Errorf("net0 = %+v", n)
				}
				if mp := gc.MountPoints["mp0"]; mp.Path != "/srv/data" || mp.Size != "32G" || mp.Options["backup"] != "1" {
					t.Errorf("mp0 = %+v", mp)
				}
			},
		},
		{
			name: "storage configuration", route: "GET /storage", fixture: "responses/storage_list.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.Storages(ctx) },
			check: func(t *testing.T, got any) {
				ss := got.([]proxmox.Storage)
				if len(ss) != 3 {
					t.Fatalf("got %d storages, want 3", len(ss))
				}
				want(proxmox.Storage{Storage: "local", Type: "dir", Content: []string{"vztmpl", "iso", "backup"}, Path: "/var/lib/vz", Enabled: true})(t, ss[0])
				if !ss[2].Shared {
					t.Errorf("nfs-storage: Shared = false, want true")
				}
			},
		},
		{
			name: "node storages", route: "GET /nodes/node1/storage", fixture: "responses/node_storage_list.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.NodeStorages(ctx) },
			check: func(t *testing.T, got any) {
				ss := got.([]proxmox.Storage)
				want(proxmox.Storage{
					Storage: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"},
					Enabled: true, Active: true, Total: 120000000000, Used: 20000000000, Avail: 100000000000,
				})(t, ss[1])
			},
		},
		{
			name: "storage content", route: "GET /nodes/node1/storage/local/content", fixture: "responses/storage_content_list.pve7x_2.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) {
				return c.StorageContent(ctx, "local", "backup", 100)
			},
			wantQuery: url.Values{"content": {"backup"}, "vmid": {"100"}},
			check: func(t *testing.T, got any) {
				vs := got.([]proxmox.Volume)
				want(proxmox.Volume{
					VolID: "local:backup/vzdump-qemu-100-2023_08_28-12_00_00.vma.zst", Content: "backup",
					Format: "vma.zst", Size: 2147483648, CTime: time.Unix(1693252800, 0).UTC(),
				})(t, vs[2])
			},
		},
		{
			name: "storage content unfiltered", route: "GET /nodes/node1/storage/local/content", fixture: "responses/storage_content_list.pve9x_2.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) {
				return c.StorageContent(ctx, "local", "", 0)
			},
			wantQuery: url.Values{},
			check: func(t *testing.T, got any) {
				if vs := got.([]proxmox.Volume); len(vs) != 3 || vs[2].VMID != 100 {
					t.Errorf("got %+v", vs)
				}
			},
		},
		{
			name: "snapshots without current", route: "GET /nodes/node1/lxc/101/snapshot", fixture: "responses/lxc_snapshot_list.pve7x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.Snapshots(ctx, proxmox.LXC, 101) },
			check: want([]proxmox.Snapshot{
				{Name: "snapshot1", Description: "description1", SnapTime: time.Unix(1709753281, 0).UTC()},
				{Name: "snapshot2", Description: "description2", Parent: "parent1", SnapTime: time.Unix(1709753290, 0).UTC()},
			}),
		},
		{
			name: "next id as string", route: "GET /cluster/nextid", fixture: "responses/cluster_nextid.pve7x.json",
			call:  func(ctx context.Context, c *proxmox.Client) (any, error) { return c.NextID(ctx) },
			check: want(100),
		},
		{
			name: "disks", route: "GET /nodes/node1/disks/list", fixture: "responses/disks_list.pve9x.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.Disks(ctx) },
			check: want([]proxmox.Disk{
				{DevPath: "/dev/sda", Size: 512000000000, Model: "Samsung SSD 870 EVO", Type: "ssd", Health: "PASSED", GPT: true, Used: "LVM"},
				{DevPath: "/dev/sdb", Size: 2000000000000, Model: "Seagate ST2000DM008", Type: "hdd", Health: "PASSED"},
			}),
		},
		{
			name: "smart empty", route: "GET /nodes/node1/disks/smart", fixture: "responses/disks_smart.pve9x.json",
			call:      func(ctx context.Context, c *proxmox.Client) (any, error) { return c.DiskSMART(ctx, "/dev/sda") },
			wantQuery: url.Values{"disk": {"/dev/sda"}},
			check:     want(proxmox.SMARTData{Health: "PASSED", Type: "ata"}),
		},
		{
			name: "smart attributes", route: "GET /nodes/node1/disks/smart", fixture: "custom/disks_smart_ata.json",
			call: func(ctx context.Context, c *proxmox.Client) (any, error) { return c.DiskSMART(ctx, "/dev/sdb") },
			check: func(t *testing.T, got any) {
				d := got.(proxmox.SMARTData)
				if len(d.Attributes) != 4 {
					t.Fatalf("got %d attributes, want 4", len(d.Attributes))
				}
				want(proxmox.SMARTAttribute{ID: 194, Name: "Temperature_Celsius", Value: 64, Worst: 45, Raw: "36 (Min/Max 20/55)", Flags: "-O---K", Fail: "-"})(t, d.Attributes[2])
				want(proxmox.SMARTAttribute{ID: 199, Name: "UDMA_CRC_Error_Count", Value: 200, Worst: 200, Raw: "0", Flags: "-O--CK", Fail: "-"})(t, d.Attributes[3])
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).fixture(tt.route, tt.fixture)
			c := fakeClient(t, f)
			got, err := tt.call(t.Context(), c)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			tt.check(t, got)
			if f.count(tt.route) != 1 {
				t.Errorf("sent %v; want one %s", f.Calls(), tt.route)
			}
			if tt.wantQuery != nil && !reflect.DeepEqual(f.last().Query, tt.wantQuery) {
				t.Errorf("query = %v; want %v", f.last().Query, tt.wantQuery)
			}
		})
	}
}

// want returns a check that got deep-equals w.
func want(w any) func(*testing.T, any) {
	return func(t *testing.T, got any) {
		t.Helper()
		if !reflect.DeepEqual(got, w) {
			t.Errorf("got  %+v\nwant %+v", got, w)
		}
	}
}

// TestReadInputErrors checks that bad arguments are refused before any
// request, with an error naming the parameter.
func TestReadInputErrors(t *testing.T) {
	tests := []struct {
		name  string
		call  func(context.Context, *proxmox.Client) error
		param string
	}{
		{"vmid too small", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.GuestStatus(ctx, proxmox.LXC, 99)
			return err
		}, "vmid"},
		{"vmid too big", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.GuestConfig(ctx, proxmox.LXC, 1_000_000_000)
			return err
		}, "vmid"},
		{"snapshots vmid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Snapshots(ctx, proxmox.LXC, 0)
			return err
		}, "vmid"},
		{"resource type", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.ClusterResources(ctx, "lxc")
			return err
		}, "type"},
		{"storage id", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.StorageContent(ctx, "../x", "", 0)
			return err
		}, "storage"},
		{"content vmid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.StorageContent(ctx, "local", "", 5)
			return err
		}, "vmid"},
		{"smart disk", func(ctx context.Context, c *proxmox.Client) error { _, err := c.DiskSMART(ctx, "sda"); return err }, "disk"},
		{"task source", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Tasks(ctx, proxmox.TaskFilter{Source: "recent"})
			return err
		}, "source"},
		{"task limit", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Tasks(ctx, proxmox.TaskFilter{Limit: -1})
			return err
		}, "limit"},
		{"log start", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.TaskLog(ctx, proxmox.MustParseUPID(upidVzdump), -1, 0)
			return err
		}, "start"},
		{"empty upid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.TaskStatusOnce(ctx, proxmox.UPID{})
			return err
		}, "upid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			c := fakeClient(t, f)
			err := tt.call(t.Context(), c)
			if err == nil || !strings.Contains(err.Error(), tt.param) {
				t.Errorf("error = %v; want one naming %q", err, tt.param)
			}
			if n := len(f.Calls()); n != 0 {
				t.Errorf("sent %d requests; want none", n)
			}
		})
	}
}

// TestReadDecodeErrors checks that a body of the wrong shape is an error
// naming the request, not a zero value.
func TestReadDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body string
		call       func(context.Context, *proxmox.Client) error
	}{
		{"null data", `{"data":null}`, func(ctx context.Context, c *proxmox.Client) error { _, err := c.NodeStatus(ctx); return err }},
		{"not json", `<html>oops</html>`, func(ctx context.Context, c *proxmox.Client) error { _, err := c.NodeStatus(ctx); return err }},
		{"word for number", `{"data":{"cpu":"high"}}`, func(ctx context.Context, c *proxmox.Client) error { _, err := c.NodeStatus(ctx); return err }},
		{"next id not an id", `{"data":"7"}`, func(ctx context.Context, c *proxmox.Client) error { _, err := c.NextID(ctx); return err }},
		{"bad typed config key", `{"data":{"memory":"lots","hostname":"x"}}`, func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.GuestConfig(ctx, proxmox.LXC, 101)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := serveJSON(200, tt.body)
			f := newFake(t).on("GET /nodes/node1/status", h).on("GET /cluster/nextid", h).on("GET /nodes/node1/lxc/101/config", h)
			err := tt.call(t.Context(), fakeClient(t, f))
			if err == nil || !strings.Contains(err.Error(), "GET /") {
				t.Errorf("error = %v; want a decoding error naming the request", err)
			}
		})
	}
}
