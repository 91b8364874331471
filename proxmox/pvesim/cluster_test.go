package pvesim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func newCluster(t *testing.T) *harness {
	t.Helper()
	h := newHarnessWith(t, func(s *Sim) { s.Nodes = 3 })
	h.token = OperatorTokenID + "=" + OperatorTokenSecret
	return h
}

func byID(list []map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, m := range list {
		out[fmt.Sprint(m["id"])] = m
	}
	return out
}

func TestDefaultWorldIsOneNodeInNoCluster(t *testing.T) {
	h := newHarness(t)
	list := h.ok("GET", "/cluster/status", nil).list()
	if len(list) != 1 || list[0]["type"] != "node" || list[0]["name"] != DefaultNode || list[0]["nodeid"] != 0.0 || list[0]["local"] != 1.0 {
		t.Fatalf("cluster/status = %v; want the one fake entry for %s", list, DefaultNode)
	}
	nodes := h.ok("GET", "/nodes", nil).list()
	if len(nodes) != 1 || nodes[0]["node"] != DefaultNode {
		t.Fatalf("nodes = %v", nodes)
	}
	h.fails("GET", "/nodes/pve2/status", nil, 500, "no such cluster node 'pve2'")
}

func TestClusterStatus(t *testing.T) {
	h := newCluster(t)
	list := h.ok("GET", "/cluster/status", nil).list()
	if len(list) != 4 {
		t.Fatalf("cluster/status has %d entries; want the cluster and 3 nodes: %v", len(list), list)
	}
	c := list[0]
	if c["type"] != "cluster" || c["name"] != ClusterName || c["quorate"] != 1.0 || c["nodes"] != 3.0 {
		t.Fatalf("cluster entry = %v", c)
	}
	for i, m := range list[1:] {
		want := ClusterNodeName(i + 1)
		if m["name"] != want || m["nodeid"] != float64(i+1) || m["online"] != 1.0 || m["ip"] == "" {
			t.Errorf("node entry %d = %v; want %s online", i, m, want)
		}
		if local := m["local"] == 1.0; local != (i == 0) {
			t.Errorf("node %s local = %v; only the node answering (pve1) is local", want, m["local"])
		}
	}
	// The same world served as pve2: pve2 is local.
	srv := httptest.NewTLSServer(h.sim.NodeHandler("pve2"))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api2/json/cluster/status", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+h.token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"id":"node/pve2","ip":"10.10.10.12","level":"","local":1`) {
		t.Errorf("cluster/status as pve2 = %s; want pve2 local", body)
	}
}

func TestClusterResourcesAndGuestsPerNode(t *testing.T) {
	h := newCluster(t)
	res := byID(h.ok("GET", "/cluster/resources", nil).list())
	for id, node := range map[string]string{
		"lxc/101": "pve1", "qemu/200": "pve1", "lxc/110": "pve2", "qemu/210": "pve2", "lxc/120": "pve3", "lxc/121": "pve3",
	} {
		if res[id] == nil || res[id]["node"] != node {
			t.Errorf("resource %s = %v; want on %s", id, res[id], node)
		}
	}
	if res["lxc/120"]["hastate"] != "started" {
		t.Errorf("HA guest 120 hastate = %v; want started", res["lxc/120"]["hastate"])
	}
	for _, n := range []string{"pve1", "pve2", "pve3"} {
		if res["node/"+n]["status"] != "online" {
			t.Errorf("node %s = %v", n, res["node/"+n])
		}
		if s := res["storage/"+n+"/"+SharedBackupStorage]; s == nil || s["shared"] != 1.0 {
			t.Errorf("shared storage on %s = %v", n, s)
		}
		if s := res["storage/"+n+"/usb-backup"]; s == nil || s["shared"] != 0.0 {
			t.Errorf("local storage on %s = %v", n, s)
		}
	}
	// Each node lists its own guests.
	for node, want := range map[string]string{"pve1": "101,102,9000,9999", "pve2": "110", "pve3": "120,121"} {
		var got []string
		for _, g := range h.ok("GET", "/nodes/"+node+"/lxc", nil).list() {
			got = append(got, fmt.Sprint(g["vmid"]))
		}
		if strings.Join(sortedStrings(got), ",") != want {
			t.Errorf("containers on %s = %v; want %s", node, got, want)
		}
	}
	// Another node's guest is not on this node's paths.
	h.fails("GET", "/nodes/pve1/lxc/110/status/current", nil, 500, "Configuration file 'nodes/pve1/lxc/110.conf' does not exist")
	st := h.ok("GET", "/nodes/pve2/lxc/110/status/current", nil).object()
	if st["status"] != "running" {
		t.Errorf("110 on pve2 = %v", st)
	}
	ha := h.ok("GET", "/nodes/pve3/lxc/120/status/current", nil).object()["ha"].(map[string]any)
	if ha["managed"] != 1.0 || ha["state"] != "started" {
		t.Errorf("120 ha = %v; want managed, started", ha)
	}
	h.fails("GET", "/nodes/pve9/status", nil, 500, "no such cluster node 'pve9'")
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestClusterVMIDsAreUniqueClusterWide(t *testing.T) {
	h := newCluster(t)
	r := h.do("GET", "/cluster/nextid", vals("vmid", "110"))
	if r.status != 400 || r.errors()["vmid"] != "VM 110 already exists" {
		t.Fatalf("nextid vmid=110 = %d %s", r.status, r.raw)
	}
	if got := h.ok("GET", "/cluster/nextid", nil).str(); got != "100" {
		t.Errorf("nextid = %s; want 100", got)
	}
	create := vals("vmid", "110", "ostemplate", DefaultTemplate, "storage", "local-lvm")
	h.fails("POST", "/nodes/pve1/lxc", create, 500, "CT 110 already exists on node 'pve2'")
	h.fails("POST", "/nodes/pve1/lxc", vals("vmid", "210", "ostemplate", DefaultTemplate, "storage", "local-lvm"), 500, "VM 210 already exists on node 'pve2'")
	// Two creates of one id from two nodes: the second finds the first's
	// config (locked "create") and is refused naming its node.
	upid := h.upid("POST", "/nodes/pve2/lxc", vals("vmid", "130", "ostemplate", DefaultTemplate, "storage", "local-lvm"))
	if !strings.HasPrefix(upid, "UPID:pve2:") {
		t.Errorf("create on pve2 = %s; want a pve2 task", upid)
	}
	h.fails("POST", "/nodes/pve3/lxc", vals("vmid", "130", "ostemplate", DefaultTemplate, "storage", "local-lvm"), 500, "CT 130 already exists on node 'pve2'")
	h.wantExit(upid, "OK")
	if g := h.guest(130); g.Node != "pve2" {
		t.Errorf("130 on %s; want pve2", g.Node)
	}
}

func TestClusterStorageContentIsPerNodeUnlessShared(t *testing.T) {
	h := newCluster(t)
	// Back up 110 on pve2 to its local usb-backup and to the shared NFS.
	for _, sid := range []string{"usb-backup", SharedBackupStorage} {
		h.wantExit(h.upid("POST", "/nodes/pve2/vzdump", vals("vmid", "110", "storage", sid)), "OK")
	}
	count := func(node, sid string) int {
		n := 0
		for _, v := range h.ok("GET", "/nodes/"+node+"/storage/"+sid+"/content", vals("vmid", "110")).list() {
			if v["content"] == "backup" {
				n++
			}
		}
		return n
	}
	if count("pve2", "usb-backup") != 1 || count("pve1", "usb-backup") != 0 {
		t.Errorf("usb-backup archives of 110: pve2 %d, pve1 %d; want 1, 0 (local storage)", count("pve2", "usb-backup"), count("pve1", "usb-backup"))
	}
	for _, n := range []string{"pve1", "pve2", "pve3"} {
		if count(n, SharedBackupStorage) != 1 {
			t.Errorf("%s sees %d archives of 110 on the shared storage; want 1", n, count(n, SharedBackupStorage))
		}
	}
	// A vzdump of guests on other nodes: skipped; none local answers OK.
	if r := h.ok("POST", "/nodes/pve1/vzdump", vals("vmid", "110", "storage", "usb-backup")); r.str() != "OK" {
		t.Errorf("vzdump of another node's guest = %s; want \"OK\" and no task", r.raw)
	}
	lines := h.wantExit(h.upid("POST", "/nodes/pve1/vzdump", vals("vmid", "101,110,120", "storage", "usb-backup")), "OK")
	if !containsLine(lines, "INFO: skip external VMs: 110, 120") {
		t.Errorf("mixed vzdump log lacks the skip line:\n%s", strings.Join(lines, "\n"))
	}
}

func TestClusterMigrate(t *testing.T) {
	h := newCluster(t)
	p := "/nodes/pve1/lxc/101/migrate"
	r := h.do("POST", p, vals("target", "pve1"))
	if r.status != 400 || r.errors()["target"] != "target is local node." {
		t.Fatalf("migrate to itself = %d %s", r.status, r.raw)
	}
	h.fails("POST", p, vals("target", "pve7"), 500, "no such cluster node 'pve7'")
	h.fails("POST", p, vals("target", "pve2"), 500, "can't migrate running container without --online or --restart")
	h.fails("POST", "/nodes/pve1/qemu/200/migrate", vals("target", "pve2"), 500, "can't migrate running VM without --online")

	upid := h.upid("POST", p, vals("target", "pve2", "restart", "1"))
	if !strings.Contains(upid, ":vzmigrate:101:") {
		t.Errorf("migrate UPID = %s; want vzmigrate", upid)
	}
	if g := h.guest(101); g.Lock != "migrate" || g.Node != "pve1" {
		t.Errorf("during migration 101 = lock %q on %s; want migrate on pve1", g.Lock, g.Node)
	}
	h.fails("PUT", "/nodes/pve1/lxc/101/config", vals("description", "x"), 500, "CT is locked (migrate)")
	lines := h.wantExit(upid, "OK")
	if !containsLine(lines, "starting migration of CT 101 to node 'pve2' (10.10.10.12)") || !containsLine(lines, "migration finished successfully") {
		t.Errorf("migrate log:\n%s", strings.Join(lines, "\n"))
	}
	g := h.guest(101)
	if g.Node != "pve2" || g.Lock != "" || g.Status != "running" {
		t.Errorf("after migration 101 = %+v; want running, unlocked, on pve2", g)
	}
	h.fails("GET", "/nodes/pve1/lxc/101/status/current", nil, 500, "Configuration file 'nodes/pve1/lxc/101.conf' does not exist")
	h.ok("GET", "/nodes/pve2/lxc/101/status/current", nil)

	// A VM with local disks migrates online only with with-local-disks.
	up := h.upid("POST", "/nodes/pve1/qemu/200/migrate", vals("target", "pve3", "online", "1"))
	h.wantExit(up, "migration aborted")
	up = h.upid("POST", "/nodes/pve1/qemu/200/migrate", vals("target", "pve3", "online", "1", "with-local-disks", "1"))
	if !strings.Contains(up, ":qmigrate:200:") {
		t.Errorf("qemu migrate UPID = %s", up)
	}
	h.wantExit(up, "OK")
	if g := h.guest(200); g.Node != "pve3" || g.Status != "running" {
		t.Errorf("200 after migration = %s %s", g.Node, g.Status)
	}
	// A locked guest is refused at the request (VM) or in the worker.
	if err := h.sim.SetGuestLock(102, "backup"); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", "/nodes/pve1/lxc/102/migrate", vals("target", "pve2", "restart", "1")), "CT is locked (backup)")
}

func TestClusterHAManagedGuests(t *testing.T) {
	h := newCluster(t)
	upid := h.upid("POST", "/nodes/pve3/lxc/120/status/stop", nil)
	if !strings.Contains(upid, ":hastop:120:") {
		t.Fatalf("stop of an HA guest = %s; want a hastop task", upid)
	}
	h.clock.Advance(time.Second) // the hastop worker is done at once ...
	st := h.ok("GET", "/nodes/pve3/tasks/"+upid+"/status", nil).object()
	if st["exitstatus"] != "OK" {
		t.Fatalf("hastop = %v", st)
	}
	if !containsLine(h.log(upid), "Requesting HA stop for CT 120") {
		t.Errorf("hastop log = %v", h.log(upid))
	}
	if g := h.guest(120); g.Status != "running" || g.HA != "stopped" {
		t.Errorf("right after hastop 120 = %s (HA %s); want still running, requested stopped", g.Status, g.HA)
	}
	h.clock.Advance(time.Hour) // ... the LRM's vzstop follows
	if g := h.guest(120); g.Status != "stopped" {
		t.Errorf("120 = %s after the HA stack acted; want stopped", g.Status)
	}
	upid = h.upid("POST", "/nodes/pve3/lxc/120/status/start", nil)
	if !strings.Contains(upid, ":hastart:120:") {
		t.Fatalf("start of an HA guest = %s; want hastart", upid)
	}
	h.clock.Advance(time.Hour)
	if g := h.guest(120); g.Status != "running" || g.HA != "started" {
		t.Errorf("120 after hastart = %s %s", g.Status, g.HA)
	}
	upid = h.upid("POST", "/nodes/pve3/lxc/120/migrate", vals("target", "pve1", "restart", "1"))
	if !strings.Contains(upid, ":hamigrate:120:") {
		t.Fatalf("migrate of an HA guest = %s; want hamigrate", upid)
	}
	h.clock.Advance(time.Hour)
	if g := h.guest(120); g.Node != "pve1" {
		t.Errorf("120 after hamigrate on %s; want pve1", g.Node)
	}
}

func TestClusterNodeOffline(t *testing.T) {
	h := newCluster(t)
	if err := h.sim.SetNodeOnline("pve3", false); err != nil {
		t.Fatal(err)
	}
	r := h.do("GET", "/nodes/pve3/status", nil)
	if r.status != 595 || r.reason != "No route to host" || len(r.raw) != 0 {
		t.Fatalf("GET pve3/status with pve3 down = %d %q %q; want 595 No route to host, no body", r.status, r.reason, r.raw)
	}
	r = h.do("GET", "/nodes/pve3/lxc/120/status/current", nil)
	if r.status != 595 {
		t.Errorf("guest path of a down node = %d", r.status)
	}
	list := h.ok("GET", "/cluster/status", nil).list()
	if list[0]["quorate"] != 1.0 || list[3]["online"] != 0.0 {
		t.Errorf("cluster/status with pve3 down = %v", list)
	}
	res := byID(h.ok("GET", "/cluster/resources", nil).list())
	if res["node/pve3"]["status"] != "offline" || res["lxc/120"]["status"] != "running" {
		t.Errorf("right after pve3 went down: node %v, 120 %v; want offline, last status kept", res["node/pve3"], res["lxc/120"])
	}
	h.clock.Advance(6 * time.Minute)
	res = byID(h.ok("GET", "/cluster/resources", nil).list())
	if res["lxc/120"]["status"] != "unknown" || res["lxc/120"]["node"] != "pve3" {
		t.Errorf("five minutes on: 120 = %v; want unknown on pve3", res["lxc/120"])
	}
	// Migrating to a down node fails in the worker.
	h.wantExit(h.upid("POST", "/nodes/pve1/lxc/9999/migrate", vals("target", "pve3", "restart", "1")), "migration aborted")
	if g := h.guest(SelftestVMID); g.Lock != "" || g.Node != "pve1" {
		t.Errorf("after a failed migration 9999 = lock %q on %s", g.Lock, g.Node)
	}
	// The node's own listener answers nothing.
	srv := httptest.NewTLSServer(h.sim.NodeHandler("pve3"))
	defer srv.Close()
	if resp, err := srv.Client().Get(srv.URL + "/api2/json/version"); err == nil {
		resp.Body.Close()
		t.Errorf("a down node answered %s", resp.Status)
	}
	// Two nodes down: no quorum; starting a guest dies.
	if err := h.sim.SetNodeOnline("pve2", false); err != nil {
		t.Fatal(err)
	}
	if h.ok("GET", "/cluster/status", nil).list()[0]["quorate"] != 0.0 {
		t.Error("one of three nodes online is quorate")
	}
	h.fails("POST", "/nodes/pve1/lxc/9000/status/start", nil, 500, "cluster not ready - no quorum?")
	for _, n := range []string{"pve2", "pve3"} {
		if err := h.sim.SetNodeOnline(n, true); err != nil {
			t.Fatal(err)
		}
	}
	h.ok("GET", "/nodes/pve3/status", nil)
	if err := h.sim.SetNodeOnline("pve9", false); err == nil || !strings.Contains(err.Error(), "pve9") {
		t.Errorf("SetNodeOnline(pve9) = %v", err)
	}
}

func TestClusterOfflineFault(t *testing.T) {
	h := newCluster(t)
	if err := h.sim.AddFault(Fault{Kind: FaultOffline, Node: "pve9"}); err == nil || !strings.Contains(err.Error(), `no node "pve9"`) {
		t.Errorf("offline fault of a node not in the world = %v", err)
	}
	f, err := ParseFault("offline:pve2:at=1m:for=10m")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	h.ok("GET", "/nodes/pve2/status", nil)
	h.clock.Advance(2 * time.Minute)
	if r := h.do("GET", "/nodes/pve2/status", nil); r.status != 595 {
		t.Errorf("a minute after the fault pve2 answers %d; want 595", r.status)
	}
	h.clock.Advance(10 * time.Minute)
	h.ok("GET", "/nodes/pve2/status", nil)
}

// In a cluster each node has its own root commands and its own figures:
// a node's runner acts on that node (pct finds only its containers, as
// root on that host does), and a node's usage is its own.
func TestClusterRootRunnerAndUsagePerNode(t *testing.T) {
	h := newCluster(t)
	ctx := context.Background()
	r2, err := h.sim.NodeRootRunner("pve2")
	if err != nil {
		t.Fatal(err)
	}
	if r1, _ := h.sim.NodeRootRunner("pve1"); r1 != h.sim.RootRunner() {
		t.Error("the first node's runner is not RootRunner")
	}
	if _, err := h.sim.NodeRootRunner("pve9"); err == nil {
		t.Error("a runner of a node the world does not have")
	}
	set := func(r *RootRunner, vmid int) error {
		_, err := r.Run(ctx, []string{"pct", "set", strconv.Itoa(vmid), "--mp255", "/var/lib/felhom-agent/guests/" + strconv.Itoa(vmid) + ",mp=/etc/felhom-bootstrap,ro=1"})
		return err
	}
	if err := set(r2, ClusterShop); err != nil {
		t.Errorf("pct set of pve2's guest on pve2: %v", err)
	}
	if err := set(r2, CustomerWeb); exitCode(err) != 255 || !strings.Contains(err.Error(), "Configuration file 'nodes/pve2/lxc/101.conf' does not exist") {
		t.Errorf("pct set of pve1's guest on pve2 = %v; want PVE's missing config file", err)
	}
	if len(r2.Calls()) != 2 || len(h.sim.RootRunner().Calls()) != 0 {
		t.Errorf("calls: pve2 %d, pve1 %d; want each runner its own", len(r2.Calls()), len(h.sim.RootRunner().Calls()))
	}

	u := h.sim.NodeUsage()
	u.CPU = 0.75
	if err := h.sim.SetNodeUsageOf("pve2", u); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.sim.NodeUsageOf("pve2"); got.CPU != 0.75 {
		t.Errorf("NodeUsageOf(pve2).CPU = %v", got.CPU)
	}
	if h.sim.NodeUsage().CPU == 0.75 {
		t.Error("setting pve2's usage changed pve1's")
	}
	if st := h.do("GET", "/nodes/pve2/status", nil).object(); st["cpu"] != 0.75 {
		t.Errorf("GET /nodes/pve2/status cpu = %v; want 0.75", st["cpu"])
	}
	if _, err := h.sim.NodeUsageOf("pve9"); err == nil {
		t.Error("the usage of a node the world does not have")
	}
}

// A container with a bind mount point (the guest API's bootstrap
// directory is one) migrates only when the mount point is marked
// shared=1, as pve-container's Migrate.pm prepare says.
func TestClusterMigrateBindMount(t *testing.T) {
	h := newCluster(t)
	if _, err := h.sim.RootRunner().Run(context.Background(), []string{"pct", "set", "101", "--mp255", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1"}); err != nil {
		t.Fatal(err)
	}
	p := "/nodes/pve1/lxc/101/migrate"
	lines := h.wantExit(h.upid("POST", p, vals("target", "pve2", "restart", "1")), "migration aborted")
	if !containsLine(lines, "ERROR: migration aborted (duration 00:00:00): cannot migrate local bind mount point 'mp255'") {
		t.Errorf("migrate log:\n%s", strings.Join(lines, "\n"))
	}
	if g := h.guest(101); g.Node != "pve1" || g.Lock != "" || g.Status != "running" {
		t.Errorf("101 after the refused migration = %+v; want running, unlocked, on pve1", g)
	}
	if _, err := h.sim.RootRunner().Run(context.Background(), []string{"pct", "set", "101", "--mp255", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=1"}); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", p, vals("target", "pve2", "restart", "1")), "OK")
	if g := h.guest(101); g.Node != "pve2" {
		t.Errorf("101 with a shared bind mount is on %s; want pve2", g.Node)
	}
}

// With the nodes' host directories modelled (Sim.HostDir), a shared bind
// mount whose directory does not exist on the target moves with the
// container, which then fails to start there as pve-container's
// mountpoint_mount says, and starts once the directory exists.
func TestClusterSharedBindMountNeedsDirOnTarget(t *testing.T) {
	h := newCluster(t)
	const dir = "/var/lib/felhom-agent/guests/101"
	var mu sync.Mutex
	exists := map[string]bool{"pve1 " + dir: true}
	h.sim.HostDir = func(node, path string) bool {
		mu.Lock()
		defer mu.Unlock()
		return exists[node+" "+path]
	}
	if _, err := h.sim.RootRunner().Run(context.Background(), []string{"pct", "set", "101", "--mp255", dir + ",mp=/etc/felhom-bootstrap,ro=1,shared=1"}); err != nil {
		t.Fatal(err)
	}
	lines := h.wantExit(h.upid("POST", "/nodes/pve1/lxc/101/migrate", vals("target", "pve2", "restart", "1")), "migration problems")
	for _, want := range []string{"start container on target node", "ERROR: directory '" + dir + "' does not exist", "ERROR: startup for container '101' failed", "ERROR: migration finished with problems"} {
		if !containsLine(lines, want) {
			t.Errorf("migrate log lacks %q:\n%s", want, strings.Join(lines, "\n"))
		}
	}
	if g := h.guest(101); g.Node != "pve2" || g.Status != "stopped" || g.Lock != "" {
		t.Errorf("101 after the migration with problems = %+v; want stopped, unlocked, on pve2", g)
	}
	start := "/nodes/pve2/lxc/101/status/start"
	if lines := h.wantExit(h.upid("POST", start, nil), "startup for container '101' failed"); !containsLine(lines, "directory '"+dir+"' does not exist") || h.guest(101).Status != "stopped" {
		t.Errorf("101 after a failed start = %+v; log:\n%s", h.guest(101), strings.Join(lines, "\n"))
	}
	mu.Lock()
	exists["pve2 "+dir] = true
	mu.Unlock()
	h.wantExit(h.upid("POST", start, nil), "OK")
	if g := h.guest(101); g.Status != "running" {
		t.Errorf("101 once its directory exists on pve2 = %+v; want running", g)
	}
	h.wantExit(h.upid("POST", "/nodes/pve2/lxc/101/migrate", vals("target", "pve1", "restart", "1")), "OK")
	if g := h.guest(101); g.Node != "pve1" || g.Status != "running" {
		t.Errorf("101 migrated back = %+v; want running on pve1", g)
	}
}

// TestClusterStorageUsageIsPerNodeUnlessShared: a storage without shared=1
// is each node's own disk with its own figures (pve-storage
// src/PVE/Storage.pm storage_info on the node asked; pve-manager
// PVE/Service/pvestatd.pm broadcasts pve2-storage/NODE/STORAGE), a shared
// one has one figure the whole cluster sees; a migration moves a local
// disk's space to the target; a full fault may name one node.
func TestClusterStorageUsageIsPerNodeUnlessShared(t *testing.T) {
	h := newCluster(t)
	used := func(node, sid string) uint64 {
		t.Helper()
		return uint64(h.ok("GET", "/nodes/"+node+"/storage/"+sid+"/status", nil).object()["used"].(float64))
	}
	resource := func(node, sid string) uint64 {
		t.Helper()
		m := byID(h.ok("GET", "/cluster/resources", vals("type", "storage")).list())["storage/"+node+"/"+sid]
		if m == nil {
			t.Fatalf("cluster/resources lacks storage/%s/%s", node, sid)
		}
		return uint64(m["disk"].(float64))
	}
	nodes := []string{"pve1", "pve2", "pve3"}
	snap := func(sid string) map[string]uint64 {
		out := map[string]uint64{}
		for _, n := range nodes {
			out[n] = used(n, sid)
			if r := resource(n, sid); r != out[n] {
				t.Errorf("cluster/resources storage/%s/%s disk %d; the node's status says %d", n, sid, r, out[n])
			}
		}
		return out
	}
	archiveSize := func(node, sid string) uint64 {
		t.Helper()
		var size uint64
		for _, v := range h.ok("GET", "/nodes/"+node+"/storage/"+sid+"/content", vals("vmid", "110")).list() {
			size += uint64(v["size"].(float64))
		}
		return size
	}

	// A backup on pve2 to the local usb-backup: pve2's disk fills, not pve1's.
	before := snap("usb-backup")
	if before["pve1"] != before["pve2"] {
		t.Errorf("usb-backup starts at %v; want every node alike", before)
	}
	h.wantExit(h.upid("POST", "/nodes/pve2/vzdump", vals("vmid", "110", "storage", "usb-backup")), "OK")
	size := archiveSize("pve2", "usb-backup")
	after := snap("usb-backup")
	if size == 0 || after["pve2"] != before["pve2"]+size || after["pve1"] != before["pve1"] || after["pve3"] != before["pve3"] {
		t.Errorf("usb-backup used %v -> %v after a %d-byte archive on pve2; want only pve2's to grow by it", before, after, size)
	}
	if got := h.sim.Storages(); got[slicesIndex(got, "usb-backup")].Used != after["pve1"] {
		t.Errorf("Sim.Storages usb-backup used %d; want pve1's %d", got[slicesIndex(got, "usb-backup")].Used, after["pve1"])
	}
	if got, err := h.sim.StoragesOn("pve2"); err != nil || got[slicesIndex(got, "usb-backup")].Used != after["pve2"] {
		t.Errorf("Sim.StoragesOn(pve2) = %v, %v; want usb-backup at pve2's %d", got, err, after["pve2"])
	}

	// The same to the shared NFS: one figure, every node sees it grow.
	before = snap(SharedBackupStorage)
	h.wantExit(h.upid("POST", "/nodes/pve2/vzdump", vals("vmid", "110", "storage", SharedBackupStorage)), "OK")
	size = archiveSize("pve2", SharedBackupStorage)
	for n, u := range snap(SharedBackupStorage) {
		if u != before[n]+size {
			t.Errorf("%s: %s used %d; want %d + %d (shared)", n, SharedBackupStorage, u, before[n], size)
		}
	}

	// A restart-mode migration of 101 (rootfs local-lvm, 8G) to pve2 frees
	// pve1's copy and takes the space on pve2 (LXC/Migrate.pm phase1
	// storage_migrate, phase3 vdisk_free).
	before = snap("local-lvm")
	h.wantExit(h.upid("POST", "/nodes/pve1/lxc/101/migrate", vals("target", "pve2", "restart", "1")), "OK")
	after = snap("local-lvm")
	const disk = 8 << 30
	if after["pve1"] != before["pve1"]-disk || after["pve2"] != before["pve2"]+disk || after["pve3"] != before["pve3"] {
		t.Errorf("local-lvm used %v -> %v after migrating an 8G rootfs pve1 -> pve2", before, after)
	}

	// full:usb-backup:pve2 fills pve2's disk only.
	f, err := ParseFault("full:usb-backup:pve2")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	if log := h.wantExit(h.upid("POST", "/nodes/pve2/vzdump", vals("vmid", "110", "storage", "usb-backup")), "job errors"); !containsLine(log, "No space left on device") {
		t.Errorf("vzdump to a full usb-backup on pve2:\n%s", strings.Join(log, "\n"))
	}
	h.wantExit(h.upid("POST", "/nodes/pve1/vzdump", vals("vmid", "102", "storage", "usb-backup")), "OK")
	if err := h.sim.FillStorageOn("usb-backup", "pve9"); err == nil || !strings.Contains(err.Error(), `no node "pve9"`) {
		t.Errorf("FillStorageOn(pve9) = %v; want no node", err)
	}
	// SetStorageUsageOn sets one node's figure; SetStorageUsage every node's.
	if err := h.sim.SetStorageUsageOn("local", "pve3", 1<<30); err != nil {
		t.Fatal(err)
	}
	if used("pve3", "local") != 1<<30 || used("pve1", "local") == 1<<30 {
		t.Errorf("local after SetStorageUsageOn(pve3, 1G): pve3 %d, pve1 %d", used("pve3", "local"), used("pve1", "local"))
	}
	if err := h.sim.SetStorageUsageOn("local", "pve9", 1); err == nil {
		t.Error("SetStorageUsageOn(pve9) = nil; want an error naming the node")
	}
	if err := h.sim.SetStorageUsage("local", 100<<30, 5<<30); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if used(n, "local") != 5<<30 {
			t.Errorf("%s: local used %d after SetStorageUsage; want 5G on every node", n, used(n, "local"))
		}
	}
}

func slicesIndex(list []proxmox.Storage, name string) int {
	for i, s := range list {
		if s.Storage == name {
			return i
		}
	}
	panic("no storage " + name)
}
