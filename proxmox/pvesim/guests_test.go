package pvesim

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestListGuests(t *testing.T) {
	h := newHarness(t)
	list := h.ok("GET", nodePath+"/lxc", nil).list()
	byID := map[int]map[string]any{}
	for _, g := range list {
		vmid, isNumber := g["vmid"].(float64)
		if !isNumber {
			t.Fatalf("vmid %v (%T); PVE 8.1+ sends integers", g["vmid"], g["vmid"])
		}
		byID[int(vmid)] = g
	}
	for vmid, want := range map[int]string{SelftestVMID: "running", GoldenVMID: "stopped", CustomerWeb: "running", CustomerDB: "running"} {
		if byID[vmid]["status"] != want {
			t.Errorf("CT %d status = %v; want %s", vmid, byID[vmid]["status"], want)
		}
	}
	if byID[GoldenVMID]["template"] != float64(1) || byID[CustomerWeb]["template"] != nil {
		t.Errorf("template flags: golden %v, web %v; want 1 and absent", byID[GoldenVMID]["template"], byID[CustomerWeb]["template"])
	}
	if byID[CustomerWeb]["name"] != "web" || byID[CustomerWeb]["maxmem"] != float64(2048*mib) {
		t.Errorf("web = %v; want name web, maxmem 2 GiB", byID[CustomerWeb])
	}
}

func TestGuestStatusCurrent(t *testing.T) {
	h := newHarness(t)
	st := h.ok("GET", nodePath+"/lxc/101/status/current", nil).object()
	if st["status"] != "running" || st["vmid"] != float64(101) || st["uptime"].(float64) <= 0 {
		t.Errorf("status/current = %v; want running 101 with uptime", st)
	}
	h.fails("GET", nodePath+"/lxc/555/status/current", nil, 500,
		"Configuration file 'nodes/demo-felhom/lxc/555.conf' does not exist")
}

func TestGuestConfig(t *testing.T) {
	h := newHarness(t)
	conf := h.ok("GET", nodePath+"/lxc/101/config", nil).object()
	if conf["rootfs"] != "local-lvm:vm-101-disk-0,size=8G" || conf["hostname"] != "web" {
		t.Errorf("config = %v", conf)
	}
	if conf["cores"] != float64(2) || conf["memory"] != float64(2048) || conf["unprivileged"] != float64(1) {
		t.Errorf("typed keys: cores %#v memory %#v unprivileged %#v; want numbers", conf["cores"], conf["memory"], conf["unprivileged"])
	}
	if net, _ := conf["net0"].(string); !strings.HasPrefix(net, "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:") || !strings.HasSuffix(net, ",ip=dhcp,type=veth") {
		t.Errorf("net0 = %q", net)
	}
	if conf["description"] != "customer web server\n" {
		t.Errorf("description = %q; PVE reads it back with a trailing newline", conf["description"])
	}
	if d, _ := conf["digest"].(string); len(d) != 40 {
		t.Errorf("digest = %q; want a SHA-1", d)
	}
}

// Raw lxc.* keys come back as PVE returns them: the "lxc" array of
// [key, value] pairs in file order (pve-container src/PVE/API2/LXC/Config.pm,
// LXC/Config.pm parse_pct_config); the digest covers them.
func TestGuestConfigLXCKeys(t *testing.T) {
	h := newHarness(t)
	idmap := [][2]string{{"lxc.idmap", "u 0 200000 65536"}, {"lxc.idmap", "g 0 200000 65536"}}
	if err := h.sim.AddGuest(GuestSpec{VMID: 150, LXC: idmap}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddGuest(GuestSpec{VMID: 151}); err != nil {
		t.Fatal(err)
	}
	conf := h.ok("GET", nodePath+"/lxc/150/config", nil).object()
	got, _ := json.Marshal(conf["lxc"])
	if string(got) != `[["lxc.idmap","u 0 200000 65536"],["lxc.idmap","g 0 200000 65536"]]` {
		t.Errorf("lxc = %s; want the pairs in order", got)
	}
	if _, has := h.ok("GET", nodePath+"/lxc/151/config", nil).object()["lxc"]; has {
		t.Error("a container without lxc.* keys returns an lxc array")
	}
	for _, bad := range []GuestSpec{{VMID: 152, LXC: [][2]string{{"idmap", "u 0 1 1"}}}, {VMID: 153, Type: "qemu", LXC: idmap},
		{VMID: 154, LXC: [][2]string{{"lxc.idmap", "u 0 1 1\nrootfs: x"}}}} {
		if err := h.sim.AddGuest(bad); err == nil {
			t.Errorf("AddGuest(%+v) accepted", bad)
		}
	}
}

func TestPutConfig(t *testing.T) {
	h := newHarness(t)
	path := nodePath + "/lxc/101/config"
	r := h.ok("PUT", path, vals("cores", "4", "description", "a\nb\n\n", "onboot", "0"))
	if string(r.raw) != `{"data":null}` {
		t.Errorf("PUT config body = %s; want {\"data\":null} (synchronous)", r.raw)
	}
	conf := h.ok("GET", path, nil).object()
	if conf["cores"] != float64(4) || conf["description"] != "a\nb\n" || conf["onboot"] != float64(0) {
		t.Errorf("after PUT: cores %v description %q onboot %v", conf["cores"], conf["description"], conf["onboot"])
	}

	tests := []struct {
		written, read string
	}{
		{"x", "x\n"},
		{"a\nb", "a\nb\n"},
		{"a\n\nb", "a\n\nb\n"},
		{"\nlead", "\nlead\n"},
		{"tail\n\n\n", "tail\n"},
		{"100%: ünicode", "100%: ünicode\n"},
	}
	for _, tc := range tests {
		h.ok("PUT", path, vals("description", tc.written))
		if got := h.ok("GET", path, nil).object()["description"]; got != tc.read {
			t.Errorf("description written %q read back %q; want %q", tc.written, got, tc.read)
		}
	}
	h.ok("PUT", path, vals("description", ""))
	if _, has := h.ok("GET", path, nil).object()["description"]; has {
		t.Error("an empty description should remove the key")
	}

	h.ok("PUT", path, vals("description", "again"))
	h.ok("PUT", path, vals("delete", "description,onboot"))
	conf = h.ok("GET", path, nil).object()
	if _, has := conf["description"]; has {
		t.Error("delete=description left the description")
	}
	if _, has := conf["onboot"]; has {
		t.Error("delete=onboot left onboot")
	}

	digest := conf["digest"].(string)
	h.ok("PUT", path, vals("memory", "1024", "digest", digest))
	h.fails("PUT", path, vals("memory", "2048", "digest", digest), 500,
		"detected modified configuration - file changed by other user? Try again.")
	if got := h.ok("GET", path, nil).object()["digest"]; got == digest {
		t.Error("digest did not change with the config")
	}
}

func TestPutConfigErrors(t *testing.T) {
	h := newHarness(t)
	path := nodePath + "/lxc/101/config"
	h.fails("PUT", path, nil, 500, "no options specified")
	h.fails("PUT", nodePath+"/lxc/555/config", vals("cores", "1"), 500,
		"Configuration file 'nodes/demo-felhom/lxc/555.conf' does not exist")
	tests := []struct {
		params url.Values
		param  string
		msg    string
	}{
		{vals("delete", "bogus"), "delete", "unknown option 'bogus'"},
		{vals("delete", "cores", "cores", "2"), "delete", "you can't use '-cores' and -delete cores' at the same time"},
		{vals("cores", "abc"), "cores", "type check ('integer') failed - got 'abc'"},
		{vals("cores", "0"), "cores", "value must have a minimum value of 1"},
		{vals("memory", "8"), "memory", "value must have a minimum value of 16"},
		{vals("ostype", "windows"), "ostype", "value 'windows' does not have a value in the enumeration 'debian, devuan, ubuntu, centos, fedora, opensuse, archlinux, alpine, gentoo, nixos, unmanaged'"},
		{vals("hostname", "bad_name"), "hostname", "invalid format - value does not look like a valid DNS name\n"},
		{vals("nosuch", "1"), "nosuch", msgUnknownParam},
		{vals("net0", "name=eth0,bridge=vmbr0,speed=10"), "net0", "invalid format - invalid key in comma-separated list property: speed\n"},
		{vals("onboot", "true"), "onboot", "type check ('boolean') failed - got 'true'"},
	}
	for _, tc := range tests {
		r := h.fails("PUT", path, tc.params, 400, "Parameter verification failed.")
		if got := r.errors()[tc.param]; got != tc.msg {
			t.Errorf("PUT %v: errors[%s] = %q; want %q", tc.params, tc.param, got, tc.msg)
		}
	}
}

func TestPutConfigLocked(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.SetGuestLock(101, "backup"); err != nil {
		t.Fatal(err)
	}
	before := h.sim.Mutations(101)
	h.fails("PUT", nodePath+"/lxc/101/config", vals("cores", "1"), 500, "CT is locked (backup)")
	if got := h.sim.Mutations(101); got != before+1 {
		t.Errorf("Mutations(101) = %d; want %d (counted on arrival)", got, before+1)
	}
	h.fails("DELETE", nodePath+"/lxc/101", nil, 500, "CT is locked (backup)")
	if err := h.sim.SetGuestLock(101, "wrong"); err == nil {
		t.Error("SetGuestLock with an unknown lock = nil; want an error")
	}
	if err := h.sim.SetGuestLock(101, ""); err != nil {
		t.Fatal(err)
	}
	h.ok("PUT", nodePath+"/lxc/101/config", vals("cores", "1"))
}

func TestPutConfigPrivileges(t *testing.T) {
	h := newHarness(t)
	path := nodePath + "/lxc/101/config"
	// A token, not root@pam: feature flags other than nesting are root's.
	h.fails("PUT", path, vals("features", "nesting=1,keyctl=1"), 403,
		"Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)")
	h.ok("PUT", path, vals("features", "nesting=0"))
	h.fails("PUT", path, vals("dev0", "/dev/ttyUSB0"), 403,
		"Permission check failed (configuring device passthrough is only allowed for root@pam)")
	h.fails("PUT", path, vals("mp0", "/srv/data,mp=/data"), 403,
		"Permission check failed (mount point type bind is only allowed for root@pam)")

	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/101", "VM.Audit", "VM.Config.Options"); err != nil {
		t.Fatal(err)
	}
	h.ok("PUT", path, vals("description", "ok"))
	h.fails("PUT", path, vals("memory", "512"), 403, "Permission check failed (/vms/101, VM.Config.Memory)")
	h.fails("PUT", path, vals("hostname", "web2"), 403, "Permission check failed (/vms/101, VM.Config.Network)")
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/101", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("PUT", path, vals("description", "no"), 403,
		"Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.Options)")

	// PVE 8.1+: a NIC on a plain bridge needs SDN.Use in the localnetwork zone.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/101", FelhomAgentPrivileges()...); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/sdn", "SDN.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("PUT", path, vals("net1", "name=eth1,bridge=vmbr1,ip=dhcp"), 403,
		"Permission check failed (/sdn/zones/localnetwork/vmbr1, SDN.Use)")
}

func TestStartStop(t *testing.T) {
	h := newHarness(t)
	base := nodePath + "/lxc/101/status/"
	h.fails("POST", base+"start", nil, 500, "CT 101 already running")
	r := h.fails("POST", base+"start", vals("skiplock", "1"), 400, "Parameter verification failed.")
	if r.errors()["skiplock"] != "Only root may use this option." {
		t.Errorf("skiplock errors = %v", r.errors())
	}

	upid := h.upid("POST", base+"shutdown", vals("timeout", "30"))
	if !strings.Contains(upid, ":vzshutdown:101:"+DefaultTokenID+":") {
		t.Errorf("UPID %s; want type vzshutdown, id 101, the token as user", upid)
	}
	if h.guest(101).Status != "running" {
		t.Error("guest stopped before its task ended")
	}
	h.wantExit(upid, "OK")
	if h.guest(101).Status != "stopped" {
		t.Error("guest still running after shutdown")
	}
	h.fails("POST", base+"stop", nil, 500, "CT 101 not running")
	h.fails("POST", base+"shutdown", nil, 500, "CT 101 not running")

	h.wantExit(h.upid("POST", base+"start", nil), "OK")
	if h.guest(101).Status != "running" {
		t.Error("guest not running after start")
	}
	h.wantExit(h.upid("POST", base+"stop", nil), "OK")

	// Locks are checked in the worker: the request returns a UPID.
	if err := h.sim.SetGuestLock(101, "snapshot"); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", base+"start", nil), "CT is locked (snapshot)")

	// A template cannot start; a missing guest fails in the worker too.
	h.wantExit(h.upid("POST", nodePath+"/lxc/9000/status/start", nil), "you can't start a CT if it's a template")
	h.wantExit(h.upid("POST", nodePath+"/lxc/555/status/start", nil),
		"Configuration file 'nodes/demo-felhom/lxc/555.conf' does not exist")
	h.fails("POST", nodePath+"/lxc/555/status/stop", nil, 500, "CT 555 not running")
}

func TestDestroy(t *testing.T) {
	h := newHarness(t)
	h.fails("DELETE", nodePath+"/lxc/101", nil, 500, "unable to destroy CT 101 - container is running")
	h.fails("DELETE", nodePath+"/lxc/555", nil, 500, "Configuration file 'nodes/demo-felhom/lxc/555.conf' does not exist")
	before := h.sim.Storages()
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/101", FelhomAgentPrivileges()...); err != nil {
		t.Fatal(err)
	}
	upid := h.upid("DELETE", nodePath+"/lxc/101", vals("force", "1", "purge", "1"))
	if !strings.Contains(upid, ":vzdestroy:101:") {
		t.Errorf("UPID %s; want vzdestroy of 101", upid)
	}
	h.fails("PUT", nodePath+"/lxc/101/config", vals("cores", "1"), 500, "CT is locked (destroyed)")
	log := h.wantExit(upid, "WARNINGS: 1")
	if !containsLine(log, "WARN: forced to stop CT 101 before destroying!") || !containsLine(log, "purging CT 101") {
		t.Errorf("destroy log:\n%s", strings.Join(log, "\n"))
	}
	if _, ok := h.sim.Guest(101); ok {
		t.Error("CT 101 still exists")
	}
	after := h.sim.Storages()
	if after[1].Storage != "local-lvm" || after[1].Used != before[1].Used-8*gib {
		t.Errorf("local-lvm used %d -> %d; want 8 GiB freed", before[1].Used, after[1].Used)
	}
	// The guest's ACL entries go with it (PVE's remove_vm_access).
	r := h.do("GET", nodePath+"/lxc/101/config", nil)
	if r.status != 500 {
		t.Errorf("config of destroyed guest: %d", r.status)
	}
	h.ok("GET", "/cluster/nextid", vals("vmid", "101"))
	if h.sim.Mutations(101) != 3 {
		t.Errorf("Mutations(101) = %d; want 3", h.sim.Mutations(101))
	}
}

func TestLegacyErrors(t *testing.T) {
	h := newHarness(t)
	h.sim.LegacyErrors = true // no request has been served with it yet
	r := h.do("POST", nodePath+"/lxc/101/status/start", nil)
	if r.status != 500 || r.reason != "CT 101 already running" {
		t.Errorf("legacy = %d %q; want the reason phrase to carry the message", r.status, r.reason)
	}
	if string(r.raw) != `{"data":null}` {
		t.Errorf("legacy body = %s; want {\"data\":null}", r.raw)
	}
	r = h.do("PUT", nodePath+"/lxc/101/config", vals("cores", "x"))
	if _, has := r.env["message"]; has || r.errors()["cores"] == "" {
		t.Errorf("legacy 400 body = %s; want errors and no message", r.raw)
	}
}

func TestGuestShaping(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddGuest(GuestSpec{VMID: 300, Hostname: "extra", Running: true, Description: "d"}); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddGuest(GuestSpec{VMID: 300}); err == nil {
		t.Error("AddGuest of a taken vmid = nil; want an error")
	}
	for _, bad := range []GuestSpec{{VMID: 99}, {VMID: 301, Hostname: "bad name"}} {
		if err := h.sim.AddGuest(bad); err == nil {
			t.Errorf("AddGuest(%+v) = nil; want an error", bad)
		}
	}
	g := h.guest(300)
	if g.Status != "running" || g.Config["rootfs"] != "local-lvm:vm-300-disk-0,size=8G" || g.Name != "extra" {
		t.Errorf("guest 300 = %+v", g)
	}
	if err := h.sim.SetGuestStatus(300, "stopped"); err != nil {
		t.Fatal(err)
	}
	if st := h.ok("GET", nodePath+"/lxc/300/status/current", nil).object(); st["status"] != "stopped" {
		t.Errorf("status = %v", st["status"])
	}
	if err := h.sim.SetGuestStatus(300, "paused"); err == nil {
		t.Error("SetGuestStatus(paused) = nil; want an error")
	}
	if err := h.sim.RemoveGuest(300); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.RemoveGuest(300); err == nil {
		t.Error("RemoveGuest twice = nil; want an error")
	}
	if len(h.sim.Guests()) != 6 {
		t.Errorf("Guests() = %d; want the 6 of the default world", len(h.sim.Guests()))
	}
}
