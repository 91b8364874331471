package pvesim

import (
	"strings"
	"testing"
	"time"
)

func TestStorageLists(t *testing.T) {
	h := newHarness(t)
	cfg := h.ok("GET", "/storage", nil).list()
	if len(cfg) != 4 || cfg[0]["storage"] != "local" || cfg[0]["path"] != "/var/lib/vz" || cfg[0]["content"] != "backup,iso,vztmpl" {
		t.Errorf("GET /storage = %v", cfg)
	}
	if cfg[3]["storage"] != "usb-backup" || cfg[3]["prune-backups"] != "keep-last=7" {
		t.Errorf("usb-backup config = %v", cfg[3])
	}
	if cfg[2]["storage"] != PBSStorage || cfg[2]["type"] != "pbs" || cfg[2]["datastore"] != "felhom" || cfg[2]["path"] != nil {
		t.Errorf("pbs-backup config = %v", cfg[2])
	}
	if got := h.ok("GET", "/storage", vals("type", "lvmthin")).list(); len(got) != 1 || got[0]["thinpool"] != "data" {
		t.Errorf("type=lvmthin = %v", got)
	}

	status := h.ok("GET", nodePath+"/storage", nil).list()
	if len(status) != 4 {
		t.Fatalf("node storage = %v", status)
	}
	for _, s := range status {
		total, used, avail := s["total"].(float64), s["used"].(float64), s["avail"].(float64)
		if total == 0 || used+avail != total || s["active"] != float64(1) || s["enabled"] != float64(1) {
			t.Errorf("storage %v: want total = used + avail, active, enabled", s)
		}
	}
	if got := h.ok("GET", nodePath+"/storage", vals("content", "backup")).list(); len(got) != 3 {
		t.Errorf("content=backup = %d storages; want local, pbs-backup and usb-backup", len(got))
	}
	if got := h.ok("GET", nodePath+"/storage", vals("storage", "local-lvm")).list(); len(got) != 1 {
		t.Errorf("storage=local-lvm = %v", got)
	}

	if err := h.sim.SetStorageUsage("usb-backup", 1000*gib, 990*gib); err != nil {
		t.Fatal(err)
	}
	got := h.ok("GET", nodePath+"/storage", vals("storage", "usb-backup")).list()[0]
	if got["avail"] != float64(10*gib) || got["used_fraction"] != 0.99 {
		t.Errorf("after SetStorageUsage: %v", got)
	}
	if err := h.sim.SetStorageUsage("usb-backup", 1, 2); err == nil {
		t.Error("SetStorageUsage(used > total) = nil")
	}
}

func TestStorageContent(t *testing.T) {
	h := newHarness(t)
	local := h.ok("GET", nodePath+"/storage/local/content", nil).list()
	if len(local) != 2 || local[0]["volid"] != goldenArchive || local[1]["volid"] != DefaultTemplate {
		t.Fatalf("local content = %v", local)
	}
	if local[1]["format"] != "tzst" || local[1]["content"] != "vztmpl" {
		t.Errorf("template entry = %v; PVE calls a .tar.zst template tzst", local[1])
	}
	if got := h.ok("GET", nodePath+"/storage/local/content", vals("content", "vztmpl")).list(); len(got) != 1 {
		t.Errorf("content=vztmpl = %v", got)
	}
	if got := h.ok("GET", nodePath+"/storage/local/content", vals("vmid", "9000")).list(); len(got) != 1 || got[0]["vmid"] != float64(9000) {
		t.Errorf("vmid=9000 = %v; templates are not listed with a vmid filter", got)
	}
	lvm := h.ok("GET", nodePath+"/storage/local-lvm/content", nil).list()
	if len(lvm) != 6 || lvm[0]["volid"] != "local-lvm:base-9000-disk-0" || lvm[0]["content"] != "rootdir" || lvm[0]["size"] != float64(8*gib) {
		t.Errorf("local-lvm content = %v", lvm)
	}
	h.fails("GET", nodePath+"/storage/nas/content", nil, 500, "storage 'nas' does not exist")
	r := h.fails("GET", nodePath+"/storage/local/content", vals("content", "videos"), 400, "Parameter verification failed.")
	if r.errors()["content"] != "invalid format - invalid content type 'videos'\n" {
		t.Errorf("errors = %v", r.errors())
	}
}

func TestDeleteVolume(t *testing.T) {
	h := newHarness(t)
	before := h.sim.Storages()[3].Used
	upid := h.upid("DELETE", nodePath+"/storage/usb-backup/content/"+webArchive, nil)
	if !strings.Contains(upid, ":imgdel:101@usb-backup:") {
		t.Errorf("UPID %s; want imgdel with id 101@usb-backup", upid)
	}
	log := h.wantExit(upid, "OK")
	if !containsLine(log, "Removed volume '"+webArchive+"'") {
		t.Errorf("log = %q", log)
	}
	for _, v := range h.sim.Volumes("usb-backup") {
		if v.VolID == webArchive {
			t.Error("archive still listed")
		}
	}
	if after := h.sim.Storages()[3].Used; after >= before {
		t.Errorf("usb-backup used %d -> %d; want less", before, after)
	}
	// The short form (volume name below the storage) works, as does a
	// missing volume, which PVE only warns about.
	h.wantExit(h.upid("DELETE", nodePath+"/storage/usb-backup/content/backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst", nil), "WARNINGS: 1")
	r := h.fails("DELETE", nodePath+"/storage/local/content/"+webArchive, nil, 400, "Parameter verification failed.")
	if r.errors()["volume"] != "storage ID mismatch (usb-backup != local)\n" {
		t.Errorf("errors = %v", r.errors())
	}
	h.fails("DELETE", nodePath+"/storage/local/content/local:garbage", nil, 500, "unable to parse directory volume name 'garbage'")

	if err := h.sim.AddVolume(VolumeSpec{VolID: "usb-backup:backup/vzdump-lxc-102-2026_11_01-01_00_00.tar.zst", Protected: true, Notes: "keep"}); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("DELETE", nodePath+"/storage/usb-backup/content/usb-backup:backup/vzdump-lxc-102-2026_11_01-01_00_00.tar.zst", nil),
		"cannot remove protected volume 'backup/vzdump-lxc-102-2026_11_01-01_00_00.tar.zst' on 'usb-backup'")

	// Deleting a backup needs VM.Backup on its guest; other volumes need Datastore.Allocate.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/102", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("DELETE", nodePath+"/storage/usb-backup/content/usb-backup:backup/vzdump-lxc-102-2026_11_19-03_00_48.tar.zst", nil, 403,
		"Permission check failed (/vms/102, VM.Backup)")
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/local", "Datastore.AllocateSpace"); err != nil {
		t.Fatal(err)
	}
	h.fails("DELETE", nodePath+"/storage/local/content/"+DefaultTemplate, nil, 403,
		"Permission check failed (/storage/local, Datastore.Allocate)")
}

func TestAddVolume(t *testing.T) {
	h := newHarness(t)
	volid := "usb-backup:backup/vzdump-lxc-300-2026_10_31-23_59_59.tar.gz"
	if err := h.sim.AddVolume(VolumeSpec{VolID: volid, Notes: "old box", Guest: &GuestSpec{Hostname: "oldbox", MemoryMB: 768}}); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, v := range h.sim.Volumes("usb-backup") {
		if v.VolID == volid {
			found = true
			if v.VMID != 300 || v.Format != "tar.gz" || v.Subtype != "lxc" || v.Notes != "old box" ||
				!v.CTime.Equal(time.Date(2026, 10, 31, 23, 59, 59, 0, time.Local)) || v.Size == 0 {
				t.Errorf("volume = %+v", v)
			}
		}
	}
	if !found {
		t.Fatal("AddVolume's volume not listed")
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "300", "ostemplate", volid, "restore", "1", "storage", "local-lvm")), "OK")
	if g := h.guest(300); g.Name != "oldbox" || g.Config["memory"] != "768" {
		t.Errorf("restored from AddVolume's archive: %+v", g)
	}
	for _, bad := range []VolumeSpec{
		{VolID: volid},
		{VolID: "nostorage"},
		{VolID: "nas:backup/x.tar"},
		{VolID: "local-lvm:vm-101-disk-0"},
		{VolID: "local:weird/name"},
	} {
		if err := h.sim.AddVolume(bad); err == nil {
			t.Errorf("AddVolume(%q) = nil; want an error", bad.VolID)
		}
	}
	if err := h.sim.RemoveVolume(volid); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.RemoveVolume(volid); err == nil {
		t.Error("RemoveVolume twice = nil")
	}
	if err := h.sim.AddStorage(StorageSpec{Name: "nas", Content: []string{"backup"}, Total: 10 * gib}); err != nil {
		t.Fatal(err)
	}
	if got := h.ok("GET", "/storage", vals("type", "dir")).list(); len(got) != 3 || got[1]["path"] != "/mnt/pve/nas" {
		t.Errorf("dir storages after AddStorage = %v", got)
	}
	for _, bad := range []StorageSpec{{Name: "nas"}, {Name: "x"}, {Name: "ok1", Content: []string{"movies"}}, {Name: "ok2", Total: 1, Used: 2}} {
		if err := h.sim.AddStorage(bad); err == nil {
			t.Errorf("AddStorage(%+v) = nil; want an error", bad)
		}
	}
}

func TestMountPointStorage(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.Unmount("/mnt/usb-backup"); err != nil {
		t.Fatal(err)
	}
	const inactive = "unable to activate storage 'usb-backup' - directory is expected to be a mount point but is not mounted: '/mnt/usb-backup'"
	st := h.ok("GET", nodePath+"/storage", vals("storage", "usb-backup")).list()[0]
	if st["active"] != float64(0) || st["total"] != float64(0) {
		t.Errorf("unmounted usb-backup = %v; want inactive with zero sizes", st)
	}
	if cfg := h.ok("GET", "/storage", nil).list()[3]; cfg["is_mountpoint"] != "yes" {
		t.Errorf("usb-backup config = %v; want is_mountpoint", cfg)
	}
	h.fails("GET", nodePath+"/storage/usb-backup/content", nil, 500, inactive)
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "could not activate storage 'usb-backup': "+inactive)
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "250", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm")),
		"unable to restore CT 250 - "+inactive)

	if _, err := h.sim.RootRunner().Run(t.Context(), []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=" + DefaultUSBUUID, "/mnt/usb-backup"}); err != nil {
		t.Fatal(err)
	}
	h.ok("GET", nodePath+"/storage/usb-backup/content", nil)
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "OK")
}

func TestVolumeAccess(t *testing.T) {
	h := newHarness(t)
	// A token that may back up 101 but not allocate on the storage sees
	// 101's archives and may restore them over 101, not 102's.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/usb-backup", "Datastore.AllocateSpace"); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/102", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	for _, v := range h.ok("GET", nodePath+"/storage/usb-backup/content", nil).list() {
		if v["vmid"] == float64(102) {
			t.Errorf("listed %v without VM.Backup on 102", v["volid"])
		}
	}
	dbArchive := "usb-backup:backup/vzdump-lxc-102-2026_11_19-03_00_48.tar.zst"
	h.fails("POST", nodePath+"/lxc", vals("vmid", "260", "ostemplate", dbArchive, "restore", "1", "storage", "local-lvm"), 403,
		"Permission check failed (/vms/102, VM.Backup)")
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "260", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm")), "OK")
	// Templates need only read access to their storage.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/local", "Datastore.Audit"); err != nil {
		t.Fatal(err)
	}
	if got := h.ok("GET", nodePath+"/storage/local/content", vals("content", "vztmpl")).list(); len(got) != 1 {
		t.Errorf("templates visible to an auditor: %v", got)
	}
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/local"); err != nil {
		t.Fatal(err)
	}
	h.fails("GET", nodePath+"/storage/local/content", nil, 403,
		"Permission check failed (/storage/local, Datastore.Audit|Datastore.AllocateSpace)")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "261", "ostemplate", DefaultTemplate, "storage", "local-lvm"), 403,
		"Permission check failed (/storage/local, Datastore.AllocateSpace|Datastore.Audit)")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "261", "ostemplate", "/var/lib/vz/x.tar", "storage", "local-lvm"), 500,
		"Only root can pass arbitrary filesystem paths.")
}

func TestNewDiskOnPut(t *testing.T) {
	h := newHarness(t)
	h.ok("PUT", nodePath+"/lxc/101/config", vals("mp0", "local-lvm:4,mp=/srv/data,backup=1"))
	g := h.guest(101)
	if g.Config["mp0"] != "local-lvm:vm-101-disk-1,mp=/srv/data,backup=1,size=4G" {
		t.Errorf("mp0 = %q", g.Config["mp0"])
	}
	found := false
	for _, v := range h.sim.Volumes("local-lvm") {
		found = found || v.VolID == "local-lvm:vm-101-disk-1"
	}
	if !found {
		t.Error("the new disk is not listed on local-lvm")
	}
	r := h.fails("PUT", nodePath+"/lxc/101/config", vals("mp1", "local:2,mp=/x"), 400, "Parameter verification failed.")
	if r.errors()["mp1"] != "storage 'local' does not support container directories" {
		t.Errorf("errors = %v", r.errors())
	}
	h.ok("PUT", nodePath+"/lxc/101/config", vals("delete", "mp0"))
	if _, has := h.guest(101).Config["mp0"]; has {
		t.Error("mp0 not deleted")
	}
}
