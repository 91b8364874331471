package pvesim

import (
	"strings"
	"testing"
	"time"
)

// The VM endpoints, each checked against the qemu-server behaviour it
// copies (API2/Qemu.pm, QemuServer.pm; see qemu.go).

const appArchive = "usb-backup:backup/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst"

func TestQemuReads(t *testing.T) {
	h := newHarness(t)
	list := h.ok("GET", nodePath+"/qemu", nil).list()
	if len(list) != 2 || list[0]["vmid"] != float64(CustomerApp) || list[0]["status"] != "running" || list[0]["running-qemu"] == nil ||
		list[1]["vmid"] != float64(CustomerCI) || list[1]["status"] != "stopped" {
		t.Fatalf("qemu list = %v", list)
	}
	for _, k := range []string{"maxswap", "type"} {
		if _, has := list[0][k]; has {
			t.Errorf("a VM lists no %s (QemuServer::vmstatus): %v", k, list[0])
		}
	}
	for _, g := range h.ok("GET", nodePath+"/lxc", nil).list() {
		if g["type"] != "lxc" {
			t.Errorf("container list has %v", g)
		}
	}
	st := h.ok("GET", nodePath+"/qemu/200/status/current", nil).object()
	if st["qmpstatus"] != "running" || st["name"] != "app" {
		t.Errorf("status = %v", st)
	}
	cfg := h.ok("GET", nodePath+"/qemu/200/config", nil).object()
	if cfg["name"] != "app" || cfg["cores"] != float64(4) || cfg["scsi0"] != "local-lvm:vm-200-disk-0,iothread=1,size=32G" ||
		!strings.HasPrefix(cfg["net0"].(string), "virtio=BC:24:11:") || cfg["description"] != "customer application server\n" {
		t.Errorf("config = %v", cfg)
	}
	// A VM is no container, and a container no VM: PVE looks for the
	// config file in its kind's directory.
	h.fails("GET", nodePath+"/lxc/200/config", nil, 500, "Configuration file 'nodes/demo-felhom/lxc/200.conf' does not exist")
	h.fails("GET", nodePath+"/qemu/101/status/current", nil, 500, "Configuration file 'nodes/demo-felhom/qemu-server/101.conf' does not exist")

}

func TestQemuConfigDualMode(t *testing.T) {
	h := newHarness(t)
	// POST forks a qmconfig worker; the change lands when it ends.
	upid := h.upid("POST", nodePath+"/qemu/200/config", vals("description", "changed", "net0", "virtio,bridge=vmbr0,link_down=1"))
	if !strings.Contains(upid, ":qmconfig:200:") {
		t.Errorf("UPID %s; want qmconfig", upid)
	}
	h.wantExit(upid, "OK")
	g := h.guest(200)
	if g.Description != "changed" || !strings.Contains(g.Config["net0"], ",link_down=1") || !strings.HasPrefix(g.Config["net0"], "virtio=BC:24:11:") {
		t.Errorf("after POST: %+v", g)
	}
	// PUT applies at once and answers null.
	if r := h.ok("PUT", nodePath+"/qemu/200/config", vals("delete", "description")); r.data() != nil {
		t.Errorf("PUT = %s; want data null", r.raw)
	}
	if h.guest(200).Description != "" {
		t.Error("PUT did not delete the description")
	}
	// A NIC's model is a key whose value is the MAC (keyAlias model,
	// alias macaddr in qemu-server's $net_fmt); naming the model twice is
	// refused as pve-common's parse_property_string refuses it.
	h.wantExit(h.upid("POST", nodePath+"/qemu/200/config", vals("net1", "e1000=BC:24:11:5A:09:09,bridge=vmbr0")), "OK")
	if got := h.guest(200).Config["net1"]; got != "e1000=BC:24:11:5A:09:09,bridge=vmbr0" {
		t.Errorf("net1 = %q", got)
	}
	r := h.fails("POST", nodePath+"/qemu/200/config", vals("net1", "model=virtio,e1000=BC:24:11:5A:09:09"), 400, "Parameter verification failed.")
	if e := r.errors()["net1"]; !strings.Contains(e, "key 'model' is already defined") {
		t.Errorf("errors = %v", r.errors())
	}
	if err := h.sim.SetGuestLock(200, "backup"); err != nil {
		t.Fatal(err)
	}
	h.fails("POST", nodePath+"/qemu/200/config", vals("cores", "2"), 500, "VM is locked (backup)")
}

func TestQemuPower(t *testing.T) {
	h := newHarness(t)
	// Starting a running VM is refused inside the worker (vm_start).
	h.wantExit(h.upid("POST", nodePath+"/qemu/200/status/start", nil), "VM 200 already running")
	// Stopping a stopped VM succeeds and does nothing (_do_vm_stop).
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/status/stop", nil), "OK")
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/status/shutdown", nil), "OK")
	h.fails("POST", nodePath+"/qemu/201/status/reboot", nil, 500, "VM 201 not running")
	up := h.upid("POST", nodePath+"/qemu/201/status/start", nil)
	if !strings.Contains(up, ":qmstart:201:") {
		t.Errorf("UPID %s; want qmstart", up)
	}
	h.wantExit(up, "OK")
	if h.guest(201).Status != "running" {
		t.Error("VM 201 not running after qmstart")
	}
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/status/reboot", nil), "OK")
	h.fails("DELETE", nodePath+"/qemu/201", nil, 500, "VM 201 is running - destroy failed")
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/status/shutdown", nil), "OK")
	if h.guest(201).Status != "stopped" {
		t.Error("VM 201 still running after qmshutdown")
	}
	d := h.upid("DELETE", nodePath+"/qemu/201", vals("purge", "1"))
	if !strings.Contains(d, ":qmdestroy:201:") {
		t.Errorf("UPID %s; want qmdestroy", d)
	}
	log := h.wantExit(d, "OK")
	if !containsLine(log, "purging VM 201 from related configurations..") {
		t.Errorf("log = %q", log)
	}
	if _, found := h.sim.Guest(201); found {
		t.Error("VM 201 still exists")
	}
	if err := h.sim.SetGuestLock(200, "backup"); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", nodePath+"/qemu/200/status/stop", nil), "VM is locked (backup)")
}

func TestQemuSnapshots(t *testing.T) {
	h := newHarness(t)
	up := h.upid("POST", nodePath+"/qemu/200/snapshot", vals("snapname", "before", "vmstate", "1"))
	if !strings.Contains(up, ":qmsnapshot:200:") {
		t.Errorf("UPID %s; want qmsnapshot", up)
	}
	if h.guest(200).Lock != "snapshot" {
		t.Error("no snapshot lock while it runs")
	}
	h.fails("POST", nodePath+"/qemu/200/config", vals("cores", "2"), 500, "VM is locked (snapshot)")
	log := h.wantExit(up, "OK")
	if !containsLine(log, "saving VM state and RAM using storage 'local-lvm'") || !containsLine(log, "snapshotting 'drive-scsi0' (local-lvm:vm-200-disk-0)") {
		t.Errorf("log = %q", log)
	}
	// A stopped VM has no RAM to save: vmstate is ignored.
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/snapshot", vals("snapname", "cold", "vmstate", "1")), "OK")
	list := h.ok("GET", nodePath+"/qemu/200/snapshot", nil).list()
	if len(list) != 2 || list[0]["name"] != "before" || list[0]["vmstate"] != float64(1) || list[1]["name"] != "current" {
		t.Errorf("snapshots = %v", list)
	}
	if cold := h.ok("GET", nodePath+"/qemu/201/snapshot", nil).list(); cold[0]["vmstate"] != float64(0) {
		t.Errorf("stopped VM snapshot = %v; want vmstate 0", cold[0])
	}
	// Rolling back to a snapshot with RAM resumes the VM.
	h.wantExit(h.upid("POST", nodePath+"/qemu/200/status/stop", nil), "OK")
	h.wantExit(h.upid("POST", nodePath+"/qemu/200/snapshot/before/rollback", nil), "OK")
	if h.guest(200).Status != "running" {
		t.Error("rollback to a vmstate snapshot left the VM stopped")
	}
	h.wantExit(h.upid("POST", nodePath+"/qemu/201/snapshot/cold/rollback", nil), "OK")
	if h.guest(201).Status != "stopped" {
		t.Error("rollback without vmstate started the VM")
	}
	del := h.upid("DELETE", nodePath+"/qemu/200/snapshot/before", nil)
	if !strings.Contains(del, ":qmdelsnapshot:200:") {
		t.Errorf("UPID %s; want qmdelsnapshot", del)
	}
	h.wantExit(del, "OK")
	h.wantExit(h.upid("DELETE", nodePath+"/qemu/200/snapshot/before", nil), "snapshot 'before' does not exist")
}

func TestQemuVzdumpAndRestore(t *testing.T) {
	h := newHarness(t)
	up := h.upid("POST", nodePath+"/vzdump", vals("vmid", "200,201", "storage", "usb-backup", "mode", "snapshot", "compress", "zstd"))
	if h.guest(200).Lock != "backup" {
		t.Error("no backup lock on the VM")
	}
	h.fails("POST", nodePath+"/qemu/200/config", vals("cores", "2"), 500, "VM is locked (backup)")
	log := h.wantExit(up, "OK")
	for _, want := range []string{
		"INFO: Starting Backup of VM 200 (qemu)",
		"INFO: VM Name: app",
		"INFO: include disk 'scsi0' 'local-lvm:vm-200-disk-0' 32G",
		"INFO: creating vzdump archive '/mnt/usb-backup/dump/vzdump-qemu-200-2026_11_20-03_00_01.vma.zst'",
		"INFO: Starting Backup of VM 201 (qemu)",
		"INFO: starting kvm to execute backup task",
		"INFO: stopping kvm after backup task",
	} {
		if !containsLine(log, want) {
			t.Errorf("log lacks %q:\n%s", want, strings.Join(log, "\n"))
		}
	}
	found := false
	for _, v := range h.ok("GET", nodePath+"/storage/usb-backup/content", vals("vmid", "200")).list() {
		if v["volid"] == "usb-backup:backup/vzdump-qemu-200-2026_11_20-03_00_01.vma.zst" {
			found = v["format"] == "vma.zst" && v["subtype"] == "qemu"
		}
	}
	if !found {
		t.Error("new VM archive not listed as vma.zst/qemu")
	}

	// Restore: an existing id without force is refused with the kind
	// that holds it; a container's id too.
	h.fails("POST", nodePath+"/qemu", vals("vmid", "200", "archive", appArchive), 500,
		"unable to restore VM 200 - VM 200 already exists on node 'demo-felhom'")
	h.fails("POST", nodePath+"/qemu", vals("vmid", "101", "archive", appArchive, "force", "1"), 500,
		"unable to restore VM 101 - CT 101 already exists on node 'demo-felhom'")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "200", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm"), 500,
		"VM 200 already exists on node 'demo-felhom'")
	r := h.upid("POST", nodePath+"/qemu", vals("vmid", "250", "archive", appArchive, "storage", "local-lvm", "unique", "1", "start", "1"))
	if !strings.Contains(r, ":qmrestore:250:") {
		t.Errorf("UPID %s; want qmrestore", r)
	}
	rlog := h.wantExit(r, "OK")
	if !containsLine(rlog, "new volume ID is 'local-lvm:vm-250-disk-0'") {
		t.Errorf("restore log = %q", rlog)
	}
	g := h.guest(250)
	if g.Type != "qemu" || g.Config["name"] != "app" || g.Config["scsi0"] != "local-lvm:vm-250-disk-0,iothread=1,size=32G" ||
		g.Config["net0"] == h.guest(200).Config["net0"] {
		t.Errorf("restored VM = %+v", g)
	}
	h.finish(r)
	if h.guest(250).Status != "running" {
		t.Error("start=1 did not start the restored VM")
	}
	// A container archive is no VM's.
	h.wantExit(h.upid("POST", nodePath+"/qemu", vals("vmid", "251", "archive", webArchive)), "unable to restore VM 251 - archive '"+webArchive+"' is not a VM backup (it holds a lxc)")
	if _, found := h.sim.Guest(251); found {
		t.Error("failed restore left VM 251")
	}
}

func TestPBSStorage(t *testing.T) {
	h := newHarness(t)
	content := h.ok("GET", nodePath+"/storage/pbs-backup/content", nil).list()
	if len(content) != 2 || content[0]["volid"] != "pbs-backup:backup/ct/101/2026-11-17T02:00:00Z" || content[0]["format"] != "pbs-ct" ||
		content[0]["protected"] != float64(1) || content[0]["verification"].(map[string]any)["state"] != "ok" ||
		content[1]["format"] != "pbs-vm" || content[1]["subtype"] != "qemu" {
		t.Fatalf("pbs content = %v", content)
	}
	up := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,200", "storage", "pbs-backup", "mode", "snapshot", "remove", "1", "prune-backups", "keep-last=1"))
	log := h.wantExit(up, "OK")
	for _, want := range []string{
		"INFO: creating Proxmox Backup Server archive 'ct/101/2026-11-20T03:00:01Z'",
		"INFO: creating Proxmox Backup Server archive 'vm/200/2026-11-20T03:00:11Z'",
		"INFO: running 'proxmox-backup-client prune' for 'ct/101'",
		"INFO: running 'proxmox-backup-client prune' for 'vm/200'",
	} {
		if !containsLine(log, want) {
			t.Errorf("log lacks %q:\n%s", want, strings.Join(log, "\n"))
		}
	}
	var ids []string
	for _, v := range h.sim.Volumes(PBSStorage) {
		ids = append(ids, v.VolID)
	}
	// keep-last=1 keeps the new snapshots; the protected old one of 101
	// stays, the unprotected one of 200 goes.
	want := []string{
		"pbs-backup:backup/ct/101/2026-11-17T02:00:00Z",
		"pbs-backup:backup/ct/101/2026-11-20T03:00:01Z",
		"pbs-backup:backup/vm/200/2026-11-20T03:00:11Z",
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("pbs volumes = %v; want %v", ids, want)
	}
	// Restores take PBS volids.
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "140", "ostemplate", want[0], "restore", "1", "storage", "local-lvm")), "OK")
	h.wantExit(h.upid("POST", nodePath+"/qemu", vals("vmid", "240", "archive", want[2], "storage", "local-lvm")), "OK")
	if h.guest(140).Config["hostname"] != "web" || h.guest(240).Config["name"] != "app" {
		t.Errorf("restored from PBS: %+v %+v", h.guest(140), h.guest(240))
	}
	if err := h.sim.SetVerification(want[1], "failed"); err != nil {
		t.Fatal(err)
	}
	if v := h.sim.Volumes(PBSStorage)[1]; v.Verification != "failed" {
		t.Errorf("verification = %q; want failed", v.Verification)
	}
}

func TestZFSPool(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddStorage(StorageSpec{Name: "local-zfs", Type: "zfspool", Content: []string{"images", "rootdir"}}); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "150", "ostemplate", webArchive, "restore", "1", "storage", "local-zfs")), "OK")
	if rootfs := h.guest(150).Config["rootfs"]; !strings.HasPrefix(rootfs, "local-zfs:subvol-150-disk-0,") {
		t.Errorf("rootfs = %q; want a subvol", rootfs)
	}
	vols := h.ok("GET", nodePath+"/storage/local-zfs/content", nil).list()
	if len(vols) != 1 || vols[0]["format"] != "subvol" || vols[0]["content"] != "rootdir" {
		t.Errorf("zfs content = %v", vols)
	}
	if cfg := h.ok("GET", "/storage", vals("type", "zfspool")).list(); len(cfg) != 1 || cfg[0]["pool"] != "rpool/data" {
		t.Errorf("zfs config = %v", cfg)
	}
	for _, name := range []string{"first", "second"} {
		h.clock.Advance(61e9)
		h.wantExit(h.upid("POST", nodePath+"/lxc/150/snapshot", vals("snapname", name)), "OK")
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc/150/snapshot/first/rollback", nil),
		"can't rollback, 'first' is not most recent snapshot on 'local-zfs:subvol-150-disk-0'")
	h.wantExit(h.upid("POST", nodePath+"/lxc/150/snapshot/second/rollback", nil), "OK")
}

// TestZFSRollbackOrderWithinASecond: snapshots made in the same second are
// ordered as they were made, as zfs list -s creation keeps them.
func TestZFSRollbackOrderWithinASecond(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddStorage(StorageSpec{Name: "local-zfs", Type: "zfspool", Content: []string{"images", "rootdir"}}); err != nil {
		t.Fatal(err)
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "150", "ostemplate", webArchive, "restore", "1", "storage", "local-zfs")), "OK")
	for _, name := range []string{"zz_first", "aa_second"} {
		if err := h.sim.AddSnapshot(150, name, ""); err != nil { // both at the same instant
			t.Fatal(err)
		}
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc/150/snapshot/zz_first/rollback", nil),
		"can't rollback, 'zz_first' is not most recent snapshot on 'local-zfs:subvol-150-disk-0'")
	h.wantExit(h.upid("POST", nodePath+"/lxc/150/snapshot/aa_second/rollback", nil), "OK")
}

// TestPruneInLocalTime: prune periods are the host's local days
// (prune_mark_backup_group's localtime), also for PBS snapshots whose
// ctimes come in UTC. In UTC+2, 23:30 UTC is the next local day.
func TestPruneInLocalTime(t *testing.T) {
	local := time.FixedZone("UTC+2", 2*3600)
	at := func(s string) *volume {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &volume{volid: s, ctime: ts.UTC()}
	}
	late, early := at("2026-11-19T23:30:00Z"), at("2026-11-19T08:00:00Z")
	marks := pruneMarks([]*volume{late, early}, map[string]string{"keep-daily": "2"}, local)
	if marks[late] != "keep" || marks[early] != "keep" {
		t.Errorf("marks = %v %v; want both kept (two local days)", marks[late], marks[early])
	}
	if marks := pruneMarks([]*volume{late, early}, map[string]string{"keep-daily": "2"}, time.UTC); marks[late] != "keep" || marks[early] != "remove" {
		t.Errorf("in UTC, marks = %v %v; want keep, remove (one day)", marks[late], marks[early])
	}
}
