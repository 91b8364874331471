package builtins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// ProxmoxTable is the `proxmox` module: the node's Proxmox VE API as the
// agent's token sees it. Reads return structs (or lists of structs);
// mutations return task structs (see [TaskTable] for their fields).
//
// The mutation contract every mutating function shares (wait, timeout,
// the task it returns, errors that keep their kind) is stated once, for
// playbook authors, in the table's Doc below. Beside it:
//   - A mutation of a guest first takes the agent's lock on that guest (two
//     runs never mutate one guest at once) and holds it until the task
//     stopped. With wait = False the lock is released once Proxmox accepted
//     the request: the caller gives up that exclusivity for the rest of the
//     task (PVE's own guest lock still refuses conflicting tasks).
//   - A wait without a timeout is bounded by the agent's configured wait.
//   - Every call is cancelled with the run.
//
// Guest kinds: every function that takes a vmid acts on whichever kind the
// guest is — an LXC container or a QEMU VM — looked up, not guessed, and
// remembered for the run (kinds.go). Options that only one kind has
// (vmstate for VMs, hostname on restore for containers) are refused for
// the other with a message naming both.
var ProxmoxTable = &Table{
	Name:  "proxmox",
	Waits: true,
	Doc: "The node's Proxmox VE API: read guests, storages, tasks and disks, " +
		"and change guests through worker tasks that are waited for by " +
		"default. Mutations of one guest are serialized across runs. " +
		"The mutation contract, shared by every mutating function: with wait = True (the default) it returns " +
		"when the task has stopped OK (or with warnings) and fails with the task's error otherwise (PVE checks " +
		"many privileges only inside the task); timeout (a duration, \"10m\" or int seconds) bounds the wait. " +
		"With wait = False it returns once Proxmox accepted the request, status \"running\"; follow it with " +
		"task.wait. It returns a task: struct(upid (\"\" for a change made without a task), node, type (the " +
		"worker type: vzdump, vzrestore, vzstart, ...), id (usually the vmid), status (\"running\" or " +
		"\"stopped\"), exitstatus (\"OK\", \"WARNINGS: N\" or the error; \"\" while running), ok, warnings (N), " +
		"duration (the call's wall time), volid (a one-guest vzdump's archive), backups (that guest's backups " +
		"on the storage, listed after it), storage (a vzdump's target), sync (applied without a task)). Errors " +
		"keep their kind for catch(): a missing privilege, a PVE lock, a missing guest, a failed task with its " +
		"log tail, an ambiguous outcome.",
	Funcs: []Func{
		{Name: "node", Effect: Reads, Journal: Pure, Sig: "node()", Fn: pveNode,
			Doc: "Returns the name of the node this agent manages (a string). Makes no request."},
		{Name: "version", Effect: Reads, Journal: Replayed, Sig: "version()", Fn: pveVersion, Returns: versionShape,
			Doc: "Returns struct(version, release, repoid) of the Proxmox VE API."},
		{Name: "nodes", Effect: Reads, Journal: Replayed, Sig: "nodes()", Fn: pveNodes, Returns: ListOf(nodeShape),
			Doc: "Returns the cluster's nodes: a list of struct(node, status, cpu (0..1), maxcpu, mem, maxmem, disk, maxdisk, uptime (duration))."},
		{Name: "node_status", Effect: Reads, Journal: Replayed, Sig: "node_status()", Fn: pveNodeStatus, Returns: nodeStatusShape,
			Doc: "Returns this node's status: struct(cpu (0..1), cpus, loadavg (3 floats), memory, rootfs, swap (each struct(total, used, free, percent)), uptime (duration), kernel, pveversion)."},
		{Name: "resources", Effect: Reads, Journal: Replayed, Sig: "resources(type=\"\")", Fn: pveResources, Returns: ListOf(resourceShape),
			Doc: "Returns the cluster's resources, optionally only of type \"vm\", \"storage\", \"node\" or \"sdn\": a list of struct(id, type, node, name, status, storage, vmid, cpu, maxcpu, mem, maxmem, disk, maxdisk, uptime, template)."},
		{Name: "guests", Effect: Reads, Journal: Replayed, Sig: "guests(cluster=False)", Fn: pveGuests, Returns: ListOf(guestShape),
			Doc: "Returns every guest of this node, LXC containers and QEMU VMs, ordered by vmid: a list of struct(node, type (\"lxc\" or \"qemu\"), vmid, name, status, lock, template, tags (list), cpus, cpu, mem, maxmem, disk, maxdisk, uptime). With cluster = True, every guest of the cluster from its resource index, each with the node it is on (status \"unknown\" while its node is down; tags empty)."},
		{Name: "cluster", Effect: Reads, Journal: Replayed, Sig: "cluster()", Fn: pveCluster, Returns: clusterShape,
			Doc: "Returns the node's cluster as GET /cluster/status says: struct(name (\"\" for a node in no cluster), quorate, nodes (list of struct(name, nodeid, ip, online, local)), offline (names of the members that are down), member (this agent's node is an online member)). Answered by this node from the cluster filesystem, also while other nodes are down."},
		{Name: "locate", Effect: Reads, Journal: Replayed, Sig: "locate(vmid)", Fn: pveLocate, Returns: locationShape,
			Doc: "Returns where guest vmid is in the cluster: struct(vmid, type, node, status, lock, here (it is on this agent's node)), or None when no node has it. One read of the cluster's resource index."},
		{Name: "guest", Effect: Reads, Journal: Replayed, Sig: "guest(vmid)", Fn: pveGuest, Returns: guestStatusShape,
			Doc: "Returns the current status of guest vmid, of either kind: struct(type, vmid, name, status, running, qmpstatus (VMs: QEMU's own state, e.g. \"paused\"; \"\" for containers), lock, template, cpus, cpu, mem, maxmem, disk, maxdisk, swap, maxswap (0 for VMs), uptime). Fails with a not-found error when it does not exist."},
		{Name: "config", Effect: Reads, Journal: Replayed, Sig: "config(vmid)", Fn: pveConfig, Returns: guestConfigShape,
			Doc: "Returns guest vmid's configuration: struct(type, name (a VM's name, a container's hostname), hostname (containers), description (with PVE's trailing newline), ostype, arch, cores, sockets (VMs), cpu (VMs: the CPU type), machine, bios, boot, agent (VMs, as written), memory, swap, onboot, template, unprivileged, lock, tags, features, digest, rootfs (containers: struct(volume, path, size, options); None for VMs), mountpoints (containers: dict \"mpN\" → struct), drives (VMs: dict \"scsi0\", \"virtio0\", \"ide2\", \"efidisk0\", ... → struct(volume, size, media, options)), nets (dict \"netN\" → struct(name (containers), model (VMs), bridge, hwaddr, link_down, ip, gateway, ip6, gateway6, tag, firewall, options)), raw (dict of every key as PVE wrote it))."},
		{Name: "storages", Effect: Reads, Journal: Replayed, Sig: "storages()", Fn: pveStorages, Returns: ListOf(storageShape),
			Doc: "Returns the storage configuration: a list of struct(storage, type, content (list), path, shared, enabled, active, total, used, avail, used_percent, prune_backups); usage fields are 0 here."},
		{Name: "node_storages", Effect: Reads, Journal: Replayed, Sig: "node_storages()", Fn: pveNodeStorages, Returns: ListOf(storageShape),
			Doc: "Returns this node's storages with state and usage, as storages() shapes them."},
		{Name: "content", Effect: Reads, Journal: Replayed, Sig: "content(storage, content=\"\", vmid=0)", Fn: pveContent, Returns: ListOf(volumeShape),
			Doc: "Returns the volumes on storage, optionally only of one content type (\"backup\", \"vztmpl\", ...) and guest: a list of struct(volid, content, format, subtype (backups: \"lxc\" or \"qemu\"), vmid, size, ctime (time or None), notes, protected, verification (Proxmox Backup Server snapshots: \"ok\", \"failed\", or \"\" when never verified), encrypted (PBS: the key fingerprint, \"\" when not encrypted)). A PBS snapshot's volid is STORAGE:backup/ct/101/2026-12-01T03:00:00Z (vm/… for a VM), its format pbs-ct or pbs-vm."},
		{Name: "snapshots", Effect: Reads, Journal: Replayed, Sig: "snapshots(vmid)", Fn: pveSnapshots, Returns: ListOf(snapshotShape),
			Doc: "Returns guest vmid's snapshots (without PVE's \"current\"): a list of struct(name, description, parent, snaptime (time or None), vmstate (VMs: the snapshot holds the RAM, so a rollback resumes the VM))."},
		{Name: "tasks", Effect: Reads, Journal: Replayed, Sig: "tasks(vmid=0, type=\"\", source=\"\", errors=False, limit=0)", Fn: pveTasks, Returns: ListOf(taskListShape),
			Doc: "Returns this node's tasks, filtered by guest, worker type, source (\"active\", \"archive\", \"all\"), only failed ones, and count (0: PVE's default of 50): a list of struct(upid, node, type, id, user, status, exitstatus, ok, starttime, endtime (None while running))."},
		{Name: "wait_status", Effect: Reads, Journal: Replayed, Sig: "wait_status(vmid, status=\"running\", timeout=\"60s\")", Fn: pveWaitStatus, Returns: guestStatusShape,
			Doc: "Polls guest vmid until its status is status (\"running\" or \"stopped\") and returns the guest as guest() does; fails when timeout passes first, naming the status last seen. A started task's OK does not promise the guest is up yet; this does."},
		{Name: "next_id", Effect: Reads, Journal: Replayed, Sig: "next_id()", Fn: pveNextID,
			Doc: "Returns the next free guest id (an int). Another client may take it before you use it."},
		{Name: "disks", Effect: Reads, Journal: Replayed, Sig: "disks()", Fn: pveDisks, Returns: ListOf(diskShape),
			Doc: "Returns this node's physical disks: a list of struct(devpath, model, serial, vendor, type, health, wwn, used, size, rpm, gpt)."},
		{Name: "smart", Effect: Reads, Journal: Replayed, Sig: "smart(disk)", Fn: pveSmart, Returns: smartShape,
			Doc: "Returns PVE's SMART data of disk (a device path such as \"/dev/sda\"): struct(health, passed, type (\"ata\" or \"text\"), text, attributes (list of struct(id, name, value, worst, threshold, raw, flags, fail)))."},

		{Name: "restore", Effect: Gated, Destructive: "with force = True over a guest the run did not create (restoring to a new vmid is benign)", Journal: Mutation, Sig: "restore(vmid, archive, storage=\"\", force=False, unique=False, start=False, hostname=\"\", config={}, wait=True, timeout=None)", Fn: pveRestore, Returns: taskShape,
			Doc: "Restores backup archive (a volid: a vzdump file or a Proxmox Backup Server snapshot) as guest vmid, of the kind the archive holds (a container archive with POST /nodes/{node}/lxc, a VM's with POST /nodes/{node}/qemu), onto storage (\"\": the archive's), overwriting an existing guest only with force = True, with new MAC addresses with unique = True, starting it with start = True. hostname applies only to container archives. config (dict of key → str, int or bool, as set_config takes) is set in the restore request itself, over the archive's configuration — for example {\"onboot\": False, \"net0\": \"...,link_down=1\"}, so the restored guest never has the archive's values, not even for a moment. Returns the task (see the module's mutation contract)."},
		{Name: "vzdump", Effect: Gated, Destructive: "when it prunes (remove = True) by a retention that keeps fewer than safety.min_backups backups", Journal: Mutation, Sig: "vzdump(vmid=None, *, storage, vmids=[], all=False, mode=\"snapshot\", compress=\"zstd\", notes=\"\", remove=False, wait=True, timeout=None)", Fn: pveVzdump, Returns: taskShape,
			Doc: "Backs up one guest (vmid), several (vmids) or every guest (all = True) — exactly one of the three — to storage, in mode \"snapshot\", \"suspend\" or \"stop\", compressed with \"zstd\", \"gzip\", \"lzo\", \"1\" (lzo) or \"0\" (none), with a notes template; remove = True lets PVE prune by the storage's retention. Returns the task; for one guest, waited for, its volid is the archive (the guest's oldest backup on storage from after the task's start: PVE names archives by the time vzdump began them) and its backups the guest's backups on storage as listed after the task, one listing serving an archive check and a retention plan. Locks every guest it backs up."},
		{Name: "snapshot", Effect: Benign, Journal: Mutation, Sig: "snapshot(vmid, name, description=\"\", vmstate=False, wait=True, timeout=None)", Fn: pveSnapshot, Returns: taskShape,
			Doc: "Takes snapshot name of guest vmid. vmstate = True (VMs only; refused for a container) saves a running VM's RAM too, so a rollback resumes it. Returns the task."},
		{Name: "rollback", Effect: Gated, Destructive: "always, even to a snapshot the run took (it discards what the guest wrote since), except on a guest the run created or a scratch guest (safety.scratch_vmids)", Journal: Mutation, Sig: "rollback(vmid, name, wait=True, timeout=None)", Fn: pveRollback, Returns: taskShape,
			Doc: "Rolls guest vmid back to snapshot name; the guest is stopped afterwards, unless the snapshot holds a VM's RAM (vmstate), which resumes it. On a ZFS pool only the most recent snapshot can be rolled back to (PVE refuses the others). Returns the task."},
		{Name: "delete_snapshot", Effect: Gated, Destructive: "for a snapshot the run did not take, on a guest the run did not create", Journal: Mutation, Sig: "delete_snapshot(vmid, name, wait=True, timeout=None)", Fn: pveDeleteSnapshot, Returns: taskShape,
			Doc: "Deletes snapshot name of guest vmid. Returns the task."},
		{Name: "start", Effect: Benign, Journal: Mutation, Sig: "start(vmid, wait=True, timeout=None)", Fn: pveStart, Returns: taskShape,
			Doc: "Starts guest vmid. Returns the task; fails if it is already running."},
		{Name: "stop", Effect: Benign, Journal: Mutation, Sig: "stop(vmid, wait=True, timeout=None)", Fn: pveStop, Returns: taskShape,
			Doc: "Stops guest vmid at once (no clean shutdown). Returns the task. PVE refuses it for a stopped container; for a stopped VM the task succeeds doing nothing."},
		{Name: "reboot", Effect: Benign, Journal: Mutation, Sig: "reboot(vmid, wait=True, timeout=None)", Fn: pveReboot, Returns: taskShape,
			Doc: "Reboots running guest vmid cleanly (shutdown, then start). Returns the task; fails if the guest is not running."},
		{Name: "shutdown", Effect: Benign, Journal: Mutation, Sig: "shutdown(vmid, timeout=0, wait=True)", Fn: pveShutdown, Returns: taskShape,
			Doc: "Shuts guest vmid down cleanly; timeout (int seconds or a duration) is how long PVE waits for it, 0 meaning PVE's default (60 s). Returns the task. The wait is bounded by the agent's wait timeout."},
		{Name: "delete_guest", Effect: Gated, Destructive: "for a guest the run did not create and that is not scratch", Journal: Mutation, Sig: "delete_guest(vmid, purge=False, wait=True, timeout=None)", Fn: pveDeleteGuest, Returns: taskShape,
			Doc: "Destroys guest vmid and its volumes; purge = True also removes it from backup jobs, replication and HA. Returns the task; fails if the guest is running."},
		{Name: "delete_volume", Effect: Gated, Destructive: "for one of a guest's safety.min_backups newest backups, a guest's disk the run did not create, or any other volume", Journal: Mutation, Sig: "delete_volume(storage, volid, wait=True, timeout=None)", Fn: pveDeleteVolume, Returns: taskShape,
			Doc: "Deletes volume volid (e.g. an old backup archive) from storage. Returns the task. Takes no guest lock."},
		{Name: "record_drill", Effect: Benign, Journal: Once, Sig: "record_drill(archive, ok)", Fn: pveRecordDrill,
			Doc: "Records a restore drill's verdict on the backup archive it verified (a volid): the first line of the archive's notes becomes \"felhom-drill: ok 2026-12-01T03:30:00Z\" (or \"failed\"), replacing an earlier such line and keeping the rest of the notes (PUT /nodes/{node}/storage/{storage}/content/{volid}, synchronous, no task). The notes live with the archive on its storage, so the agent of every node that sees the storage — the one a migrated guest lands on — knows the guest's last drill. Returns None."},
		{Name: "set_config", Effect: Gated, Destructive: "when it deletes (detaches) a disk key (rootfs, mpN, unusedN, scsiN, virtioN, sataN, ideN, efidiskN, tpmstateN) of a guest the run did not create", Journal: Mutation, Sig: "set_config(vmid, set={}, delete=[], wait=True, timeout=None)", Fn: pveSetConfig, Returns: taskShape,
			Doc: "Changes guest vmid's configuration: set maps keys to str, int or bool values (bools are written 1/0), delete lists keys to remove. A container's change applies synchronously (PUT): then it returns a task with sync = True, upid \"\", status \"stopped\" and exitstatus \"OK\". A VM's change is a qmconfig task (POST), waited for like any other."},
	},
}

// ---- reads ----

// readFn is a read builtin's body once its arguments are unpacked.
type readFn func(ctx context.Context, api guestReader) (starlark.Value, error)

// read runs fn with the run's context and client, naming b in errors.
func read(thread *starlark.Thread, b *starlark.Builtin, fn readFn) (starlark.Value, error) {
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	v, err := fn(env.Context, api)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return v, nil
}

// readNoArgs is the builtin of a read that takes no arguments: it asks the
// client with get and converts the answer with conv.
func readNoArgs[T any](get func(guestReader, context.Context) (T, error), conv func(T) starlark.Value) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := noArgs(b, args, kwargs); err != nil {
			return nil, err
		}
		return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
			v, err := get(api, ctx)
			return conv(v), err
		})
	}
}

// listConv converts a list with conv for each element (see listOf).
func listConv[T any](conv func(T) starlark.Value) func([]T) starlark.Value {
	return func(xs []T) starlark.Value { return listOf(xs, conv) }
}

// guestReadFn is a read of one guest once its kind is known.
type guestReadFn func(ctx context.Context, api guestReader, kind proxmox.GuestKind) (starlark.Value, error)

// readGuest runs fn for guest vmid with its kind looked up (see kinds.go).
func readGuest(thread *starlark.Thread, b *starlark.Builtin, vmid int, fn guestReadFn) (starlark.Value, error) {
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		kind, _, err := guestKind(thread, ctx, api, vmid)
		if err != nil {
			return nil, err
		}
		v, err := fn(ctx, api, kind)
		now, again, replace := relook(thread, ctx, api, vmid, kind, err)
		switch {
		case again:
			return fn(ctx, api, now)
		case replace != nil:
			return nil, replace
		}
		return v, err
	})
}

// noArgs is the unpacking of a builtin that takes no arguments.
func noArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) error {
	return starlark.UnpackArgs(b.Name(), args, kwargs)
}

var pveVersion = readNoArgs(guestReader.Version, versionValue)

var pveNodes = readNoArgs(guestReader.Nodes, listConv(nodeValue))

var pveNodeStatus = readNoArgs(guestReader.NodeStatus, nodeStatusValue)

func pveResources(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var typ string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "type?", &typ); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		rs, err := api.ClusterResources(ctx, typ)
		return listOf(rs, resourceValue), err
	})
}

func pveGuests(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cluster bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cluster?", &cluster); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		if !cluster {
			gs, err := api.Guests(ctx)
			kindsOf(thread, api).Learn(gs)
			return listOf(gs, guestValueOn(api.Node())), err
		}
		rs, err := api.ClusterResources(ctx, "vm")
		if err != nil {
			return nil, err
		}
		var out []starlark.Value
		for _, r := range rs {
			kind := proxmox.GuestKind(r.Type)
			if !kind.Valid() {
				continue
			}
			out = append(out, guestValue(proxmox.Guest{
				Type: kind, VMID: r.VMID, Name: r.Name, Status: r.Status, Lock: r.Lock, Template: r.Template,
				CPUs: r.MaxCPU, CPU: r.CPU, Mem: r.Mem, MaxMem: r.MaxMem, Disk: r.Disk, MaxDisk: r.MaxDisk, Uptime: r.Uptime,
			}, r.Node))
		}
		return starlark.NewList(out), nil
	})
}

// clusterStatusReader reads GET /cluster/status (*proxmox.Client does).
type clusterStatusReader interface {
	ClusterStatus(ctx context.Context) (proxmox.ClusterStatus, error)
}

func pveCluster(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		cr, ok := api.(clusterStatusReader)
		if !ok {
			return nil, errors.New("this Proxmox client cannot read the cluster status")
		}
		st, err := cr.ClusterStatus(ctx)
		if err != nil {
			return nil, err
		}
		var nodes, offline []starlark.Value
		member := false
		for _, m := range st.Members {
			nodes = append(nodes, newStruct(starlark.StringDict{
				"name": starlark.String(m.Name), "nodeid": starlark.MakeInt(m.NodeID), "ip": starlark.String(m.IP),
				"online": starlark.Bool(m.Online), "local": starlark.Bool(m.Local),
			}))
			if !m.Online {
				offline = append(offline, starlark.String(m.Name))
			}
			if m.Name == api.Node() && m.Online {
				member = true
			}
		}
		return newStruct(starlark.StringDict{
			"name": starlark.String(st.Name), "quorate": starlark.Bool(st.Quorate), "nodes": starlark.NewList(nodes),
			"offline": starlark.NewList(offline), "member": starlark.Bool(member),
		}), nil
	})
}

// pveLocate finds a guest in the cluster's resource index.
func pveLocate(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		loc, found, err := locate(ctx, api, int(vmid))
		if err != nil || !found {
			return starlark.None, err
		}
		return newStruct(starlark.StringDict{
			"vmid": starlark.MakeInt(loc.VMID), "type": starlark.String(loc.Type), "node": starlark.String(loc.Node),
			"status": starlark.String(loc.Status), "lock": starlark.String(loc.Lock), "here": starlark.Bool(loc.Node == api.Node()),
		}), nil
	})
}

func pveNode(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return read(thread, b, func(_ context.Context, api guestReader) (starlark.Value, error) {
		return starlark.String(api.Node()), nil
	})
}

// pveWaitStatus polls with the run's task-wait backoff, so it never
// hammers the API, and selects on the run's context between polls.
func pveWaitStatus(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	want := "running"
	timeout := durationArg{d: time.Minute}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid, "status?", &want, "timeout?", &timeout); err != nil {
		return nil, err
	}
	if want != "running" && want != "stopped" {
		return nil, fmt.Errorf("%s: status %q: want \"running\" or \"stopped\"", b.Name(), want)
	}
	return readGuest(thread, b, int(vmid), func(ctx context.Context, api guestReader, kind proxmox.GuestKind) (starlark.Value, error) {
		env := EnvOf(thread)
		interval, limit := env.Wait.MinInterval, env.Wait.MaxInterval
		if interval <= 0 {
			interval = 250 * time.Millisecond
		}
		if limit <= 0 {
			limit = 2 * time.Second
		}
		deadline := time.NewTimer(timeout.d)
		defer deadline.Stop()
		for {
			s, err := api.GuestStatus(ctx, kind, int(vmid))
			if err != nil {
				return nil, err
			}
			if s.Status == want {
				s.VMID = int(vmid)
				return guestStatusValue(s), nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-deadline.C:
				return nil, fmt.Errorf("guest %d is still %s after %s (want %s)", vmid, s.Status, timeout.d, want)
			case <-time.After(interval):
			}
			interval = min(2*interval, limit)
		}
	})
}

func pveGuest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	return readGuest(thread, b, int(vmid), func(ctx context.Context, api guestReader, kind proxmox.GuestKind) (starlark.Value, error) {
		s, err := api.GuestStatus(ctx, kind, int(vmid))
		if s.VMID == 0 {
			s.VMID = int(vmid) // status/current has no vmid beyond the path
		}
		return guestStatusValue(s), err
	})
}

func pveConfig(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	return readGuest(thread, b, int(vmid), func(ctx context.Context, api guestReader, kind proxmox.GuestKind) (starlark.Value, error) {
		c, err := api.GuestConfig(ctx, kind, int(vmid))
		return guestConfigValue(c), err
	})
}

var pveStorages = readNoArgs(guestReader.Storages, listConv(storageValue))

var pveNodeStorages = readNoArgs(guestReader.NodeStorages, listConv(storageValue))

func pveContent(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		storage, content string
		vmid             vmidFilter
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "storage", &storage, "content?", &content, "vmid?", &vmid); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "storage", storage); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		vs, err := api.StorageContent(ctx, storage, content, int(vmid))
		return listOf(vs, volumeValue), err
	})
}

func pveSnapshots(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	return readGuest(thread, b, int(vmid), func(ctx context.Context, api guestReader, kind proxmox.GuestKind) (starlark.Value, error) {
		ss, err := api.Snapshots(ctx, kind, int(vmid))
		return listOf(ss, snapshotValue), err
	})
}

func pveTasks(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		f    proxmox.TaskFilter
		vmid vmidFilter
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"vmid?", &vmid, "type?", &f.TypeFilter, "source?", &f.Source, "errors?", &f.Errors, "limit?", &f.Limit); err != nil {
		return nil, err
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("%s: limit must be >= 0, got %d", b.Name(), f.Limit)
	}
	f.VMID = int(vmid)
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		ts, err := api.Tasks(ctx, f)
		return listOf(ts, taskListValue), err
	})
}

var pveNextID = readNoArgs(guestReader.NextID, func(id int) starlark.Value { return starlark.MakeInt(id) })

var pveDisks = readNoArgs(guestReader.Disks, listConv(diskValue))

func pveSmart(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var disk string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "disk", &disk); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "disk", disk); err != nil {
		return nil, err
	}
	return read(thread, b, func(ctx context.Context, api guestReader) (starlark.Value, error) {
		s, err := api.DiskSMART(ctx, disk)
		return smartDataValue(s), err
	})
}

// ---- mutations ----

// mutation is one mutating call: the guests it locks, the request, and how
// to follow its task.
type mutation struct {
	lock    []int // guests to lock, any order; nil locks none (a guest call locks its guest)
	wait    bool
	timeout durationArg
	storage string // vzdump's target, to find the archive
	// do sends the request, unless guest is set.
	do func(ctx context.Context, api guestMutator) (proxmox.UPID, error)
	// worker and workerID are the task PVE starts for it (vzsnapshot on
	// "101"), for finding it in the node's task list when the request's
	// answer was lost; worker "" means it starts none that can be found
	// (a container's synchronous config change). A guest call names its
	// own (see task).
	worker, workerID string
	// relook, when set, follows a request or task that failed with err
	// ([relook] in kinds.go): again means the guest is now of the other
	// kind and relook has set do and worker for it (the mutation is made
	// once more); a non-nil replace is the error instead of err. A guest
	// call has its own (see retry).
	relook func(ctx context.Context, err error) (again bool, replace error)
	// guest, when its send is set, is the request instead of do, worker
	// and relook: a mutation of one guest (guestMutation's, shutdown's,
	// set_config's), locked, named and retried by the same methods.
	guest guestCall
}

// guestCall is a mutation of one guest as guestMutation makes it: the
// guest, its kind (which retry changes when it was stale), PVE's action
// (snapshot, start, ..., "config" for set_config, whose change of a
// container is synchronous), and the builtin's check of its options
// against the kind and its request.
type guestCall struct {
	thread *starlark.Thread
	vmid   int
	kind   proxmox.GuestKind
	action string
	check  func(kind proxmox.GuestKind, vmid int) error
	send   func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)
}

// request sends m's request once.
func (m *mutation) request(ctx context.Context, api guestMutator) (proxmox.UPID, error) {
	if g := &m.guest; g.send != nil {
		return g.send(api, ctx, g.kind, g.vmid)
	}
	return m.do(ctx, api)
}

// task is the worker type and id of the task m's request starts (see
// worker), made when asked: a guest call's only when its answer was lost,
// its run resumed or its kind was stale.
func (m *mutation) task() (worker, id string) {
	if g := &m.guest; g.send != nil {
		if g.action == "config" && g.kind == proxmox.LXC {
			return "", "" // a container's config change is synchronous: no task to find
		}
		return workerType(g.kind, g.action), strconv.Itoa(g.vmid)
	}
	return m.worker, m.workerID
}

// retry follows a request or task that failed with err (see relook):
// again means m is to be made once more, replace is the error instead
// of err.
func (m *mutation) retry(ctx context.Context, api GuestAPI, err error) (again bool, replace error) {
	g := &m.guest
	if g.send == nil {
		if m.relook == nil {
			return false, nil
		}
		return m.relook(ctx, err)
	}
	now, again, rerr := relook(g.thread, ctx, api, g.vmid, g.kind, err)
	if again && g.check != nil {
		if cerr := g.check(now, g.vmid); cerr != nil {
			return false, cerr
		}
	}
	if again {
		g.kind = now
	}
	return again, rerr
}

// workerType is PVE's worker type of action on a guest of kind: "vz" for
// containers, "qm" for VMs (vzstart, qmsnapshot, ...).
func workerType(kind proxmox.GuestKind, action string) string {
	if kind == proxmox.QEMU {
		return "qm" + action
	}
	return "vz" + action
}

// mutate carries out the mutation contract documented on [ProxmoxTable],
// journaled (see [Mutation]) when the run has a journal.
func mutate(env *Env, api GuestAPI, b *starlark.Builtin, m *mutation) (starlark.Value, error) {
	ctx := env.Context
	lock := m.lock
	var one [1]int
	if g := &m.guest; g.send != nil {
		one[0] = g.vmid
		lock = one[:]
	}
	unlock, err := lockGuests(ctx, env.Locks, lock)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	defer unlock()
	for retried := false; ; retried = true {
		v, err := mutateOnce(env, api, b, m)
		if err == nil || retried {
			return v, err
		}
		again, replace := m.retry(ctx, api, err)
		if replace != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), replace)
		}
		if !again {
			return nil, err
		}
		worker, _ := m.task()
		env.Logger.Info("the guest's remembered kind was stale; acting on it as the kind it is now", "builtin", b.Name(), "worker", worker)
		if call := env.call; call != nil && env.Journal != nil {
			// The failed request or task changed nothing: the call is
			// sent afresh, and a resumed run must not wait for that
			// task again.
			if err := env.Journal.Started(call.entry.Seq, ""); err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			call.entry.State, call.entry.UPID = EntryLive, ""
		}
	}
}

// mutateOnce sends m's request and (when m waits) waits for its task,
// with the guests locked by [mutate]. Its errors name b.
func mutateOnce(env *Env, api GuestAPI, b *starlark.Builtin, m *mutation) (starlark.Value, error) {
	start := time.Now()
	upid, err := send(env, api, b, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if upid.IsZero() {
		env.Logger.Debug("applied synchronously", "builtin", b.Name())
		return syncResult(time.Since(start)).value(), nil
	}
	// The UPID's text serves both log lines and the result, and is made
	// only when the lines are written (else the result makes it when its
	// upid is read); the lines are attributes of their own kinds (no
	// boxing, no argument slice).
	var text string
	logged := env.Logger.Enabled(env.Context, slog.LevelInfo)
	if logged {
		text = upid.String()
		env.Logger.LogAttrs(env.Context, slog.LevelInfo, "task started", slog.String("builtin", b.Name()), slog.String("upid", text))
	}
	r := taskResult{UPID: upid, text: text, Status: "running", Storage: m.storage}
	if !m.wait {
		// The deferred unlock releases the guests now: with wait = False the
		// caller gives up the exclusivity for the rest of the task.
		r.Duration = time.Since(start)
		return r.value(), nil
	}
	r, err = finish(env, api, r, waitOptions(env, m.timeout), start)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if logged {
		env.Logger.LogAttrs(env.Context, slog.LevelInfo, "task finished", slog.String("builtin", b.Name()), slog.String("upid", text),
			slog.String("exitstatus", r.ExitStatus), slog.Duration("took", r.Duration))
	}
	return r.value(), nil
}

// send sends m's request and returns its task. In a journaled run it
// writes the intent first and the UPID as soon as the request returns; a
// call the journal holds pending is not sent again blindly: a recorded
// UPID is returned as it is, an intent without one is looked up in the
// node's task list (adopted when found) and sent again only when Proxmox
// shows no such task. A request whose answer was lost (ErrAmbiguous) is
// looked up the same way.
func send(env *Env, api GuestAPI, b *starlark.Builtin, m *mutation) (proxmox.UPID, error) {
	ctx, call := env.Context, env.call
	if call == nil || env.Journal == nil {
		return m.request(ctx, api)
	}
	j := call.entry
	switch {
	case j.State == EntryPending && j.UPID != "":
		upid, err := proxmox.ParseUPID(j.UPID)
		if err != nil {
			return proxmox.UPID{}, fmt.Errorf("the journal's UPID: %w", err)
		}
		env.Journal.Note("waited")
		env.Logger.Info("resumed: waiting for the task the run had started", "builtin", b.Name(), "upid", upid)
		return upid, nil
	case j.State == EntryPending:
		upid, found, err := findStarted(env, api, m, j.Intent)
		if err != nil {
			return proxmox.UPID{}, err
		}
		if found {
			return adopt(env, b, j.Seq, upid)
		}
		env.Journal.Note("reissued")
		worker, id := m.task()
		env.Logger.Warn("resumed: the request the run was sending never started a task on the host; sending it again", "builtin", b.Name(), "worker", worker, "id", id)
	default:
		if err := env.Journal.Intent(j.Seq); err != nil {
			return proxmox.UPID{}, fmt.Errorf("%w: recording its intent: %w", proxmox.ErrNotSent, err)
		}
	}
	intent := time.Now()
	upid, err := m.request(ctx, api)
	if err != nil && proxmox.IsAmbiguous(err) && ctx.Err() == nil {
		// The request may have started a task: ask the host.
		found, ok, ferr := findStarted(env, api, m, intent.Add(-time.Second))
		if ferr == nil && ok {
			return adopt(env, b, j.Seq, found)
		}
		return proxmox.UPID{}, err
	}
	if err != nil || upid.IsZero() {
		return upid, err
	}
	if err := env.Journal.Started(j.Seq, upid.String()); err != nil {
		env.Logger.Error("recording the task's UPID in the journal failed", "builtin", b.Name(), "upid", upid, "err", err)
	}
	return upid, nil
}

// adopt takes upid as the task of journaled call seq.
func adopt(env *Env, b *starlark.Builtin, seq int, upid proxmox.UPID) (proxmox.UPID, error) {
	env.Journal.Note("adopted")
	env.Logger.Warn("adopted the task the host shows this request started (its answer was lost)", "builtin", b.Name(), "upid", upid)
	if err := env.Journal.Started(seq, upid.String()); err != nil {
		return proxmox.UPID{}, fmt.Errorf("recording the adopted task %s: %w", upid, err)
	}
	return upid, nil
}

// taskFinder is the lookup of a task a lost request may have started
// (*proxmox.Client.FindStartedTask).
type taskFinder interface {
	FindStartedTask(ctx context.Context, worker, id string, since time.Time, skip func(proxmox.UPID) bool) (proxmox.Task, bool, error)
}

// findStarted looks for the task m's request would have started since
// the given time, skipping tasks any run already claimed. It fails (the
// outcome is unknown, never guessed) when the host cannot be asked or m
// starts no task that can be found.
func findStarted(env *Env, api GuestAPI, m *mutation, since time.Time) (proxmox.UPID, bool, error) {
	f, ok := api.(taskFinder)
	worker, id := m.task()
	if worker == "" || !ok {
		return proxmox.UPID{}, false, fmt.Errorf("%w: the agent stopped while sending this request, and whether it was applied cannot be looked up", proxmox.ErrAmbiguous)
	}
	t, found, err := f.FindStartedTask(env.Context, worker, id, since, func(u proxmox.UPID) bool { return env.Journal.Claimed(u.String()) })
	if err != nil {
		return proxmox.UPID{}, false, fmt.Errorf("%w: %w", proxmox.ErrAmbiguous, err)
	}
	return t.UPID, found, nil
}

// lockGuests takes the agent's lock on every guest in vmids, in ascending
// order (so two callers locking overlapping sets cannot deadlock), and
// returns a function that releases them all, in reverse order.
func lockGuests(ctx context.Context, locks GuestLocker, vmids []int) (func(), error) {
	if locks == nil || len(vmids) == 0 {
		return func() {}, nil
	}
	if len(vmids) == 1 { // the usual case: one guest, no order to keep
		unlock, err := locks.LockGuest(ctx, vmids[0])
		if err != nil {
			return nil, fmt.Errorf("lock guest %d: %w", vmids[0], err)
		}
		return unlock, nil
	}
	ids := slices.Compact(slices.Sorted(slices.Values(vmids)))
	var held []func()
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i]()
		}
	}
	for _, id := range ids {
		unlock, err := locks.LockGuest(ctx, id)
		if err != nil {
			release()
			return nil, fmt.Errorf("lock guest %d: %w", id, err)
		}
		held = append(held, unlock)
	}
	return release, nil
}

func pveRestore(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		vmid VMID
		o    proxmox.RestoreOptions
		m    = mutation{wait: true}
		conf = new(starlark.Dict)
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"vmid", &vmid, "archive", &o.Archive, "storage?", &o.Storage, "force?", &o.Force,
		"unique?", &o.Unique, "start?", &o.Start, "hostname?", &o.Hostname, "config?", &conf,
		"wait?", &m.wait, "timeout??", &m.timeout); err != nil {
		return nil, err
	}
	if conf.Len() > 0 {
		values, err := configValues(conf)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", b.Name(), err)
		}
		o.Config = values
	}
	if err := nonEmpty(b, "archive", o.Archive); err != nil {
		return nil, err
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	o.VMID = int(vmid)
	o.Kind, err = archiveKind(env.Context, api, o.Archive)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if o.Hostname != "" && o.Kind == proxmox.QEMU {
		return nil, fmt.Errorf("%s: hostname applies only to LXC containers; archive %s holds a QEMU VM (its name comes with the archive; change it with set_config)", b.Name(), o.Archive)
	}
	m.lock = []int{o.VMID}
	m.worker, m.workerID = workerType(o.Kind, "restore"), strconv.Itoa(o.VMID)
	m.do = func(ctx context.Context, api guestMutator) (proxmox.UPID, error) {
		upid, err := api.RestoreGuest(ctx, o)
		if err == nil {
			kindsOf(thread, api).Set(o.VMID, o.Kind)
		}
		return upid, err
	}
	return mutate(env, api, b, &m)
}

// archiveKind is the guest kind a backup archive holds: what its name says
// (vzdump-lxc-…, vzdump-qemu-…, PBS ct/… or vm/…, as PVE names them), or
// else the subtype its storage lists for it.
func archiveKind(ctx context.Context, api guestReader, archive string) (proxmox.GuestKind, error) {
	if kind, _, ok := proxmox.ArchiveKind(archive); ok {
		return kind, nil
	}
	storage, _, ok := strings.Cut(archive, ":")
	if !ok {
		return "", fmt.Errorf("archive %q is not a volume id (STORAGE:backup/NAME)", archive)
	}
	vs, err := api.StorageContent(ctx, storage, "backup", 0)
	if err != nil {
		return "", fmt.Errorf("look up archive %s: %w", archive, err)
	}
	for _, v := range vs {
		if v.VolID == archive {
			switch proxmox.GuestKind(v.Subtype) {
			case proxmox.LXC, proxmox.QEMU:
				return proxmox.GuestKind(v.Subtype), nil
			}
			return "", fmt.Errorf("archive %s has subtype %q, neither lxc nor qemu", archive, v.Subtype)
		}
	}
	return "", fmt.Errorf("archive %s is not listed on storage %s", archive, storage)
}

// Values PVE's vzdump accepts for mode and compress.
var (
	vzdumpModes     = []string{"snapshot", "suspend", "stop"}
	vzdumpCompressV = []string{"zstd", "gzip", "lzo", "0", "1"}
)

func pveVzdump(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 1 {
		return nil, fmt.Errorf("%s: got %d positional arguments, want at most 1 (vmid); pass the others by name", b.Name(), len(args))
	}
	var (
		vmid  VMID
		vmids vmidList
		o     = proxmox.VzdumpOptions{Mode: "snapshot", Compress: "zstd"}
		m     = mutation{wait: true}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"vmid??", &vmid, "storage?", &o.Storage, "vmids?", &vmids, "all?", &o.All,
		"mode?", &o.Mode, "compress?", &o.Compress, "notes?", &o.Notes, "remove?", &o.Remove,
		"wait?", &m.wait, "timeout??", &m.timeout); err != nil {
		return nil, err
	}
	if o.Storage == "" {
		return nil, fmt.Errorf("%s: missing argument for storage", b.Name())
	}
	selected := 0
	for _, given := range []bool{vmid != 0, len(vmids) > 0, o.All} {
		if given {
			selected++
		}
	}
	if selected != 1 {
		return nil, fmt.Errorf("%s: give exactly one of vmid, vmids or all = True", b.Name())
	}
	if !slices.Contains(vzdumpModes, o.Mode) {
		return nil, fmt.Errorf("%s: mode %q: want one of %q", b.Name(), o.Mode, vzdumpModes)
	}
	if !slices.Contains(vzdumpCompressV, o.Compress) {
		return nil, fmt.Errorf("%s: compress %q: want one of %q", b.Name(), o.Compress, vzdumpCompressV)
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	switch {
	case vmid != 0:
		o.VMIDs = []int{int(vmid)}
	case len(vmids) > 0:
		o.VMIDs = slices.Clone(vmids)
	}
	m.lock = o.VMIDs
	if o.All {
		// Every guest is backed up, so every guest is locked: the ones that
		// exist now (a guest created meanwhile is not).
		gs, err := api.Guests(env.Context)
		if err != nil {
			return nil, fmt.Errorf("%s: list guests to lock: %w", b.Name(), err)
		}
		for _, g := range gs {
			m.lock = append(m.lock, g.VMID)
		}
	}
	m.storage = o.Storage
	m.worker = "vzdump"
	if len(o.VMIDs) == 1 {
		m.workerID = strconv.Itoa(o.VMIDs[0])
	}
	m.do = func(ctx context.Context, mapi guestMutator) (proxmox.UPID, error) {
		upid, err := mapi.Vzdump(ctx, o)
		if errors.Is(err, proxmox.ErrNoTask) && len(o.VMIDs) == 1 {
			// PVE's silent "OK": the guest is on another node.
			if e, ok := elsewhere(ctx, api, o.VMIDs[0]).(*proxmox.GuestElsewhereError); ok {
				e.Err = err
				return upid, e
			}
		}
		return upid, err
	}
	return mutate(env, api, b, &m)
}

// checkSnapshotName checks name against PVE's format for snapshot names
// (pve-snapshot-name: pve-configid, a letter then letters, digits, '_' or
// '-', at most 40 in all): /^[a-z][a-z0-9_\-]{1,39}$/i. Spelt as a loop
// rather than a regexp: every snapshot call checks it (BenchmarkFlowEngine).
func checkSnapshotName(name string) error {
	ok := len(name) >= 2 && len(name) <= 40
	for i := 0; ok && i < len(name); i++ {
		c := name[i] | 0x20 // ASCII letters to lower case
		letter := 'a' <= c && c <= 'z'
		ok = letter || i > 0 && ('0' <= name[i] && name[i] <= '9' || name[i] == '_' || name[i] == '-')
	}
	if !ok {
		return fmt.Errorf("name %q: want a letter, then 1..39 letters, digits, '_' or '-'", name)
	}
	return nil
}

// guestMutation is the common shape: unpack (vmid, extra..., wait,
// timeout), look the guest's kind up, check the options against it, then
// call do on the locked guest. do takes the client first so method
// expressions such as guestMutator.Start fit it.
func guestMutation(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple,
	action string, extra []any, check func(kind proxmox.GuestKind, vmid int) error,
	do func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)) (starlark.Value, error) {
	var (
		vmid    VMID
		wait    = true
		timeout durationArg
	)
	var scratch [16]any // the usual pairs, on the stack
	pairs := append(append(scratch[:0], "vmid", &vmid), extra...)
	pairs = append(pairs, "wait?", &wait, "timeout??", &timeout)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, pairs...); err != nil {
		return nil, err
	}
	m := mutation{wait: wait, timeout: timeout}
	return mutateGuest(b, &m, guestCall{thread: thread, vmid: int(vmid), action: action, check: check, send: do})
}

// mutateGuest is what every guest mutation does once its arguments are
// unpacked: look the guest's kind up, check g against it (g.check may be
// nil), and send m as g on the locked guest.
func mutateGuest(b *starlark.Builtin, m *mutation, g guestCall) (starlark.Value, error) {
	env, api, err := proxmoxEnv(g.thread, b)
	if err != nil {
		return nil, err
	}
	if g.kind, err = mutationKind(g.thread, env.Context, api, g.vmid); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if g.check != nil {
		if err := g.check(g.kind, g.vmid); err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
	}
	m.guest = g
	return mutate(env, api, b, m)
}

func pveSnapshot(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var o proxmox.SnapshotOptions
	return guestMutation(thread, b, args, kwargs, "snapshot",
		[]any{"name", &o.Name, "description?", &o.Description, "vmstate?", &o.VMState},
		func(kind proxmox.GuestKind, vmid int) error {
			if err := checkSnapshotName(o.Name); err != nil {
				return err
			}
			if o.VMState && kind != proxmox.QEMU {
				return kindOnly("vmstate", proxmox.QEMU, vmid, kind)
			}
			return nil
		},
		func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
			return api.Snapshot(ctx, kind, vmid, o)
		})
}

func pveRollback(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return snapshotMutation(thread, b, args, kwargs, "rollback", guestMutator.Rollback)
}

func pveDeleteSnapshot(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return snapshotMutation(thread, b, args, kwargs, "delsnapshot", guestMutator.DeleteSnapshot)
}

// snapshotMutation is rollback's and delete_snapshot's shape: a guest and
// the name of one of its snapshots, sent with send.
func snapshotMutation(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple, action string,
	send func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int, name string) (proxmox.UPID, error)) (starlark.Value, error) {
	var name string
	return guestMutation(thread, b, args, kwargs, action,
		[]any{"name", &name},
		func(proxmox.GuestKind, int) error { return nonEmptyArg("name", name) },
		func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
			return send(api, ctx, kind, vmid, name)
		})
}

func pveStart(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return guestMutation(thread, b, args, kwargs, "start", nil, nil, guestMutator.Start)
}

func pveStop(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return guestMutation(thread, b, args, kwargs, "stop", nil, nil, guestMutator.Stop)
}

func pveReboot(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return guestMutation(thread, b, args, kwargs, "reboot", nil, nil, guestMutator.Reboot)
}

func pveShutdown(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		vmid    VMID
		timeout durationArg
		m       = mutation{wait: true}
	)
	// Here timeout is PVE's shutdown timeout, not the wait's; the wait is
	// bounded by the agent's configuration.
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid, "timeout??", &timeout, "wait?", &m.wait); err != nil {
		return nil, err
	}
	if timeout.d%time.Second != 0 {
		return nil, fmt.Errorf("%s: timeout %s: PVE takes whole seconds", b.Name(), timeout.d)
	}
	secs := int(timeout.d / time.Second)
	return mutateGuest(b, &m, guestCall{thread: thread, vmid: int(vmid), action: "shutdown",
		send: func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
			return api.Shutdown(ctx, kind, vmid, secs)
		}})
}

func pveDeleteGuest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var purge bool
	return guestMutation(thread, b, args, kwargs, "destroy",
		[]any{"purge?", &purge}, nil,
		func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
			upid, err := api.DeleteGuest(ctx, kind, vmid, purge)
			if err == nil {
				kindsOf(thread, api).Forget(vmid) // the vmid may soon name a guest of the other kind
			}
			return upid, err
		})
}

func pveDeleteVolume(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		storage, volid string
		m              = mutation{wait: true}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"storage", &storage, "volid", &volid, "wait?", &m.wait, "timeout??", &m.timeout); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "storage", storage); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "volid", volid); err != nil {
		return nil, err
	}
	env, api, err := proxmoxEnv(thread, b)
	if err != nil {
		return nil, err
	}
	m.worker, m.workerID = "imgdel", storage
	if _, owner, ok := proxmox.ArchiveKind(volid); ok && owner != 0 {
		m.workerID = strconv.Itoa(owner) + "@" + storage // as PVE names it (Storage/Content.pm)
	}
	m.do = func(ctx context.Context, api guestMutator) (proxmox.UPID, error) {
		return api.DeleteVolume(ctx, storage, volid)
	}
	return mutate(env, api, b, &m)
}

// configKeyPattern is what PVE's configuration keys look like ("cores",
// "mp0", "net1", "startup", "lxc.idmap" is not settable through the API).
var configKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

func pveSetConfig(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		vmid VMID
		set  = new(starlark.Dict)
		del  *starlark.List
		m    = mutation{wait: true}
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"vmid", &vmid, "set?", &set, "delete?", &del, "wait?", &m.wait, "timeout??", &m.timeout); err != nil {
		return nil, err
	}
	values, err := configValues(set)
	if err != nil {
		return nil, fmt.Errorf("%s: set: %w", b.Name(), err)
	}
	deletes, err := configDeletes(del, values)
	if err != nil {
		return nil, fmt.Errorf("%s: delete: %w", b.Name(), err)
	}
	if len(values) == 0 && len(deletes) == 0 {
		return nil, fmt.Errorf("%s: nothing to change: set and delete are both empty", b.Name())
	}
	return mutateGuest(b, &m, guestCall{thread: thread, vmid: int(vmid), action: "config",
		send: func(api guestMutator, ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
			return api.SetConfig(ctx, kind, vmid, values, deletes)
		}})
}

// configValues converts set_config's dict to PVE's form: every value a
// string, bools as 1/0 (PVE's boolean format), ints in decimal.
func configValues(d *starlark.Dict) (map[string]string, error) {
	out := make(map[string]string, d.Len())
	for _, kv := range d.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return nil, fmt.Errorf("key %s is %s, want string", kv[0], kv[0].Type())
		}
		if !configKeyPattern.MatchString(k) {
			return nil, fmt.Errorf("key %q is not a configuration key", k)
		}
		switch v := kv[1].(type) {
		case starlark.String:
			out[k] = string(v)
		case starlark.Bool:
			out[k] = "0"
			if v {
				out[k] = "1"
			}
		case starlark.Int:
			n, ok := v.Int64()
			if !ok {
				return nil, fmt.Errorf("%s: %s is out of range", k, v)
			}
			out[k] = strconv.FormatInt(n, 10)
		default:
			return nil, fmt.Errorf("%s: got %s, want str, int or bool", k, v.Type())
		}
	}
	return out, nil
}

// configDeletes checks set_config's delete list: configuration keys, none
// also being set.
func configDeletes(l *starlark.List, set map[string]string) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	out := make([]string, 0, l.Len())
	for i := range l.Len() {
		k, ok := starlark.AsString(l.Index(i))
		if !ok {
			return nil, fmt.Errorf("element %d is %s, want string", i, l.Index(i).Type())
		}
		if !configKeyPattern.MatchString(k) {
			return nil, fmt.Errorf("%q is not a configuration key", k)
		}
		if _, both := set[k]; both {
			return nil, fmt.Errorf("%q is both set and deleted", k)
		}
		out = append(out, k)
	}
	return out, nil
}
