package pvesim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	h := newHarness(t)
	got := h.ok("GET", "/version", nil).object()
	if got["version"] != "8.2.4" || got["release"] != "8.2" || got["repoid"] == "" {
		t.Errorf("GET /version = %v; want version 8.2.4, release 8.2, a repoid", got)
	}
}

func TestNodes(t *testing.T) {
	h := newHarness(t)
	nodes := h.ok("GET", "/nodes", nil).list()
	if len(nodes) != 1 {
		t.Fatalf("GET /nodes = %v; want one node", nodes)
	}
	n := nodes[0]
	if n["node"] != DefaultNode || n["status"] != "online" || n["ssl_fingerprint"] != h.srv.Fingerprint {
		t.Errorf("node = %v; want %s online with the served fingerprint %s", n, DefaultNode, h.srv.Fingerprint)
	}
}

func TestNodeStatusShape(t *testing.T) {
	h := newHarness(t)
	st := h.ok("GET", nodePath+"/status", nil).object()
	cpu, _ := st["cpu"].(float64)
	if cpu <= 0 || cpu >= 1 {
		t.Errorf("cpu = %v; want a 0..1 fraction", st["cpu"])
	}
	load, _ := st["loadavg"].([]any)
	if len(load) != 3 {
		t.Fatalf("loadavg = %v; want three", st["loadavg"])
	}
	for _, l := range load {
		if _, isString := l.(string); !isString {
			t.Errorf("loadavg item %v (%T); PVE sends strings", l, l)
		}
	}
	for _, k := range []string{"memory", "rootfs", "swap"} {
		u, _ := st[k].(map[string]any)
		total, used, free := u["total"].(float64), u["used"].(float64), u["free"].(float64)
		if total == 0 || used+free != total {
			t.Errorf("%s = %v; want total = used + free", k, u)
		}
	}
	if pv, _ := st["pveversion"].(string); !strings.HasPrefix(pv, "pve-manager/8.2.4/") {
		t.Errorf("pveversion = %q; want pve-manager/8.2.4/...", pv)
	}
	info, _ := st["cpuinfo"].(map[string]any)
	if info["cpus"] != float64(cpuCores) {
		t.Errorf("cpuinfo.cpus = %v; want %d", info["cpus"], cpuCores)
	}
	if up, _ := st["uptime"].(float64); up < 86400 {
		t.Errorf("uptime = %v; want days", st["uptime"])
	}
}

func TestNodeUsageKnob(t *testing.T) {
	h := newHarness(t)
	u := h.sim.NodeUsage()
	u.CPU, u.MemoryUsed, u.LoadAvg = 0.95, u.MemoryTotal-1, [3]float64{7.5, 6, 5.25}
	if err := h.sim.SetNodeUsage(u); err != nil {
		t.Fatal(err)
	}
	st := h.ok("GET", nodePath+"/status", nil).object()
	if st["cpu"] != 0.95 || st["loadavg"].([]any)[0] != "7.50" {
		t.Errorf("status after SetNodeUsage = cpu %v load %v; want 0.95, 7.50", st["cpu"], st["loadavg"])
	}
	if err := h.sim.SetNodeUsage(NodeUsage{CPU: 2}); err == nil {
		t.Error("SetNodeUsage(CPU 2) = nil; want an error")
	}
}

func TestNoSuchClusterNode(t *testing.T) {
	h := newHarness(t)
	h.fails("GET", "/nodes/pve1/status", nil, 500, "no such cluster node 'pve1'")
	h.fails("GET", "/nodes/pve1/lxc", nil, 500, "no such cluster node 'pve1'")
}

func TestClusterResources(t *testing.T) {
	h := newHarness(t)
	count := func(items []map[string]any) map[string]int {
		m := map[string]int{}
		for _, it := range items {
			m[it["type"].(string)]++
		}
		return m
	}
	tests := []struct {
		typ  string
		want map[string]int
	}{
		{"", map[string]int{"lxc": 4, "qemu": 2, "node": 1, "storage": 4, "sdn": 1}},
		{"vm", map[string]int{"lxc": 4, "qemu": 2}},
		{"storage", map[string]int{"storage": 4}},
		{"node", map[string]int{"node": 1}},
	}
	for _, tc := range tests {
		var r *result
		if tc.typ == "" {
			r = h.ok("GET", "/cluster/resources", nil)
		} else {
			r = h.ok("GET", "/cluster/resources", vals("type", tc.typ))
		}
		got := count(r.list())
		if len(got) != len(tc.want) {
			t.Errorf("type=%q: %v; want %v", tc.typ, got, tc.want)
		}
		for k, n := range tc.want {
			if got[k] != n {
				t.Errorf("type=%q: %d %s; want %d", tc.typ, got[k], k, n)
			}
		}
	}
	for _, it := range h.ok("GET", "/cluster/resources", vals("type", "vm")).list() {
		if it["vmid"] == float64(GoldenVMID) && it["template"] != float64(1) {
			t.Errorf("golden resource %v; want template 1", it)
		}
		if it["id"] != fmt.Sprintf("%s/%d", it["type"], int(it["vmid"].(float64))) {
			t.Errorf("resource id %v does not match vmid %v", it["id"], it["vmid"])
		}
	}
	h.fails("GET", "/cluster/resources", vals("type", "qemu"), 400, "Parameter verification failed.")
}

func TestNextID(t *testing.T) {
	h := newHarness(t)
	r := h.ok("GET", "/cluster/nextid", nil)
	if got, isString := r.data().(string); !isString || got != "100" {
		t.Errorf("nextid = %#v (%s); want the string \"100\"", r.data(), r.raw)
	}
	r = h.ok("GET", "/cluster/nextid", vals("vmid", "500"))
	if r.str() != "500" {
		t.Errorf("nextid?vmid=500 = %s; want \"500\"", r.raw)
	}
	r = h.fails("GET", "/cluster/nextid", vals("vmid", "101"), 400, "Parameter verification failed.")
	if got := r.errors()["vmid"]; got != "VM 101 already exists" {
		t.Errorf("errors.vmid = %q; want %q", got, "VM 101 already exists")
	}
	if err := h.sim.AddGuest(GuestSpec{VMID: 100}); err != nil {
		t.Fatal(err)
	}
	if got := h.ok("GET", "/cluster/nextid", nil).str(); got != "103" {
		t.Errorf("nextid with 100-102 taken = %q; want 103", got)
	}
}

func TestDisks(t *testing.T) {
	h := newHarness(t)
	disks := h.ok("GET", nodePath+"/disks/list", nil).list()
	if len(disks) != 2 || disks[0]["devpath"] != "/dev/sda" || disks[1]["devpath"] != "/dev/sdb" {
		t.Fatalf("disks = %v; want /dev/sda and /dev/sdb", disks)
	}
	if disks[0]["type"] != "ssd" || disks[1]["type"] != "usb" || disks[0]["health"] != "PASSED" {
		t.Errorf("disks = %v; want an ssd and a usb disk, healthy", disks)
	}
	withParts := h.ok("GET", nodePath+"/disks/list", vals("include-partitions", "1")).list()
	if len(withParts) != 3 || withParts[2]["devpath"] != "/dev/sdb1" || withParts[2]["mounted"] != float64(1) {
		t.Errorf("with partitions = %v; want /dev/sdb1 mounted", withParts)
	}

	smart := h.ok("GET", nodePath+"/disks/smart", vals("disk", "/dev/sda")).object()
	if smart["health"] != "PASSED" || smart["type"] != "ata" {
		t.Errorf("smart = %v; want PASSED ata", smart)
	}
	var realloc map[string]any
	for _, a := range smart["attributes"].([]any) {
		if m := a.(map[string]any); m["name"] == "Reallocated_Sector_Ct" {
			realloc = m
		}
	}
	if realloc == nil || realloc["id"] != "  5" || realloc["raw"] != "0" {
		t.Errorf("attribute 5 = %v; want id \"  5\" (PVE keeps smartctl's padding), raw \"0\"", realloc)
	}

	if err := h.sim.SetDiskHealth("/dev/sdb", false, 120); err != nil {
		t.Fatal(err)
	}
	smart = h.ok("GET", nodePath+"/disks/smart", vals("disk", "/dev/sdb")).object()
	if smart["health"] != "FAILED" {
		t.Errorf("smart after SetDiskHealth = %v; want FAILED", smart["health"])
	}
	if got := h.ok("GET", nodePath+"/disks/list", nil).list()[1]["health"]; got != "FAILED" {
		t.Errorf("disks/list health = %v; want FAILED", got)
	}
	h.fails("GET", nodePath+"/disks/smart", vals("disk", "/dev/sdz"), 500, "not a valid block device")
	r := h.fails("GET", nodePath+"/disks/smart", vals("disk", "sda"), 400, "Parameter verification failed.")
	if r.errors()["disk"] != "value does not match the regex pattern" {
		t.Errorf("errors = %v; want the disk pattern error", r.errors())
	}
	if err := h.sim.SetDiskHealth("/dev/nope", true, 0); err == nil {
		t.Error("SetDiskHealth(/dev/nope) = nil; want an error")
	}
}

func TestUnmodelled(t *testing.T) {
	clock := &fakeClock{t: testStart}
	var seen []string
	sim := &Sim{Now: clock.Now, OnUnmodeled: func(r *http.Request) { seen = append(seen, r.Method+" "+r.URL.Path) }}
	srv, err := sim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := &harness{t: t, sim: sim, srv: srv, clock: clock, hc: srv.Client(), token: srv.Token}
	r := h.do("GET", "/nodes/demo-felhom/qemu/100/rrddata", nil)
	if r.status != 501 || r.reason != "Method 'GET /nodes/demo-felhom/qemu/100/rrddata' not implemented" {
		t.Errorf("unmodelled = %d %q; want PVE's 501", r.status, r.reason)
	}
	if r.message() != "Method 'GET /nodes/demo-felhom/qemu/100/rrddata' not implemented" {
		t.Errorf("message = %q", r.message())
	}
	h.do("PATCH", "/version", nil)
	if len(seen) != 2 {
		t.Errorf("OnUnmodeled saw %v; want both requests", seen)
	}
}
