package playtest

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// SimTable is the `sim` module of playbook tests: it shapes the fresh
// simulated host each test function gets (guests, storages, privileges,
// faults, failing tasks) and reads back what the test did to it. It exists
// only in *_test.star files.
var SimTable = &builtins.Table{
	Effect: builtins.Benign, // the simulated world only
	Name:   "sim",
	Doc:    "Shapes and inspects the simulated Proxmox VE host of the running test. Every test function starts on a fresh default world: node demo-felhom; containers 9999 (selftest, running, scratch), 9000 (golden, a stopped template), 101 (web) and 102 (db), both running; VMs 200 (app, running) and 201 (build, stopped); storages local, local-lvm, usb-backup (an archive of 101, 102, 200 and 201) and pbs-backup (a Proxmox Backup Server datastore with snapshots of 101 and 200).",
	Funcs: []builtins.Func{
		{Name: "cluster", Journal: builtins.Pure, Sig: "cluster(nodes=3)", Doc: "Replaces the test's world with a Proxmox VE cluster of nodes pve1..pveN (2 to 9), the agent and run_playbook on pve1: the default world's guests and storages on pve1, guests 110 (shop, a running container) and 210 (erp, a running VM) on pve2, 120 (mail, HA-managed) and 121 (wiki, stopped) on pve3, the shared backup storage nas-backup. Call it first: what was shaped before is gone.", Fn: simCluster},
		{Name: "unprivileged", Journal: builtins.Pure, Sig: "unprivileged()", Doc: "Replaces the test's world with the default single node whose agent has privileged operations disabled, as privileged.enabled = false leaves it: host.* and the monitors that need root (sensors) fail saying so, SMART is read through the API. Call it first: what was shaped before is gone.", Fn: simUnprivileged},
		{Name: "add_guest", Journal: builtins.Pure, Sig: `add_guest(vmid, hostname="", running=True, template=False, cores=1, memory=512, description="", lock="", type="lxc", node="")`, Doc: `Adds a guest: an LXC container, or with type = "qemu" a VM (hostname is then its name); node is the cluster node it is on ("" the agent's).`, Fn: simAddGuest},
		{Name: "migrate", Journal: builtins.Pure, Sig: "migrate(vmid, node)", Doc: "Moves a guest to another node of the cluster at once, as a finished migration leaves it (its config and local disks with it), without a task.", Fn: simMigrate},
		{Name: "node_online", Journal: builtins.Pure, Sig: "node_online(node, online)", Doc: "Takes a cluster node down (online = False) or brings it back: requests for it fail as PVE fails when it cannot reach a node (595 \"No route to host\"), and without a majority online the cluster has no quorum.", Fn: simNodeOnline},
		{Name: "remove_guest", Journal: builtins.Pure, Sig: "remove_guest(vmid)", Doc: "Removes a guest and its disks.", Fn: simVMID(func(s *pvesim.Sim, vmid int) (starlark.Value, error) { return none(s.RemoveGuest(vmid)) })},
		{Name: "set_status", Journal: builtins.Pure, Sig: `set_status(vmid, status)`, Doc: `Sets a guest "running" or "stopped" without a task.`, Fn: simSetStatus},
		{Name: "lock", Journal: builtins.Pure, Sig: `lock(vmid, lock="backup")`, Doc: `Puts a lock on a guest's config, as a task of another client would ("" unlocks); mutations then fail with PVE's "CT is locked (backup)".`, Fn: simLock},
		{Name: "guest", Journal: builtins.Pure, Sig: "guest(vmid)", Doc: "Returns the guest as the simulator holds it: struct(type (\"lxc\" or \"qemu\"), vmid, node, name, status, lock, template, description, config (dict), snapshots (list of names)), or None.", Fn: simVMID(guestValue), Returns: simGuestShape},
		{Name: "guests", Journal: builtins.Pure, Sig: "guests()", Doc: "Returns the vmids of all guests, sorted.", Fn: simGuests},
		{Name: "add_storage", Journal: builtins.Pure, Sig: `add_storage(name, type="dir", content=["backup"], total=0, used=0, prune_backups="", verify_new="")`, Doc: `Adds a storage (type "dir", "lvmthin", "zfspool" or "pbs", a Proxmox Backup Server holding backups only); total 0 means 1 TiB; prune_backups is its retention setting, e.g. "keep-last=3"; verify_new ("ok" or "failed") makes a PBS datastore verify each new snapshot with that outcome.`, Fn: simAddStorage},
		{Name: "set_storage_usage", Journal: builtins.Pure, Sig: "set_storage_usage(name, total, used)", Doc: "Sets a storage's size and usage in bytes.", Fn: simStorageUsage},
		{Name: "fill_storage", Journal: builtins.Pure, Sig: "fill_storage(name)", Doc: "Fills a storage: nothing more fits, and a vzdump to it fails as PVE's does.", Fn: simFill},
		{Name: "add_volume", Journal: builtins.Pure, Sig: `add_volume(volid, size=0, notes="", protected=False, verification="")`, Doc: `Puts a file volume (a backup archive, a template) on a storage, or a snapshot on a PBS storage ("pbs-backup:backup/vm/200/2026-11-01T03:00:00Z"); verification is a PBS snapshot's state ("ok", "failed").`, Fn: simAddVolume},
		{Name: "set_verification", Journal: builtins.Pure, Sig: "set_verification(volid, state)", Doc: `Sets a PBS snapshot's verification state ("ok", "failed", "" for never verified), as a PBS verify job would.`, Fn: simSetVerification},
		{Name: "volumes", Journal: builtins.Pure, Sig: "volumes(storage)", Doc: "Returns the volids on a storage, sorted.", Fn: simVolumes},
		{Name: "notes", Journal: builtins.Pure, Sig: "notes(volid)", Doc: "Returns a backup archive's whole notes as the simulator holds them (\"\" for none), e.g. the line a restore drill records.", Fn: simNotes},
		{Name: "set_privileges", Journal: builtins.Pure, Sig: `set_privileges(privileges, path="/")`, Doc: "Replaces the agent token's privileges on an ACL path (checked when a request arrives).", Fn: simPrivileges},
		{Name: "deny_at_task", Journal: builtins.Pure, Sig: "deny_at_task(privilege, path)", Doc: "Lets requests pass but makes tasks touching path fail with `Permission check failed (path, privilege)` when they run.", Fn: simDenyAtTask},
		{Name: "fail_task", Journal: builtins.Pure, Sig: `fail_task(type, vmid=0, message="simulated task failure", always=False)`, Doc: "Makes the next task of a worker type (vzdump, vzrestore, vzstart, ...) on vmid (0: any) stop with message as its error; always=True makes every such task fail.", Fn: simFailTask},
		{Name: "task_duration", Journal: builtins.Pure, Sig: "task_duration(duration)", Doc: "Sets how long every task started from now on runs (\"2s\", a duration, or seconds); tests start with 5ms. To test what happens over hours or weeks, move the clock with advance() instead.", Fn: simTaskDuration},
		{Name: "now", Journal: builtins.Pure, Sig: "now()", Doc: "Returns the test's time: the one clock of the simulated host (task ends, snapshot and archive times and names) and of time.now() in the test and in every playbook it runs. It starts at the wall clock's time.", Fn: simNow},
		{Name: "advance", Journal: builtins.Pure, Sig: "advance(duration)", Doc: "Moves the test's clock forward by duration (\"25h\", a duration, or seconds) at once, and returns the new time; tasks whose end it passes stop. A retention test over weeks advances a day at a time and runs in milliseconds.", Fn: simAdvance},
		{Name: "add_snapshot", Journal: builtins.Pure, Sig: `add_snapshot(vmid, name, description="")`, Doc: "Gives a guest a snapshot of its current config at once, without a task, dated now on the test's clock.", Fn: simAddSnapshot},
		{Name: "add_archive", Journal: builtins.Pure, Sig: `add_archive(vmid, storage="usb-backup", notes="", protected=False)`, Doc: "Puts a backup of guest vmid on storage at once, without a task, dated and named now on the test's clock as vzdump names it for the guest's kind (vzdump-lxc-VMID-YYYY_MM_DD-HH_MM_SS.tar.zst, vzdump-qemu-VMID-….vma.zst, or ct/VMID/… and vm/VMID/… on a PBS storage), and returns its volid. Two in one second clash: advance the clock between them.", Fn: simAddArchive},
		{Name: "fault", Journal: builtins.Pure, Sig: "fault(spec)", Doc: "Injects a fault in the simulator's grammar, e.g. \"503:GET:/nodes/*/status:count=2\", \"drop:GET:/nodes/*/tasks/*/status:count=1\" or \"latency:200ms\". Reads retry a 502, 503, 595, 596 or dropped connection for 1 s in a test (proxmox.read_retry_budget is 30 s on a host): a fault with a count is ridden out, one without is an outage the flow sees.", Fn: simFault},
		{Name: "set_disk", Journal: builtins.Pure, Sig: "set_disk(device, passed=True, reallocated=0, temperature=0)", Doc: "Sets the SMART state of a disk (/dev/sda, /dev/sdb).", Fn: simDisk},
		{Name: "set_temperature", Journal: builtins.Pure, Sig: "set_temperature(label, celsius)", Doc: "Sets a sensor's temperature (as `sensors -j` shows it).", Fn: simTemperature},
		{Name: "set_rootfs", Journal: builtins.Pure, Sig: "set_rootfs(used_percent)", Doc: "Sets the node's root filesystem usage.", Fn: simRootFS},
		{Name: "tunnel_down", Journal: builtins.Pure, Sig: "tunnel_down()", Doc: "Takes the tunnel endpoint that monitor.tunnel() checks down (it is up when a test starts).", Fn: simTunnelDown},
		{Name: "mutations", Journal: builtins.Pure, Sig: "mutations(vmid)", Doc: "Returns how many mutating requests reached guest vmid.", Fn: simVMID(func(s *pvesim.Sim, vmid int) (starlark.Value, error) { return starlark.MakeInt(s.Mutations(vmid)), nil })},
		{Name: "requests", Journal: builtins.Pure, Sig: "requests()", Doc: "Returns how many API requests the simulator answered.", Fn: simRequests},
		{Name: "tasks", Journal: builtins.Pure, Sig: "tasks()", Doc: "Returns every task started, oldest first: struct(upid, type, id, running, exitstatus).", Fn: simTasks, Returns: builtins.ListOf(simTaskShape)},
		{Name: "set_desired_state", Journal: builtins.Pure, Sig: "set_desired_state(doc, generation=0)", Doc: "Makes doc (a dict) the desired state hub.desired_state() returns, under generation (0: the next one), which it returns; fails naming what the agent's schema refuses.", Fn: simSetDesired},
		{Name: "root_calls", Journal: builtins.Pure, Sig: "root_calls()", Doc: "Returns every argv the fenced root runner was given.", Fn: simRootCalls},
	},
}

const simKey = "felhom.playtest.sim"

// The shapes of what sim.guest and sim.tasks return, for check.
var (
	simGuestShape = builtins.StructShape("simulated guest", "vmid", "node", "name", "status", "lock", "template", "description", "config", "snapshots", "type")
	simTaskShape  = builtins.StructShape("simulated task", "upid", "type", "id", "running", "exitstatus")
)

// builtinFn is the signature of a Starlark builtin's implementation.
type builtinFn = func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// withSim unpacks the arguments into pairs (as starlark.UnpackArgs), then
// calls f with the running test's simulator. f's error is wrapped with the
// builtin's name; a nil value is None.
func withSim(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple,
	f func(*pvesim.Sim) (starlark.Value, error), pairs ...any) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		if strings.Contains(err.Error(), "unexpected keyword argument") {
			if kerr := checkKeywords(b.Name(), kwargs, pairNames(pairs)); kerr != nil {
				return nil, kerr
			}
		}
		return nil, err
	}
	s, ok := thread.Local(simKey).(*pvesim.Sim)
	if !ok {
		return nil, fmt.Errorf("%s: only a test function may shape the simulator (not the file's top level)", b.Name())
	}
	v, err := f(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if v == nil {
		v = starlark.None
	}
	return v, nil
}

// none adapts an error-only call for withSim.
func none(err error) (starlark.Value, error) { return nil, err }

func simAddGuest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sp := pvesim.GuestSpec{Running: true}
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.AddGuest(sp)) },
		"vmid", &sp.VMID, "hostname?", &sp.Hostname, "running?", &sp.Running, "template?", &sp.Template,
		"cores?", &sp.Cores, "memory?", &sp.MemoryMB, "description?", &sp.Description, "lock?", &sp.Lock, "type?", &sp.Type, "node?", &sp.Node)
}

func simCluster(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	nodes := 3
	return withSim(thread, b, args, kwargs, func(*pvesim.Sim) (starlark.Value, error) {
		if nodes < 2 || nodes > 9 {
			return nil, fmt.Errorf("nodes: %d; want 2 to 9", nodes)
		}
		w, ok := thread.Local(worldKey).(*testWorld)
		if !ok {
			return nil, fmt.Errorf("only a test function may make a cluster")
		}
		return none(w.build(nodes))
	}, "nodes?", &nodes)
}

func simUnprivileged(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(*pvesim.Sim) (starlark.Value, error) {
		w, ok := thread.Local(worldKey).(*testWorld)
		if !ok {
			return nil, fmt.Errorf("only a test function may change the world")
		}
		w.unprivileged = true
		return none(w.build(0))
	})
}

func simMigrate(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	var node string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.MigrateGuest(vmid, node)) },
		"vmid", &vmid, "node", &node)
}

func simNodeOnline(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var node string
	var online bool
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.SetNodeOnline(node, online)) },
		"node", &node, "online", &online)
}

func simSetVerification(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var volid, state string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.SetVerification(volid, state)) },
		"volid", &volid, "state", &state)
}

// simVMID adapts a func(sim, vmid) to a builtin taking vmid.
func simVMID(f func(*pvesim.Sim, int) (starlark.Value, error)) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var vmid int
		return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return f(s, vmid) }, "vmid", &vmid)
	}
}

func simSetStatus(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	var status string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.SetGuestStatus(vmid, status)) },
		"vmid", &vmid, "status", &status)
}

func simLock(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	lock := "backup"
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.SetGuestLock(vmid, lock)) },
		"vmid", &vmid, "lock?", &lock)
}

func guestValue(s *pvesim.Sim, vmid int) (starlark.Value, error) {
	g, ok := s.Guest(vmid)
	if !ok {
		return starlark.None, nil
	}
	cfg := starlark.NewDict(len(g.Config))
	for k, v := range g.Config {
		_ = cfg.SetKey(starlark.String(k), starlark.String(v))
	}
	snaps := make([]starlark.Value, len(g.Snapshots))
	for i, sn := range g.Snapshots {
		snaps[i] = starlark.String(sn.Name)
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
		"type": starlark.String(g.Type), "vmid": starlark.MakeInt(g.VMID), "node": starlark.String(g.Node), "name": starlark.String(g.Name), "status": starlark.String(g.Status),
		"lock": starlark.String(g.Lock), "template": starlark.Bool(g.Template),
		"description": starlark.String(g.Description), "config": cfg, "snapshots": starlark.NewList(snaps),
	}), nil
}

func simGuests(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		var out []starlark.Value
		for _, g := range s.Guests() {
			out = append(out, starlark.MakeInt(g.VMID))
		}
		return starlark.NewList(out), nil
	})
}

func simAddStorage(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sp pvesim.StorageSpec
	content := builtins.StringList{"backup"}
	var total, used size
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		sp.Content, sp.Total, sp.Used = content, uint64(total), uint64(used)
		return none(s.AddStorage(sp))
	}, "name", &sp.Name, "type?", &sp.Type, "content?", &content, "total?", &total, "used?", &used, "prune_backups?", &sp.PruneBackups, "verify_new?", &sp.VerifyNew)
}

func simStorageUsage(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var total, used size
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		return none(s.SetStorageUsage(name, uint64(total), uint64(used)))
	}, "name", &name, "total", &total, "used", &used)
}

func simFill(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.FillStorage(name)) }, "name", &name)
}

func simAddVolume(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sp pvesim.VolumeSpec
	var n size
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		sp.Size = uint64(n)
		return none(s.AddVolume(sp))
	}, "volid", &sp.VolID, "size?", &n, "notes?", &sp.Notes, "protected?", &sp.Protected, "verification?", &sp.Verification)
}

func simVolumes(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var storage string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		var ids []string
		for _, v := range s.Volumes(storage) {
			ids = append(ids, v.VolID)
		}
		slices.Sort(ids)
		return stringList(ids), nil
	}, "storage", &storage)
}

func simNotes(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var volid string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		storage, _, _ := strings.Cut(volid, ":")
		for _, v := range s.Volumes(storage) {
			if v.VolID == volid {
				return starlark.String(v.Notes), nil
			}
		}
		return nil, fmt.Errorf("no volume %q", volid)
	}, "volid", &volid)
}

func simPrivileges(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var privs builtins.StringList
	path := "/"
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		return none(s.SetTokenPrivileges(pvesim.DefaultTokenID, path, privs...))
	}, "privileges", &privs, "path?", &path)
}

func simDenyAtTask(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var priv, path string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.DenyAtTaskTime(path, priv)) },
		"privilege", &priv, "path", &path)
}

func simFailTask(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var typ string
	var vmid int
	msg := "simulated task failure"
	var always bool
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		if always {
			s.FailTasks(typ, vmid, msg)
		} else {
			s.FailNextTask(typ, vmid, msg)
		}
		return nil, nil
	}, "type", &typ, "vmid?", &vmid, "message?", &msg, "always?", &always)
}

func simTaskDuration(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var d builtins.Duration
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		if d <= 0 {
			return nil, fmt.Errorf("duration %s: want more than zero", time.Duration(d))
		}
		s.SetTaskDuration(time.Duration(d))
		return nil, nil
	}, "duration", &d)
}

func simTunnelDown(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(*pvesim.Sim) (starlark.Value, error) {
		ln, ok := thread.Local(tunnelKey).(net.Listener)
		if !ok {
			return nil, fmt.Errorf("no tunnel endpoint in this test")
		}
		return none(ln.Close())
	})
}

func simFault(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec string
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		f, err := pvesim.ParseFault(spec)
		if err != nil {
			return nil, err
		}
		return none(s.AddFault(f))
	}, "spec", &spec)
}

func simDisk(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var dev string
	passed := true
	var reallocated, temp int
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		if err := s.SetDiskHealth(dev, passed, reallocated); err != nil || temp == 0 {
			return nil, err
		}
		return none(s.SetDiskTemperature(dev, temp))
	}, "device", &dev, "passed?", &passed, "reallocated?", &reallocated, "temperature?", &temp)
}

func simTemperature(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var label string
	var c number
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return none(s.SetTemperature(label, float64(c))) },
		"label", &label, "celsius", &c)
}

func simRootFS(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pct number
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		if pct < 0 || pct > 100 {
			return nil, fmt.Errorf("used_percent %g is not within 0..100", float64(pct))
		}
		u := s.NodeUsage()
		u.RootFSUsed = uint64(float64(u.RootFSTotal) * float64(pct) / 100)
		return none(s.SetNodeUsage(u))
	}, "used_percent", &pct)
}

func simRequests(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) { return starlark.MakeInt(s.Requests()), nil })
}

func simTasks(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		var out []starlark.Value
		for _, t := range s.Tasks() {
			out = append(out, starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
				"upid": starlark.String(t.UPID), "type": starlark.String(t.Type), "id": starlark.String(t.ID),
				"running": starlark.Bool(t.Running), "exitstatus": starlark.String(t.ExitStatus),
			}))
		}
		return starlark.NewList(out), nil
	})
}

func simRootCalls(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return withSim(thread, b, args, kwargs, func(s *pvesim.Sim) (starlark.Value, error) {
		var out []starlark.Value
		for _, argv := range s.RootRunner().Calls() {
			out = append(out, stringList(argv))
		}
		return starlark.NewList(out), nil
	})
}

// stringList is a Starlark list of ss.
func stringList(ss []string) *starlark.List {
	out := make([]starlark.Value, len(ss))
	for i, s := range ss {
		out[i] = starlark.String(s)
	}
	return starlark.NewList(out)
}

// taskDuration of the simulator every test starts with: short, so tests
// are quick, but not zero, so waits really poll.
const taskDuration = 5 * time.Millisecond

// number unpacks an int or a float.
type number float64

var _ starlark.Unpacker = (*number)(nil)

func (n *number) Unpack(v starlark.Value) error {
	f, ok := starlark.AsFloat(v)
	if !ok {
		return fmt.Errorf("got %s, want a number", v.Type())
	}
	*n = number(f)
	return nil
}

// size unpacks a non-negative int (bytes).
type size uint64

var _ starlark.Unpacker = (*size)(nil)

func (n *size) Unpack(v starlark.Value) error {
	var i int64
	if err := starlark.AsInt(v, &i); err != nil || i < 0 {
		return fmt.Errorf("got %s, want a non-negative int", v)
	}
	*n = size(i)
	return nil
}
