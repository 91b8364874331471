package pvesim

import (
	"net/url"
	"testing"
	"time"
)

func TestClusterStatusSingleNode(t *testing.T) {
	h := newHarness(t)
	r := h.ok("GET", "/cluster/status", nil)
	want := `{"data":[{"id":"node/demo-felhom","ip":"127.0.0.1","level":"","local":1,"name":"demo-felhom","nodeid":0,"online":1,"type":"node"}]}`
	if string(r.raw) != want {
		t.Errorf("GET /cluster/status = %s; want %s", r.raw, want)
	}
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("GET", "/cluster/status", nil, 403, "Permission check failed (/, Sys.Audit)")
}

func TestStorageReads(t *testing.T) {
	h := newHarness(t)
	cfg := h.ok("GET", "/storage/usb-backup", nil).object()
	if cfg["storage"] != "usb-backup" || cfg["type"] != "dir" || cfg["path"] != "/mnt/usb-backup" || cfg["prune-backups"] != "keep-last=7" || cfg["digest"] == "" {
		t.Errorf("GET /storage/usb-backup = %v", cfg)
	}
	h.fails("GET", "/storage/nosuch", nil, 500, "storage 'nosuch' does not exist")

	st := h.ok("GET", nodePath+"/storage/usb-backup/status", nil).object()
	if st["type"] != "dir" || st["active"] != float64(1) || st["total"] == float64(0) || st["content"] != "backup" {
		t.Errorf("storage status = %v", st)
	}
	if _, has := st["storage"]; has {
		t.Errorf("storage status carries its id: %v", st)
	}
	r := h.fails("GET", nodePath+"/storage/nosuch/status", nil, 400, "Parameter verification failed.")
	if r.errors()["storage"] != "No such storage." {
		t.Errorf("errors = %v", r.errors())
	}
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/usb-backup", "Datastore.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("GET", "/storage/usb-backup", nil, 403, "Permission check failed (/storage/usb-backup, Datastore.Allocate)")
}

func TestSnapshotConfig(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddSnapshot(101, "before", "before the upgrade"); err != nil {
		t.Fatal(err)
	}
	conf := h.ok("GET", nodePath+"/lxc/101/snapshot/before/config", nil).object()
	if conf["hostname"] != "web" || conf["description"] != "before the upgrade\n" || conf["snaptime"] == nil || conf["cores"] != float64(2) {
		t.Errorf("snapshot config = %v", conf)
	}
	if _, has := conf["digest"]; has {
		t.Errorf("snapshot config has a digest: %v", conf)
	}
	h.fails("GET", nodePath+"/lxc/101/snapshot/nosuch/config", nil, 500, "snapshot 'nosuch' does not exist")
	h.fails("GET", nodePath+"/lxc/555/snapshot/before/config", nil, 500, "Configuration file 'nodes/demo-felhom/lxc/555.conf' does not exist")
}

func TestAccessReads(t *testing.T) {
	h := newHarness(t)
	users := h.ok("GET", "/access/users", nil)
	want := `{"data":[{"enable":1,"expire":0,"realm-type":"pve","userid":"felhom-agent@pve"},{"enable":1,"expire":0,"realm-type":"pam","userid":"root@pam"}]}`
	if string(users.raw) != want {
		t.Errorf("GET /access/users = %s; want %s", users.raw, want)
	}
	full := h.ok("GET", "/access/users", url.Values{"full": {"1"}}).list()
	if toks, _ := full[0]["tokens"].([]any); len(toks) != 1 || toks[0].(map[string]any)["tokenid"] != "agent" {
		t.Errorf("full users = %v", full)
	}
	if got := h.ok("GET", "/access/users", url.Values{"enabled": {"0"}}).list(); len(got) != 0 {
		t.Errorf("disabled users = %v; want none", got)
	}
	if got := string(h.ok("GET", "/access/groups", nil).raw); got != `{"data":[]}` {
		t.Errorf("GET /access/groups = %s", got)
	}
	// Without Sys.Audit or User.Modify on /access/groups a token sees no
	// user: it is not one itself.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/access", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	if got := string(h.ok("GET", "/access/users", nil).raw); got != `{"data":[]}` {
		t.Errorf("GET /access/users without Sys.Audit = %s; want none", got)
	}
	// The realms are for the login box: no credentials needed, and bad
	// ones are not looked at.
	for _, auth := range []string{"", "PVEAPIToken=" + DefaultTokenID + "=wrong"} {
		r := h.doAuth("GET", "/access/domains", nil, auth)
		if r.status != 200 || len(r.list()) != 2 || r.list()[0]["realm"] != "pam" || r.list()[1]["comment"] != "Proxmox VE authentication server" {
			t.Errorf("GET /access/domains with %q = %d %s", auth, r.status, r.raw)
		}
	}
	if r := h.doAuth("GET", "/access/users", nil, ""); r.status != 401 {
		t.Errorf("GET /access/users without credentials = %d; want 401", r.status)
	}
}

// Guest disks on LVM-thin list their creation time, like lv_time in
// pve-storage's LvmThinPlugin list_images; it stays put.
func TestThinVolumeCTime(t *testing.T) {
	h := newHarness(t)
	list := h.ok("GET", nodePath+"/storage/local-lvm/content", vals("vmid", "101")).list()
	if len(list) != 1 || list[0]["volid"] != "local-lvm:vm-101-disk-0" || list[0]["ctime"] != float64(testStart.Unix()) {
		t.Fatalf("local-lvm content of 101 = %v; want its disk with ctime %d", list, testStart.Unix())
	}
	h.clock.Advance(time.Hour)
	again := h.ok("GET", nodePath+"/storage/local-lvm/content", vals("vmid", "101")).list()
	if again[0]["ctime"] != list[0]["ctime"] {
		t.Errorf("ctime moved from %v to %v", list[0]["ctime"], again[0]["ctime"])
	}
}

// disks/list marks what is mounted with mounted 1 and leaves the key out
// elsewhere (pve-storage src/PVE/Diskmanage.pm get_disks).
func TestDisksMounted(t *testing.T) {
	h := newHarness(t)
	for _, d := range h.ok("GET", nodePath+"/disks/list", vals("include-partitions", "1")).list() {
		m, has := d["mounted"]
		switch {
		case d["devpath"] == "/dev/sdb1" && m != float64(1):
			t.Errorf("/dev/sdb1 (mounted at /mnt/usb-backup) = %v; want mounted 1", d)
		case d["devpath"] != "/dev/sdb1" && has:
			t.Errorf("%v carries mounted although nothing of it is mounted", d)
		}
	}
	if err := h.sim.Unmount("/mnt/usb-backup"); err != nil {
		t.Fatal(err)
	}
	for _, d := range h.ok("GET", nodePath+"/disks/list", vals("include-partitions", "1")).list() {
		if _, has := d["mounted"]; has {
			t.Errorf("after the unmount: %v carries mounted", d)
		}
	}
}
