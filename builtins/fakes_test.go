package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarktest"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// This file holds the fakes the proxmox, task, host and monitor tests run
// against: a GuestAPI whose state comes from testdata/pve_host.json, a
// HostOps, a real (in-memory) GuestLocker and a gauge sink, all recording
// what they were asked into one ordered event log.

// eventLog is the order in which fakes were called, shared between them so
// a test can assert interleavings (lock, request, wait, unlock).
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// pveState is the fake host's data, decoded from testdata/pve_host.json.
type pveState struct {
	Version      proxmox.Version
	Nodes        []proxmox.Node
	NodeStatus   proxmox.NodeStatus
	Resources    []proxmox.Resource
	Guests       []proxmox.Guest
	Statuses     map[int]proxmox.GuestStatus
	Configs      map[int]proxmox.GuestConfig
	Storages     []proxmox.Storage
	NodeStorages []proxmox.Storage
	Content      map[string][]proxmox.Volume
	Snapshots    map[int][]proxmox.Snapshot
	Tasks        []proxmox.Task
	NextID       int
	Disks        []proxmox.Disk
	SMART        map[string]proxmox.SMARTData
	TaskLogs     map[string][]string // worker type → log lines
	Archives     map[string]string   // storage → volid VzdumpBackups finds
}

// fakePVE implements GuestAPI over pveState. Reads return the state;
// mutations record themselves and return a fresh UPID of PVE's worker
// type; tasks stop with exit[type] (default "OK").
type fakePVE struct {
	pveState
	log *eventLog

	mu        sync.Mutex
	errs      map[string]error  // method name → error it returns
	exit      map[string]string // worker type → exit status
	block     chan struct{}     // non-nil: WaitTask blocks until closed (or ctx ends)
	waiting   chan proxmox.UPID // non-nil: WaitTask announces each wait here
	asyncConf bool              // SetConfig returns a task (as for QEMU) instead of applying at once like LXC
	quiet     bool              // WaitTask reports a failed status without an error
	pid       uint32
	lastWait  proxmox.WaitOptions
	lastSet   map[string]string
	lastDel   []string
	lastDump  proxmox.VzdumpOptions
	lastRest  proxmox.RestoreOptions
	lastFilt  proxmox.TaskFilter
	lastSnap  proxmox.SnapshotOptions
	lastKind  proxmox.GuestKind // of the last guest mutation
	shutdown  int
}

var _ GuestAPI = (*fakePVE)(nil)

func loadFakePVE(t testing.TB, log *eventLog) *fakePVE {
	t.Helper()
	b, err := os.ReadFile("testdata/pve_host.json")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePVE{log: log, errs: map[string]error{}, exit: map[string]string{}}
	if err := json.Unmarshal(b, &f.pveState); err != nil {
		t.Fatalf("testdata/pve_host.json: %v", err)
	}
	return f
}

func (f *fakePVE) fail(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs[method]
}

func (f *fakePVE) upid(typ, id string) proxmox.UPID {
	f.mu.Lock()
	f.pid++
	pid := f.pid
	f.mu.Unlock()
	return proxmox.MustParseUPID(fmt.Sprintf("UPID:pve:%08X:0001E240:673D6A01:%s:%s:felhom@pve!agent:", 0x1000+pid, typ, id))
}

// mutation records a call and returns its task.
func (f *fakePVE) mutation(method, typ, id string) (proxmox.UPID, error) {
	if err := f.fail(method); err != nil {
		return proxmox.UPID{}, err
	}
	f.log.add("%s %s", method, id)
	return f.upid(typ, id), nil
}

func (f *fakePVE) Node() string { return "pve" }
func (f *fakePVE) Version(context.Context) (proxmox.Version, error) {
	return f.pveState.Version, f.fail("Version")
}
func (f *fakePVE) Nodes(context.Context) ([]proxmox.Node, error) {
	return f.pveState.Nodes, f.fail("Nodes")
}
func (f *fakePVE) NodeStatus(context.Context) (proxmox.NodeStatus, error) {
	return f.pveState.NodeStatus, f.fail("NodeStatus")
}

// ClusterResources answers the state's resources and, as PVE's index
// does (pmxcfs's vmlist), every guest of the node that they do not list.
func (f *fakePVE) ClusterResources(_ context.Context, typ string) ([]proxmox.Resource, error) {
	var out []proxmox.Resource
	listed := map[int]bool{}
	for _, r := range f.Resources {
		if typ == "" || r.Type == typ || typ == "vm" && (r.Type == "lxc" || r.Type == "qemu") {
			out = append(out, r)
			listed[r.VMID] = r.VMID != 0
		}
	}
	if typ == "" || typ == "vm" {
		for _, g := range f.pveState.Guests {
			if !listed[g.VMID] {
				out = append(out, proxmox.Resource{ID: string(g.Type) + "/" + strconv.Itoa(g.VMID), Type: string(g.Type), VMID: g.VMID, Node: "pve", Name: g.Name, Status: g.Status})
			}
		}
	}
	return out, f.fail("ClusterResources")
}
func (f *fakePVE) Guests(context.Context) ([]proxmox.Guest, error) {
	return f.pveState.Guests, f.fail("Guests")
}

// kindOf is the kind the state lists guest vmid with, "" when it lists
// no such guest.
func (f *fakePVE) kindOf(vmid int) proxmox.GuestKind {
	for _, g := range f.pveState.Guests {
		if g.VMID == vmid {
			return g.Type
		}
	}
	return ""
}

// asKind is PVE's answer for a guest asked of the wrong kind's endpoint:
// its config file is not in that kind's directory.
func (f *fakePVE) asKind(kind proxmox.GuestKind, vmid int) error {
	if k := f.kindOf(vmid); k != "" && k != kind {
		return notExist(vmid)
	}
	return nil
}

func (f *fakePVE) GuestStatus(_ context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestStatus, error) {
	s, ok := f.Statuses[vmid]
	if !ok || f.asKind(kind, vmid) != nil {
		return proxmox.GuestStatus{}, notExist(vmid)
	}
	s.Type = kind
	return s, f.fail("GuestStatus")
}
func (f *fakePVE) GuestConfig(_ context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error) {
	c, ok := f.Configs[vmid]
	if !ok || f.asKind(kind, vmid) != nil {
		return proxmox.GuestConfig{}, notExist(vmid)
	}
	c.Type = kind
	if kind == proxmox.LXC {
		c.Name = c.Hostname // as the client fills it
	}
	return c, f.fail("GuestConfig")
}
func (f *fakePVE) Storages(context.Context) ([]proxmox.Storage, error) {
	return f.pveState.Storages, f.fail("Storages")
}
func (f *fakePVE) NodeStorages(context.Context) ([]proxmox.Storage, error) {
	return f.pveState.NodeStorages, f.fail("NodeStorages")
}
func (f *fakePVE) StorageContent(_ context.Context, storage, content string, vmid int) ([]proxmox.Volume, error) {
	var out []proxmox.Volume
	for _, v := range f.Content[storage] {
		if (content == "" || v.Content == content) && (vmid == 0 || v.VMID == vmid) {
			out = append(out, v)
		}
	}
	return out, f.fail("StorageContent")
}
func (f *fakePVE) Snapshots(_ context.Context, kind proxmox.GuestKind, vmid int) ([]proxmox.Snapshot, error) {
	if err := f.asKind(kind, vmid); err != nil {
		return nil, err
	}
	return f.pveState.Snapshots[vmid], f.fail("Snapshots")
}
func (f *fakePVE) Tasks(_ context.Context, filter proxmox.TaskFilter) ([]proxmox.Task, error) {
	f.mu.Lock()
	f.lastFilt = filter
	f.mu.Unlock()
	return f.pveState.Tasks, f.fail("Tasks")
}
func (f *fakePVE) NextID(context.Context) (int, error) { return f.pveState.NextID, f.fail("NextID") }
func (f *fakePVE) Disks(context.Context) ([]proxmox.Disk, error) {
	return f.pveState.Disks, f.fail("Disks")
}
func (f *fakePVE) DiskSMART(_ context.Context, devpath string) (proxmox.SMARTData, error) {
	if err := f.fail("DiskSMART " + devpath); err != nil {
		return proxmox.SMARTData{}, err
	}
	return f.SMART[devpath], f.fail("DiskSMART")
}

func (f *fakePVE) RestoreGuest(_ context.Context, o proxmox.RestoreOptions) (proxmox.UPID, error) {
	f.mu.Lock()
	f.lastRest = o
	f.mu.Unlock()
	return f.mutation("RestoreGuest", worker(o.Kind, "restore"), fmt.Sprint(o.VMID))
}

func (f *fakePVE) Vzdump(_ context.Context, o proxmox.VzdumpOptions) (proxmox.UPID, error) {
	f.mu.Lock()
	f.lastDump = o
	f.mu.Unlock()
	id := "" // PVE names the guest only when exactly one is backed up
	if len(o.VMIDs) == 1 {
		id = fmt.Sprint(o.VMIDs[0])
	}
	return f.mutation("Vzdump", "vzdump", id)
}

// worker is PVE's worker type of action for a guest of kind: vz* for
// containers, qm* for VMs.
func worker(kind proxmox.GuestKind, action string) string {
	if kind == proxmox.QEMU {
		return "qm" + action
	}
	return "vz" + action
}

// guestMutation records a mutation of a guest of kind, refusing one asked
// of the wrong kind's endpoint as PVE does.
func (f *fakePVE) guestMutation(method string, kind proxmox.GuestKind, action string, vmid int) (proxmox.UPID, error) {
	if err := f.asKind(kind, vmid); err != nil {
		return proxmox.UPID{}, err
	}
	f.mu.Lock()
	f.lastKind = kind
	f.mu.Unlock()
	return f.mutation(method, worker(kind, action), fmt.Sprint(vmid))
}

func (f *fakePVE) Snapshot(_ context.Context, kind proxmox.GuestKind, vmid int, o proxmox.SnapshotOptions) (proxmox.UPID, error) {
	f.mu.Lock()
	f.lastSnap = o
	f.mu.Unlock()
	return f.guestMutation("Snapshot", kind, "snapshot", vmid)
}
func (f *fakePVE) Rollback(_ context.Context, kind proxmox.GuestKind, vmid int, name string) (proxmox.UPID, error) {
	return f.guestMutation("Rollback", kind, "rollback", vmid)
}
func (f *fakePVE) DeleteSnapshot(_ context.Context, kind proxmox.GuestKind, vmid int, name string) (proxmox.UPID, error) {
	return f.guestMutation("DeleteSnapshot", kind, "delsnapshot", vmid)
}
func (f *fakePVE) Start(_ context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
	return f.guestMutation("Start", kind, "start", vmid)
}
func (f *fakePVE) Stop(_ context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
	return f.guestMutation("Stop", kind, "stop", vmid)
}
func (f *fakePVE) Reboot(_ context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
	return f.guestMutation("Reboot", kind, "reboot", vmid)
}
func (f *fakePVE) Shutdown(_ context.Context, kind proxmox.GuestKind, vmid int, timeout int) (proxmox.UPID, error) {
	f.mu.Lock()
	f.shutdown = timeout
	f.mu.Unlock()
	return f.guestMutation("Shutdown", kind, "shutdown", vmid)
}
func (f *fakePVE) DeleteGuest(_ context.Context, kind proxmox.GuestKind, vmid int, purge bool) (proxmox.UPID, error) {
	return f.guestMutation("DeleteGuest", kind, "destroy", vmid)
}
func (f *fakePVE) DeleteVolume(_ context.Context, storage, volid string) (proxmox.UPID, error) {
	return f.mutation("DeleteVolume", "imgdel", "101@"+storage)
}
func (f *fakePVE) VolumeNotes(_ context.Context, volid string) (string, error) {
	if err := f.fail("VolumeNotes"); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.Content[strings.Split(volid, ":")[0]] {
		if v.VolID == volid {
			return v.Notes, nil
		}
	}
	return "", errors.New("volume_size_info on '" + volid + "' failed - no format")
}
func (f *fakePVE) SetVolumeNotes(_ context.Context, volid, notes string) error {
	if err := f.fail("SetVolumeNotes"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	vols := f.Content[strings.Split(volid, ":")[0]]
	for i := range vols {
		if vols[i].VolID == volid {
			vols[i].Notes = notes
		}
	}
	f.log.add("SetVolumeNotes %s", volid)
	return nil
}
func (f *fakePVE) SetConfig(_ context.Context, kind proxmox.GuestKind, vmid int, set map[string]string, del []string) (proxmox.UPID, error) {
	if err := f.asKind(kind, vmid); err != nil {
		return proxmox.UPID{}, err
	}
	f.mu.Lock()
	f.lastSet, f.lastDel = maps.Clone(set), slices.Clone(del)
	synchronous := !f.asyncConf && kind != proxmox.QEMU
	f.mu.Unlock()
	if synchronous {
		if err := f.fail("SetConfig"); err != nil {
			return proxmox.UPID{}, err
		}
		f.log.add("SetConfig %d", vmid)
		return proxmox.UPID{}, nil
	}
	return f.mutation("SetConfig", "qmconfig", fmt.Sprint(vmid))
}

func (f *fakePVE) exitOf(upid proxmox.UPID) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.exit[upid.Type]; ok {
		return e
	}
	return "OK"
}

func (f *fakePVE) WaitTask(ctx context.Context, upid proxmox.UPID, o proxmox.WaitOptions) (proxmox.TaskStatus, error) {
	f.mu.Lock()
	f.lastWait = o
	block, waiting, quiet := f.block, f.waiting, f.quiet
	f.mu.Unlock()
	f.log.add("wait %s", upid.Type)
	if waiting != nil {
		waiting <- upid
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return proxmox.TaskStatus{}, fmt.Errorf("wait for task %s: %w", upid, ctx.Err())
		}
	}
	f.log.add("done %s", upid.Type)
	st := proxmox.TaskStatus{UPID: upid, Status: "stopped", ExitStatus: f.exitOf(upid)}
	if st.Succeeded() || quiet {
		return st, nil
	}
	te := &proxmox.TaskError{UPID: upid, ExitStatus: st.ExitStatus, LogTail: []string{"TASK ERROR: " + st.ExitStatus}}
	te.Permission, _ = proxmox.ParsePermission(st.ExitStatus)
	return st, te
}

func (f *fakePVE) TaskStatusOnce(_ context.Context, upid proxmox.UPID) (proxmox.TaskStatus, error) {
	if err := f.fail("TaskStatusOnce"); err != nil {
		return proxmox.TaskStatus{}, err
	}
	if upid.Type == "vzdump" && upid.ID == "102" { // the running task in the fixture
		return proxmox.TaskStatus{UPID: upid, Status: "running"}, nil
	}
	return proxmox.TaskStatus{UPID: upid, Status: "stopped", ExitStatus: f.exitOf(upid)}, nil
}

func (f *fakePVE) TaskLog(_ context.Context, upid proxmox.UPID, start, limit int) ([]proxmox.LogLine, error) {
	lines := f.TaskLogs[upid.Type]
	start = min(start, len(lines))
	end := min(start+limit, len(lines))
	out := make([]proxmox.LogLine, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, proxmox.LogLine{N: i + 1, T: lines[i]})
	}
	return out, f.fail("TaskLog")
}

func (f *fakePVE) TaskLogTail(_ context.Context, upid proxmox.UPID, n int) ([]string, error) {
	lines := f.TaskLogs[upid.Type]
	return slices.Clone(lines[max(0, len(lines)-n):]), f.fail("TaskLogTail")
}

func (f *fakePVE) StopTask(_ context.Context, upid proxmox.UPID) error {
	if err := f.fail("StopTask"); err != nil {
		return err
	}
	f.log.add("StopTask %s", upid.Type)
	return nil
}

func (f *fakePVE) VzdumpBackups(_ context.Context, upid proxmox.UPID, storage string) (string, []proxmox.Volume, error) {
	f.log.add("VzdumpBackups %s %s", upid.ID, storage)
	if v, ok := f.Archives[storage]; ok {
		return v, []proxmox.Volume{{VolID: v, Content: "backup"}}, nil
	}
	return "", nil, fmt.Errorf("no archive of %s on %s", upid, storage)
}

// notExist is PVE's error for a missing guest (a 500 with this text).
func notExist(vmid int) error {
	return &proxmox.APIError{Method: "GET", Path: fmt.Sprintf("/nodes/pve/lxc/%d/status/current", vmid), Status: 500,
		Message: fmt.Sprintf("Configuration file 'nodes/pve/lxc/%d.conf' does not exist", vmid)}
}

// fakeHost implements HostOps.
type fakeHost struct {
	log        *eventLog
	smart      map[string]proxmox.SMARTReport
	smartErr   map[string]error
	sensors    []proxmox.SensorReading
	sensorsErr error
	golden     []proxmox.GoldenSpec
	mu         sync.Mutex
}

var _ HostOps = (*fakeHost)(nil)

func newFakeHost(log *eventLog) *fakeHost {
	return &fakeHost{
		log: log,
		smart: map[string]proxmox.SMARTReport{
			"/dev/sda":     {Device: "/dev/sda", Model: "Samsung SSD 870 EVO 500GB", Serial: "S6PXNM0T", Passed: true, Temperature: 33, PowerOnHours: 12034},
			"/dev/nvme0n1": {Device: "/dev/nvme0n1", Model: "WD Blue SN570 1TB", Serial: "22171X", Passed: true, Temperature: 41, PowerOnHours: 800},
			"/dev/sdb":     {Device: "/dev/sdb", Model: "ST2000DM008-2FR102", Serial: "ZFL0ABCD", Passed: false, Temperature: 39, PowerOnHours: 40000, Reallocated: 2144, ExitStatus: 8},
		},
		smartErr: map[string]error{},
		sensors: []proxmox.SensorReading{
			{Chip: "coretemp-isa-0000", Adapter: "ISA adapter", Label: "Package id 0", Celsius: 48, High: 80, Crit: 100},
			{Chip: "nvme-pci-0100", Adapter: "PCI adapter", Label: "Composite", Celsius: 41.85, High: 84.85, Crit: 84.85},
		},
	}
}

func (h *fakeHost) CreateGoldenLXC(_ context.Context, spec proxmox.GoldenSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.golden = append(h.golden, spec)
	h.log.add("CreateGoldenLXC %d", spec.VMID)
	return nil
}

func (h *fakeHost) MountUSBByUUID(_ context.Context, uuid, target string) (string, error) {
	if !strings.HasPrefix(target, "/mnt/") {
		return "", fmt.Errorf("mount target %q is not under /mnt/", target)
	}
	return target, nil
}

func (h *fakeHost) SMART(_ context.Context, device string) (proxmox.SMARTReport, error) {
	if err := h.smartErr[device]; err != nil {
		return proxmox.SMARTReport{}, err
	}
	r, ok := h.smart[device]
	if !ok {
		return r, &proxmox.ExitError{Argv: []string{"smartctl", "--json", "-a", device}, Code: 2, Stderr: "No such device"}
	}
	return r, nil
}

func (h *fakeHost) Sensors(context.Context) ([]proxmox.SensorReading, error) {
	return h.sensors, h.sensorsErr
}

// fakeLocks is a working in-memory GuestLocker that logs lock and unlock
// and announces on waiting each LockGuest call that has to wait.
type fakeLocks struct {
	log     *eventLog
	waiting chan int

	mu   sync.Mutex
	held map[int]chan struct{}
}

var _ GuestLocker = (*fakeLocks)(nil)

func newFakeLocks(log *eventLog) *fakeLocks {
	return &fakeLocks{log: log, held: map[int]chan struct{}{}}
}

func (l *fakeLocks) LockGuest(ctx context.Context, vmid int) (func(), error) {
	for {
		l.mu.Lock()
		busy, ok := l.held[vmid]
		if !ok {
			released := make(chan struct{})
			l.held[vmid] = released
			l.mu.Unlock()
			l.log.add("lock %d", vmid)
			return sync.OnceFunc(func() {
				l.mu.Lock()
				delete(l.held, vmid)
				l.mu.Unlock()
				l.log.add("unlock %d", vmid)
				close(released)
			}), nil
		}
		l.mu.Unlock()
		if l.waiting != nil {
			l.waiting <- vmid
		}
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("guest %d is busy: %w", vmid, ctx.Err())
		}
	}
}

// fakeGauges records the last value of every gauge.
type fakeGauges struct {
	mu     sync.Mutex
	values map[string]float64 // name{k=v,...} → value
}

func (g *fakeGauges) SetGauge(name string, labels map[string]string, value float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.values == nil {
		g.values = map[string]float64{}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	g.values[name+"{"+strings.Join(parts, ",")+"}"] = value
}

func (g *fakeGauges) Gauge(name string, labels map[string]string) (float64, bool) {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return g.get(name + "{" + strings.Join(parts, ",") + "}")
}

func (g *fakeGauges) get(key string) (float64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.values[key]
	return v, ok
}

// testRig is one run's Env over the fakes.
type testRig struct {
	env    *Env
	pve    *fakePVE
	host   *fakeHost
	locks  *fakeLocks
	gauges *fakeGauges
	log    *eventLog
}

func newRig(t testing.TB) *testRig {
	log := &eventLog{}
	r := &testRig{log: log, pve: loadFakePVE(t, log), host: newFakeHost(log), locks: newFakeLocks(log), gauges: &fakeGauges{}}
	r.env = &Env{
		Context: t.Context(),
		Logger:  slog.New(slog.DiscardHandler),
		Proxmox: r.pve,
		Host:    r.host,
		Locks:   r.locks,
		Gauges:  r.gauges,
	}
	return r
}

// starModules is the predeclared environment of the tests' scripts.
func starModules(t testing.TB) starlark.StringDict {
	t.Helper()
	assert, err := starlarktest.LoadAssertModule()
	if err != nil {
		t.Fatal(err)
	}
	return starlark.StringDict{
		"proxmox": ProxmoxTable.Module(),
		"task":    TaskTable.Module(),
		"host":    HostTable.Module(),
		"monitor": MonitorTable.Module(),
		"hub":     HubTable.Module(),
		"guest":   GuestTable.Module(),
		"assert":  assert["assert"],
		"catch":   starlark.NewBuiltin("catch", catch),
	}
}

// runStar executes src on a new thread carrying env (nil: a file being loaded)
// and returns its globals.
func runStar(t testing.TB, env *Env, src string) (starlark.StringDict, error) {
	t.Helper()
	thread := &starlark.Thread{Name: t.Name()}
	starlarktest.SetReporter(thread, t)
	if env != nil {
		SetEnv(thread, env)
	}
	opts := &syntax.FileOptions{TopLevelControl: true, GlobalReassign: true, While: true}
	return starlark.ExecFileOptions(opts, thread, t.Name()+".star", src, starModules(t))
}
