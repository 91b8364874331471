package builtins

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
)

// e2eRig serves a fresh simulated host over TLS and returns a run's Env
// whose client pins the server's certificate, as the agent does with a
// real host, and whose host operations run through the simulator's root
// runner.
func e2eRig(t *testing.T) (*pvesim.Sim, *Env) {
	t.Helper()
	sim := &pvesim.Sim{TaskDuration: time.Millisecond}
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	_, client := pvetest.Serve(t, sim)
	priv, err := proxmox.NewPrivileged(proxmox.PrivilegedConfig{MountPrefix: "/mnt"}, sim.RootRunner())
	if err != nil {
		t.Fatal(err)
	}
	return sim, &Env{
		Context: t.Context(),
		Logger:  slog.New(slog.DiscardHandler),
		Proxmox: client,
		Host:    priv,
		Locks:   newFakeLocks(&eventLog{}),
		Wait:    proxmox.WaitOptions{MinInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond},
	}
}

// TestEndToEnd runs the modules against the simulator: reads, a backup
// and its archive, snapshots, power, configuration, a restore from the
// new archive, task inspection, monitors and the fenced host operations.
func TestEndToEnd(t *testing.T) {
	sim, env := e2eRig(t)
	_, err := runStar(t, env, `
v = proxmox.version()
assert.true(v.version.startswith("8."), v.version)
assert.contains([g.vmid for g in proxmox.guests()], 101)
assert.eq(proxmox.guest(101).running, True)
assert.eq(proxmox.config(101).hostname, "web")

b = proxmox.vzdump(101, storage = "usb-backup", notes = "e2e")
assert.eq(b.ok, True)
assert.true(b.volid.startswith("usb-backup:backup/vzdump-lxc-101-"), b.volid)
assert.contains([x.volid for x in proxmox.content("usb-backup", content = "backup", vmid = 101)], b.volid)
assert.eq(task.log(b)[-1], "TASK OK")
assert.eq(task.status(b.upid).ok, True)

s = proxmox.snapshot(101, "e2e_snap", description = "before")
assert.eq(s.type, "vzsnapshot")
assert.contains([x.name for x in proxmox.snapshots(101)], "e2e_snap")
proxmox.rollback(101, "e2e_snap")
proxmox.delete_snapshot(101, "e2e_snap")
assert.true("e2e_snap" not in [x.name for x in proxmox.snapshots(101)])

if not proxmox.guest(101).running:  # PVE stops a container to roll it back
    proxmox.start(101)
proxmox.shutdown(101, timeout = 10)
assert.eq(proxmox.guest(101).status, "stopped")
pending = proxmox.start(101, wait = False)
assert.eq(pending.status, "running")
assert.eq(task.wait(pending).ok, True)
assert.eq(proxmox.guest(101).status, "running")

c = proxmox.set_config(101, set = {"description": "set by e2e", "cores": 2, "onboot": True})
assert.eq(c.sync, True)
cfg = proxmox.config(101)
assert.eq(cfg.description, "set by e2e\n")
assert.eq(cfg.cores, 2)
assert.eq(cfg.onboot, True)

id = proxmox.next_id()
r = proxmox.restore(id, b.volid, storage = "local-lvm", unique = True)
assert.eq(r.type, "vzrestore")
assert.eq(proxmox.config(id).hostname, "web")
proxmox.delete_guest(id, purge = True)
assert.true(id not in [g.vmid for g in proxmox.guests()])

proxmox.delete_volume("usb-backup", b.volid)
assert.true(b.volid not in [x.volid for x in proxmox.content("usb-backup")])

assert.true(len(proxmox.tasks(type = "vzdump")) >= 1)
assert.true(len(proxmox.node_storages()) >= 3)
assert.true(len(proxmox.disks()) >= 1)

m = monitor.all()
assert.eq(m.errors, {})  # no monitor failed
assert.true(m.node.mem_total > 0)
assert.true(len(m.smart) >= 1)
assert.eq(m.smart[0].source, "smartctl")
assert.true(len(m.sensors) >= 1)

assert.eq(host.smart("/dev/sda").passed, True)
assert.true(len(host.sensors()) >= 1)
assert.eq(host.mount_usb("`+pvesim.DefaultUSBUUID+`", "/mnt/usb-e2e"), "/mnt/usb-e2e")
assert.fails(lambda: host.smart("/dev/sdz"), "^host.smart: /dev/sdz")  # named once
`)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sim.RootRunner().Calls()); n == 0 {
		t.Error("no root command reached the simulator")
	}
}

// TestEndToEndGolden creates a golden container through the fenced pct.
func TestEndToEndGolden(t *testing.T) {
	_, env := e2eRig(t)
	_, err := runStar(t, env, `
gid = proxmox.next_id()
assert.eq(host.create_golden(gid, "`+pvesim.DefaultTemplate+`", "golden-e2e"), None)
assert.eq(proxmox.config(gid).hostname, "golden-e2e")
`)
	if err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndTypedErrors: a privilege PVE checks only inside the task and
// a guest lock reach Go as typed errors through the script.
func TestEndToEndTypedErrors(t *testing.T) {
	sim, env := e2eRig(t)
	if err := sim.DenyAtTaskTime("/storage/usb-backup", "Datastore.AllocateSpace"); err != nil {
		t.Fatal(err)
	}
	_, err := runStar(t, env, `proxmox.vzdump(101, storage = "usb-backup")`)
	te, ok := errors.AsType[*proxmox.TaskError](err)
	if !ok || te.Permission == nil || !slices.Contains(te.Permission.Privileges, "Datastore.AllocateSpace") {
		t.Errorf("vzdump with a task-time denial: err = %v; want a *proxmox.TaskError naming Datastore.AllocateSpace", err)
	}

	if err := sim.SetGuestLock(102, "backup"); err != nil {
		t.Fatal(err)
	}
	_, err = runStar(t, env, `proxmox.stop(102)`)
	if lock, ok := proxmox.IsLocked(err); !ok || lock != "backup" {
		t.Errorf("stop of a locked guest: err = %v; want IsLocked = backup", err)
	}
	_, err = runStar(t, env, `proxmox.guest(4242)`)
	if !proxmox.IsNotFound(err) {
		t.Errorf("missing guest: err = %v; want IsNotFound", err)
	}
}

// TestEndToEndVM drives a VM and PBS through the real client against the
// simulator: the same calls as for a container reach the qemu endpoints.
func TestEndToEndVM(t *testing.T) {
	sim, env := e2eRig(t)
	_, err := runStar(t, env, `
vm = proxmox.guest(200)
assert.eq(vm.type, "qemu")
assert.eq(vm.qmpstatus, "running")
cfg = proxmox.config(200)
assert.eq(cfg.name, "app")
assert.eq(cfg.drives["scsi0"].volume, "local-lvm:vm-200-disk-0")
assert.eq(cfg.nets["net0"].model, "virtio")
assert.eq([(g.vmid, g.type) for g in proxmox.guests() if g.vmid in (101, 200)], [(101, "lxc"), (200, "qemu")])

s = proxmox.snapshot(200, "e2e_vm", vmstate = True)
assert.eq(s.type, "qmsnapshot")
assert.eq([(x.name, x.vmstate) for x in proxmox.snapshots(200)], [("e2e_vm", True)])
proxmox.stop(200)
proxmox.rollback(200, "e2e_vm")
assert.eq(proxmox.guest(200).status, "running")  # the RAM came back with the snapshot
proxmox.delete_snapshot(200, "e2e_vm")
assert.fails(lambda: proxmox.snapshot(101, "xx", vmstate = True), "vmstate applies only to QEMU VMs; guest 101 is an LXC container")

c = proxmox.set_config(200, set = {"description": "vm by e2e"})
assert.eq(c.type, "qmconfig")
assert.eq(c.sync, False)
assert.eq(proxmox.config(200).description, "vm by e2e\n")
assert.eq(proxmox.reboot(200).type, "qmreboot")

b = proxmox.vzdump(200, storage = "usb-backup")
assert.true(b.volid.startswith("usb-backup:backup/vzdump-qemu-200-"), b.volid)
p = proxmox.vzdump(200, storage = "pbs-backup")
assert.true(p.volid.startswith("pbs-backup:backup/vm/200/"), p.volid)
listed = [x for x in proxmox.content("pbs-backup", vmid = 200) if x.volid == p.volid]
assert.eq(listed[0].format, "pbs-vm")

r = proxmox.restore(260, p.volid, storage = "local-lvm", unique = True)
assert.eq(r.type, "qmrestore")
assert.eq(proxmox.guest(260).type, "qemu")
proxmox.delete_guest(260, purge = True)
assert.true(260 not in [g.vmid for g in proxmox.guests()])
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SetGuestLock(201, "backup"); err != nil {
		t.Fatal(err)
	}
	_, err = runStar(t, env, `proxmox.start(201)`)
	if lock, ok := proxmox.IsLocked(err); !ok || lock != "backup" {
		t.Errorf("start of a locked VM: err = %v; want IsLocked = backup", err)
	}
}
