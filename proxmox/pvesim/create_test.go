package pvesim

import (
	"strings"
	"testing"
)

const webArchive = "usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst"
const goldenArchive = "local:backup/vzdump-lxc-9000-2026_11_01-02_00_00.tar.zst"

func TestRestoreNewGuest(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/lxc", vals("vmid", "130", "ostemplate", goldenArchive, "restore", "1",
		"storage", "local-lvm", "hostname", "customer3", "unique", "1", "start", "1"))
	if !strings.Contains(upid, ":vzrestore:130:") {
		t.Errorf("UPID %s; want vzrestore of 130", upid)
	}
	if g := h.guest(130); g.Lock != "create" {
		t.Errorf("guest while restoring = %+v; want only a create lock", g)
	}
	h.fails("POST", nodePath+"/lxc", vals("vmid", "130", "ostemplate", goldenArchive, "restore", "1", "storage", "local-lvm"),
		500, "CT 130 already exists on node 'demo-felhom'")
	log := h.wantExit(upid, "OK")
	if !containsLine(log, "recovering backed-up configuration from '"+goldenArchive+"'") {
		t.Errorf("log:\n%s", strings.Join(log, "\n"))
	}
	// The default world's golden archive was made before 9000 became a
	// template, so the guest is a regular one, started by the vzstart
	// worker that start=1 forks (a task of its own, as in PVE).
	tasks := h.sim.Tasks()
	last := tasks[len(tasks)-1]
	if last.Type != "vzstart" || last.ID != "130" {
		t.Errorf("last task = %+v; want the forked vzstart", last)
	}
	h.wantExit(last.UPID, "OK")
	g := h.guest(130)
	if g.Template || g.Status != "running" || g.Name != "customer3" {
		t.Errorf("restored golden = %+v; want a running guest named customer3", g)
	}
}

func TestRestoreCustomerArchive(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/lxc", vals("vmid", "131", "ostemplate", webArchive, "restore", "1",
		"storage", "local-lvm", "hostname", "web-copy", "unique", "1", "start", "1"))
	h.wantExit(upid, "OK")
	g := h.guest(131)
	web := h.guest(101)
	if g.Status != "running" || g.Name != "web-copy" || g.Lock != "" {
		t.Errorf("restored guest = %+v; want running web-copy, unlocked", g)
	}
	if g.Config["rootfs"] != "local-lvm:vm-131-disk-0,size=8G" || g.Config["memory"] != web.Config["memory"] {
		t.Errorf("restored config = %v", g.Config)
	}
	if g.Config["net0"] == web.Config["net0"] || !strings.Contains(g.Config["net0"], "hwaddr=BC:24:11:") {
		t.Errorf("unique=1 must give new MACs: %q vs %q", g.Config["net0"], web.Config["net0"])
	}
	if g.Description != web.Description {
		t.Errorf("description %q; want the archive's %q", g.Description, web.Description)
	}
}

func TestRestoreTemplateArchive(t *testing.T) {
	h := newHarness(t)
	// An archive of a template keeps template=1, and PVE restores it as a
	// template again (on a base volume), which cannot be started.
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "9000", "storage", "local")), "OK")
	var archive string
	for _, v := range h.sim.Volumes("local") {
		if strings.Contains(v.VolID, "vzdump-lxc-9000-") && v.VolID != goldenArchive {
			archive = v.VolID
		}
	}
	if archive == "" {
		t.Fatal("no new archive of the template")
	}
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "202", "ostemplate", archive, "restore", "1", "storage", "local-lvm")), "OK")
	g := h.guest(202)
	if !g.Template || g.Config["rootfs"] != "local-lvm:base-202-disk-0,size=8G" || g.Config["features"] != "keyctl=1,nesting=1" {
		t.Errorf("restored golden = %+v; want a template on a base volume with keyctl", g)
	}
}

func TestRestoreOverwrite(t *testing.T) {
	h := newHarness(t)
	p := vals("vmid", "101", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm")
	h.fails("POST", nodePath+"/lxc", p, 500, "CT 101 already exists on node 'demo-felhom'")
	p.Set("force", "1")
	h.fails("POST", nodePath+"/lxc", p, 500, "can't overwrite running container")
	h.wantExit(h.upid("POST", nodePath+"/lxc/101/status/stop", nil), "OK")
	h.ok("PUT", nodePath+"/lxc/101/config", vals("memory", "8192", "description", "changed"))
	if err := h.sim.AddSnapshot(101, "old", ""); err != nil {
		t.Fatal(err)
	}
	upid := h.upid("POST", nodePath+"/lxc", p)
	if h.guest(101).Lock != "create" {
		t.Error("an overwriting restore holds the create lock")
	}
	h.wantExit(upid, "OK")
	g := h.guest(101)
	if g.Config["memory"] != "2048" || g.Description != "customer web server" || len(g.Snapshots) != 0 || g.Status != "stopped" {
		t.Errorf("after overwrite: memory %s description %q snapshots %d status %s", g.Config["memory"], g.Description, len(g.Snapshots), g.Status)
	}
	if h.sim.Mutations(101) != 5 {
		t.Errorf("Mutations(101) = %d; want 5", h.sim.Mutations(101))
	}
}

func TestRestoreFailures(t *testing.T) {
	h := newHarness(t)
	// The API's default storage is local, which holds no container disks.
	r := h.fails("POST", nodePath+"/lxc", vals("vmid", "203", "ostemplate", webArchive, "restore", "1"), 400, "Parameter verification failed.")
	if r.errors()["storage"] != "storage 'local' does not support container directories" {
		t.Errorf("errors = %v", r.errors())
	}
	h.fails("POST", nodePath+"/lxc", vals("vmid", "203", "ostemplate", DefaultTemplate, "restore", "1", "storage", "local-lvm"), 500,
		"unable to use volume "+DefaultTemplate+" - content type needs to be 'backup'")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "203", "ostemplate", "nas:backup/x.tar", "restore", "1", "storage", "local-lvm"), 500,
		"storage 'nas' does not exist")
	r = h.fails("POST", nodePath+"/lxc", vals("vmid", "203", "ostemplate", webArchive, "unique", "1", "storage", "local-lvm"), 400, "Parameter verification failed.")
	if r.errors()["restore"] != "missing property required by 'unique'" {
		t.Errorf("errors = %v", r.errors())
	}

	// A missing archive fails in the worker and the placeholder goes away.
	gone := "usb-backup:backup/vzdump-lxc-101-2020_01_01-00_00_00.tar.zst"
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "203", "ostemplate", gone, "restore", "1", "storage", "local-lvm")),
		"unable to restore CT 203 - volume '"+gone+"' does not exist")
	if _, ok := h.sim.Guest(203); ok {
		t.Error("a failed restore left its guest")
	}

	// An injected failure too.
	h.sim.FailNextTask("vzrestore", 204, "extracting archive failed")
	h.wantExit(h.upid("POST", nodePath+"/lxc", vals("vmid", "204", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm")),
		"extracting archive failed")
	if _, ok := h.sim.Guest(204); ok {
		t.Error("a failed restore left its guest")
	}

	// Restoring over a guest the token may only back up needs force.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/102", "VM.Audit", "VM.Backup"); err != nil {
		t.Fatal(err)
	}
	h.fails("POST", nodePath+"/lxc", vals("vmid", "102", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm"), 500,
		"CT 102 already exists on node 'demo-felhom'")
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/205", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("POST", nodePath+"/lxc", vals("vmid", "205", "ostemplate", webArchive, "restore", "1", "storage", "local-lvm"), 403,
		"Permission check failed")
}

func TestCreateFromTemplate(t *testing.T) {
	h := newHarness(t)
	upid := h.upid("POST", nodePath+"/lxc", vals("vmid", "300", "ostemplate", DefaultTemplate, "storage", "local-lvm",
		"hostname", "fresh", "cores", "2", "memory", "1024", "net0", "name=eth0,bridge=vmbr0,ip=dhcp", "features", "nesting=1"))
	if !strings.Contains(upid, ":vzcreate:300:") {
		t.Errorf("UPID %s; want vzcreate", upid)
	}
	h.wantExit(upid, "OK")
	g := h.guest(300)
	if g.Config["rootfs"] != "local-lvm:vm-300-disk-0,size=4G" || g.Config["unprivileged"] != "1" || g.Config["ostype"] != "debian" ||
		!strings.Contains(g.Config["net0"], "hwaddr=BC:24:11:") || g.Status != "stopped" {
		t.Errorf("created guest = %+v", g)
	}
	// keyctl is root's: the reason the golden image is made with pct.
	h.fails("POST", nodePath+"/lxc", vals("vmid", "301", "ostemplate", DefaultTemplate, "storage", "local-lvm", "features", "keyctl=1,nesting=1"), 403,
		"Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "301", "ostemplate", DefaultTemplate, "storage", "local-lvm", "unprivileged", "0"), 403,
		"Permission check failed (/, Sys.Modify)")
	h.fails("POST", nodePath+"/lxc", vals("vmid", "301", "ostemplate", webArchive, "storage", "local-lvm"), 500,
		"unable to use volume "+webArchive+" - content type needs to be 'vztmpl'")
}
