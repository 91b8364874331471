package playtest

import (
	"fmt"
	"slices"
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
	Name: "sim",
	Doc:  "Shapes and inspects the simulated Proxmox VE host of the running test. Every test function starts on a fresh default world: node demo-felhom, guests 9999 (selftest), 9000 (golden template), 101 and 102, storages local, local-lvm and usb-backup.",
	Funcs: []builtins.Func{
		{Name: "add_guest", Sig: `add_guest(vmid, hostname="", running=True, template=False, cores=1, memory=512, description="", lock="")`, Doc: "Adds an LXC guest.", Fn: simAddGuest},
		{Name: "remove_guest", Sig: "remove_guest(vmid)", Doc: "Removes a guest and its disks.", Fn: simVMID(func(s *pvesim.Sim, vmid int) error { return s.RemoveGuest(vmid) })},
		{Name: "set_status", Sig: `set_status(vmid, status)`, Doc: `Sets a guest "running" or "stopped" without a task.`, Fn: simSetStatus},
		{Name: "lock", Sig: `lock(vmid, lock="backup")`, Doc: `Puts a lock on a guest's config, as a task of another client would ("" unlocks); mutations then fail with PVE's "CT is locked (backup)".`, Fn: simLock},
		{Name: "guest", Sig: "guest(vmid)", Doc: "Returns the guest as the simulator holds it: struct(vmid, name, status, lock, template, description, config (dict), snapshots (list of names)), or None.", Fn: simGuest},
		{Name: "guests", Sig: "guests()", Doc: "Returns the vmids of all guests, sorted.", Fn: simGuests},
		{Name: "add_storage", Sig: `add_storage(name, type="dir", content=["backup"], total=0, used=0)`, Doc: "Adds a storage; total 0 means 1 TiB.", Fn: simAddStorage},
		{Name: "set_storage_usage", Sig: "set_storage_usage(name, total, used)", Doc: "Sets a storage's size and usage in bytes.", Fn: simStorageUsage},
		{Name: "fill_storage", Sig: "fill_storage(name)", Doc: "Fills a storage: nothing more fits, and a vzdump to it fails as PVE's does.", Fn: simFill},
		{Name: "add_volume", Sig: `add_volume(volid, size=0, notes="")`, Doc: "Puts a file volume (a backup archive, a template) on a storage.", Fn: simAddVolume},
		{Name: "volumes", Sig: "volumes(storage)", Doc: "Returns the volids on a storage, sorted.", Fn: simVolumes},
		{Name: "set_privileges", Sig: `set_privileges(privileges, path="/")`, Doc: "Replaces the agent token's privileges on an ACL path (checked when a request arrives).", Fn: simPrivileges},
		{Name: "deny_at_task", Sig: "deny_at_task(privilege, path)", Doc: "Lets requests pass but makes tasks touching path fail with `Permission check failed (path, privilege)` when they run.", Fn: simDenyAtTask},
		{Name: "fail_task", Sig: `fail_task(type, vmid=0, message="simulated task failure", always=False)`, Doc: "Makes the next task of a worker type (vzdump, vzrestore, vzstart, ...) on vmid (0: any) stop with message as its error; always=True makes every such task fail.", Fn: simFailTask},
		{Name: "fault", Sig: "fault(spec)", Doc: "Injects a fault in the simulator's grammar, e.g. \"503:GET:/nodes/*/status:count=2\", \"drop:GET:/nodes/*/tasks/*/status:count=1\" or \"latency:200ms\".", Fn: simFault},
		{Name: "set_disk", Sig: "set_disk(device, passed=True, reallocated=0, temperature=0)", Doc: "Sets the SMART state of a disk (/dev/sda, /dev/sdb).", Fn: simDisk},
		{Name: "set_temperature", Sig: "set_temperature(label, celsius)", Doc: "Sets a sensor's temperature (as `sensors -j` shows it).", Fn: simTemperature},
		{Name: "set_rootfs", Sig: "set_rootfs(used_percent)", Doc: "Sets the node's root filesystem usage.", Fn: simRootFS},
		{Name: "mutations", Sig: "mutations(vmid)", Doc: "Returns how many mutating requests reached guest vmid.", Fn: simVMIDInt(func(s *pvesim.Sim, vmid int) int { return s.Mutations(vmid) })},
		{Name: "requests", Sig: "requests()", Doc: "Returns how many API requests the simulator answered.", Fn: simRequests},
		{Name: "tasks", Sig: "tasks()", Doc: "Returns every task started, oldest first: struct(upid, type, id, running, exitstatus).", Fn: simTasks},
		{Name: "root_calls", Sig: "root_calls()", Doc: "Returns every argv the fenced root runner was given.", Fn: simRootCalls},
	},
}

const simKey = "felhom.playtest.sim"

// simOf returns the running test's simulator.
func simOf(thread *starlark.Thread, b *starlark.Builtin) (*pvesim.Sim, error) {
	s, ok := thread.Local(simKey).(*pvesim.Sim)
	if !ok {
		return nil, fmt.Errorf("%s: only a test function may shape the simulator (not the file's top level)", b.Name())
	}
	return s, nil
}

func wrap(b *starlark.Builtin, err error) error { return fmt.Errorf("%s: %w", b.Name(), err) }

func simAddGuest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	sp := pvesim.GuestSpec{Running: true}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &sp.VMID, "hostname?", &sp.Hostname, "running?", &sp.Running,
		"template?", &sp.Template, "cores?", &sp.Cores, "memory?", &sp.MemoryMB, "description?", &sp.Description, "lock?", &sp.Lock); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.AddGuest(sp); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

// simVMID adapts a func(sim, vmid) error to a builtin.
func simVMID(f func(*pvesim.Sim, int) error) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var vmid int
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
			return nil, err
		}
		s, err := simOf(thread, b)
		if err != nil {
			return nil, err
		}
		if err := f(s, vmid); err != nil {
			return nil, wrap(b, err)
		}
		return starlark.None, nil
	}
}

// simVMIDInt adapts a func(sim, vmid) int to a builtin.
func simVMIDInt(f func(*pvesim.Sim, int) int) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var vmid int
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
			return nil, err
		}
		s, err := simOf(thread, b)
		if err != nil {
			return nil, err
		}
		return starlark.MakeInt(f(s, vmid)), nil
	}
}

func simSetStatus(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	var status string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid, "status", &status); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetGuestStatus(vmid, status); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simLock(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	lock := "backup"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid, "lock?", &lock); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetGuestLock(vmid, lock); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simGuest(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
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
		"vmid": starlark.MakeInt(g.VMID), "name": starlark.String(g.Name), "status": starlark.String(g.Status),
		"lock": starlark.String(g.Lock), "template": starlark.Bool(g.Template),
		"description": starlark.String(g.Description), "config": cfg, "snapshots": starlark.NewList(snaps),
	}), nil
}

func simGuests(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, g := range s.Guests() {
		out = append(out, starlark.MakeInt(g.VMID))
	}
	return starlark.NewList(out), nil
}

func simAddStorage(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sp pvesim.StorageSpec
	content := starlark.NewList([]starlark.Value{starlark.String("backup")})
	var total, used int64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &sp.Name, "type?", &sp.Type, "content?", &content, "total?", &total, "used?", &used); err != nil {
		return nil, err
	}
	for i := range content.Len() {
		c, ok := starlark.AsString(content.Index(i))
		if !ok {
			return nil, fmt.Errorf("%s: content: want strings, got %s", b.Name(), content.Index(i).Type())
		}
		sp.Content = append(sp.Content, c)
	}
	if total < 0 || used < 0 {
		return nil, fmt.Errorf("%s: total and used must not be negative", b.Name())
	}
	sp.Total, sp.Used = uint64(total), uint64(used)
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.AddStorage(sp); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simStorageUsage(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	var total, used int64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "total", &total, "used", &used); err != nil {
		return nil, err
	}
	if total < 0 || used < 0 {
		return nil, fmt.Errorf("%s: total and used must not be negative", b.Name())
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetStorageUsage(name, uint64(total), uint64(used)); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simFill(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var name string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.FillStorage(name); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simAddVolume(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var sp pvesim.VolumeSpec
	var size int64
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "volid", &sp.VolID, "size?", &size, "notes?", &sp.Notes); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("%s: size must not be negative", b.Name())
	}
	sp.Size = uint64(size)
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.AddVolume(sp); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simVolumes(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var storage string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "storage", &storage); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, v := range s.Volumes(storage) {
		ids = append(ids, v.VolID)
	}
	slices.Sort(ids)
	out := make([]starlark.Value, len(ids))
	for i, id := range ids {
		out[i] = starlark.String(id)
	}
	return starlark.NewList(out), nil
}

func simPrivileges(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var privs *starlark.List
	path := "/"
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "privileges", &privs, "path?", &path); err != nil {
		return nil, err
	}
	var list []string
	for i := range privs.Len() {
		p, ok := starlark.AsString(privs.Index(i))
		if !ok {
			return nil, fmt.Errorf("%s: privileges: want strings, got %s", b.Name(), privs.Index(i).Type())
		}
		list = append(list, p)
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetTokenPrivileges(pvesim.DefaultTokenID, path, list...); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simDenyAtTask(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var priv, path string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "privilege", &priv, "path", &path); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.DenyAtTaskTime(path, priv); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simFailTask(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var typ string
	var vmid int
	msg := "simulated task failure"
	var always bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "type", &typ, "vmid?", &vmid, "message?", &msg, "always?", &always); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if always {
		s.FailTasks(typ, vmid, msg)
	} else {
		s.FailNextTask(typ, vmid, msg)
	}
	return starlark.None, nil
}

func simFault(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var spec string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "spec", &spec); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	f, err := pvesim.ParseFault(spec)
	if err != nil {
		return nil, wrap(b, err)
	}
	if err := s.AddFault(f); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simDisk(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var dev string
	passed := true
	var reallocated, temp int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "device", &dev, "passed?", &passed, "reallocated?", &reallocated, "temperature?", &temp); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetDiskHealth(dev, passed, reallocated); err != nil {
		return nil, wrap(b, err)
	}
	if temp != 0 {
		if err := s.SetDiskTemperature(dev, temp); err != nil {
			return nil, wrap(b, err)
		}
	}
	return starlark.None, nil
}

func simTemperature(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var label string
	var c number
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "label", &label, "celsius", &c); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	if err := s.SetTemperature(label, float64(c)); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simRootFS(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pct number
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "used_percent", &pct); err != nil {
		return nil, err
	}
	if pct < 0 || pct > 100 {
		return nil, fmt.Errorf("%s: used_percent %g is not within 0..100", b.Name(), pct)
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	u := s.NodeUsage()
	u.RootFSUsed = uint64(float64(u.RootFSTotal) * float64(pct) / 100)
	if err := s.SetNodeUsage(u); err != nil {
		return nil, wrap(b, err)
	}
	return starlark.None, nil
}

func simRequests(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	return starlark.MakeInt(s.Requests()), nil
}

func simTasks(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, t := range s.Tasks() {
		out = append(out, starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
			"upid": starlark.String(t.UPID), "type": starlark.String(t.Type), "id": starlark.String(t.ID),
			"running": starlark.Bool(t.Running), "exitstatus": starlark.String(t.ExitStatus),
		}))
	}
	return starlark.NewList(out), nil
}

func simRootCalls(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	s, err := simOf(thread, b)
	if err != nil {
		return nil, err
	}
	var out []starlark.Value
	for _, argv := range s.RootRunner().Calls() {
		words := make([]starlark.Value, len(argv))
		for i, w := range argv {
			words[i] = starlark.String(w)
		}
		out = append(out, starlark.NewList(words))
	}
	return starlark.NewList(out), nil
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
