package builtins

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestMutationRequests checks what each mutation asks of the client: the
// Starlark arguments converted to the proxmox options.
func TestMutationRequests(t *testing.T) {
	rig := newRig(t)
	_, err := runStar(t, rig.env, `
proxmox.set_config(101, set = {"cores": 2, "onboot": True, "protection": False, "description": "web"}, delete = ["mp1", "net1"])
proxmox.vzdump(vmids = (102, 101), storage = "usb-backup", mode = "stop", compress = "gzip", notes = "{{guestname}}", remove = True, timeout = 90)
proxmox.restore(9001, "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst", storage = "local-lvm", force = True, unique = True, start = True, hostname = "web2", config = {"onboot": False, "net0": "name=eth0,bridge=vmbr0,link_down=1"})
proxmox.shutdown(101, timeout = "2m")
`)
	if err != nil {
		t.Fatal(err)
	}
	p := rig.pve
	wantSet := map[string]string{"cores": "2", "onboot": "1", "protection": "0", "description": "web"}
	if !maps.Equal(p.lastSet, wantSet) || !slices.Equal(p.lastDel, []string{"mp1", "net1"}) {
		t.Errorf("SetConfig(set=%v, delete=%v); want %v, [mp1 net1]", p.lastSet, p.lastDel, wantSet)
	}
	wantDump := proxmox.VzdumpOptions{VMIDs: []int{102, 101}, Storage: "usb-backup", Mode: "stop", Compress: "gzip", Notes: "{{guestname}}", Remove: true}
	if d := p.lastDump; !slices.Equal(d.VMIDs, wantDump.VMIDs) || d.Storage != wantDump.Storage || d.Mode != wantDump.Mode ||
		d.Compress != wantDump.Compress || d.Notes != wantDump.Notes || d.Remove != wantDump.Remove || d.All {
		t.Errorf("Vzdump(%+v); want %+v", d, wantDump)
	}
	wantRestore := proxmox.RestoreOptions{Kind: proxmox.LXC, VMID: 9001, Archive: "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst", Storage: "local-lvm", Force: true, Unique: true, Start: true, Hostname: "web2",
		Config: map[string]string{"onboot": "0", "net0": "name=eth0,bridge=vmbr0,link_down=1"}}
	if !reflect.DeepEqual(p.lastRest, wantRestore) {
		t.Errorf("RestoreGuest(%+v); want %+v", p.lastRest, wantRestore)
	}
	if p.shutdown != 120 {
		t.Errorf("Shutdown timeout = %d; want 120", p.shutdown)
	}
}

// TestWaitTimeout checks that a per-call timeout overrides only the
// timeout of the run's wait options.
func TestWaitTimeout(t *testing.T) {
	tests := []struct {
		call string
		want time.Duration
	}{
		{`proxmox.start(101)`, time.Hour},
		{`proxmox.start(101, timeout = 90)`, 90 * time.Second},
		{`proxmox.start(101, timeout = "10m")`, 10 * time.Minute},
		{`task.wait(proxmox.start(101, wait = False), timeout = "1h30m")`, 90 * time.Minute},
	}
	for _, tt := range tests {
		rig := newRig(t)
		rig.env.Wait = proxmox.WaitOptions{Timeout: time.Hour, LogTail: 7}
		if _, err := runStar(t, rig.env, tt.call); err != nil {
			t.Fatalf("%s: %v", tt.call, err)
		}
		if got := rig.pve.lastWait; got.Timeout != tt.want || got.LogTail != 7 {
			t.Errorf("%s: WaitTask options %+v; want timeout %v, log tail 7", tt.call, got, tt.want)
		}
	}
}

// historyOf is a task history that expects each worker type to run a
// fixed time.
type historyOf map[string]time.Duration

func (h historyOf) ExpectedDuration(_ context.Context, upid proxmox.UPID) time.Duration {
	return h[upid.Type]
}

// TestWaitHistory: every task wait of a run nobody follows expects its
// task to run as long as the history says (WaitOptions.Expected), 0
// without one.
func TestWaitHistory(t *testing.T) {
	tests := []struct {
		call    string
		history TaskHistory
		want    time.Duration
	}{
		{`proxmox.start(101)`, historyOf{"vzstart": 3 * time.Second}, 3 * time.Second},
		{`task.wait(proxmox.vzdump(101, storage = "usb-backup", wait = False))`, historyOf{"vzdump": time.Hour}, time.Hour},
		{`proxmox.start(101)`, historyOf{"vzdump": time.Hour}, 0},
		{`proxmox.start(101)`, nil, 0},
	}
	for _, tt := range tests {
		rig := newRig(t)
		rig.env.History = tt.history
		if _, err := runStar(t, rig.env, tt.call); err != nil {
			t.Fatalf("%s: %v", tt.call, err)
		}
		if got := rig.pve.lastWait.Expected; got != tt.want {
			t.Errorf("%s: WaitTask expected %v; want %v", tt.call, got, tt.want)
		}
		// A followed run keeps the ordinary schedule: its task logs are
		// read at polls, which history would make sparse.
		rig.env.Progress.Followers = Followed
		if _, err := runStar(t, rig.env, tt.call); err != nil {
			t.Fatalf("%s: %v", tt.call, err)
		}
		if got := rig.pve.lastWait.Expected; got != 0 {
			t.Errorf("%s, followed: WaitTask expected %v; want 0", tt.call, got)
		}
	}
}

// TestWaitSemantics checks that wait = True waits for the task (inside the
// guest lock) and wait = False returns after the request, unlocking first.
func TestWaitSemantics(t *testing.T) {
	tests := []struct {
		call string
		want []string
	}{
		{`proxmox.start(101)`, []string{"lock 101", "Start 101", "wait vzstart", "done vzstart", "unlock 101"}},
		{`proxmox.start(101, wait = False)`, []string{"lock 101", "Start 101", "unlock 101"}},
		{`proxmox.vzdump(101, storage = "usb-backup")`, []string{"lock 101", "Vzdump 101", "wait vzdump", "done vzdump", "VzdumpBackups 101 usb-backup", "unlock 101"}},
		{`proxmox.vzdump(vmids = [102, 101], storage = "usb-backup")`, []string{"lock 101", "lock 102", "Vzdump ", "wait vzdump", "done vzdump", "unlock 102", "unlock 101"}},
		{`proxmox.vzdump(all = True, storage = "usb-backup", wait = False)`, []string{"lock 101", "lock 102", "lock 200", "lock 9000", "Vzdump ", "unlock 9000", "unlock 200", "unlock 102", "unlock 101"}},
		{`proxmox.delete_volume("usb-backup", "usb-backup:backup/x.tar.zst")`, []string{"DeleteVolume 101@usb-backup", "wait imgdel", "done imgdel"}},
		{`host.create_golden(9001, "local:vztmpl/d.tar.zst", "golden")`, []string{"lock 9001", "CreateGoldenLXC 9001", "unlock 9001"}},
	}
	for _, tt := range tests {
		rig := newRig(t)
		if _, err := runStar(t, rig.env, tt.call); err != nil {
			t.Fatalf("%s: %v", tt.call, err)
		}
		if got := rig.log.all(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: events\n%q\nwant\n%q", tt.call, got, tt.want)
		}
	}
}

// TestSetConfigSync: a zero UPID is synchronous success, not an error.
func TestSetConfigSync(t *testing.T) {
	rig := newRig(t) // the fake applies LXC config changes synchronously, like PVE
	g, err := runStar(t, rig.env, `c = proxmox.set_config(101, set = {"memory": 2048})`)
	if err != nil {
		t.Fatal(err)
	}
	c := g["c"].(starlark.HasAttrs)
	for field, want := range map[string]starlark.Value{
		"upid": starlark.String(""), "status": starlark.String("stopped"), "exitstatus": starlark.String("OK"),
		"ok": starlark.True, "sync": starlark.True, "type": starlark.String(""),
	} {
		if got, _ := c.Attr(field); got != want {
			t.Errorf("set_config().%s = %v; want %v", field, got, want)
		}
	}
	if got, want := rig.log.all(), []string{"lock 101", "SetConfig 101", "unlock 101"}; !slices.Equal(got, want) {
		t.Errorf("events %q; want %q (no wait)", got, want)
	}
}

// TestSetConfigAsync: a path that answers with a UPID (QEMU's config) is
// waited for like any other mutation.
func TestSetConfigAsync(t *testing.T) {
	rig := newRig(t)
	rig.pve.asyncConf = true
	g, err := runStar(t, rig.env, `c = proxmox.set_config(101, set = {"memory": 2048})`)
	if err != nil {
		t.Fatal(err)
	}
	if got := attrOf(t, g["c"], "sync"); got != starlark.False {
		t.Errorf("sync = %v; want False", got)
	}
	if got, want := rig.log.all(), []string{"lock 101", "SetConfig 101", "wait qmconfig", "done qmconfig", "unlock 101"}; !slices.Equal(got, want) {
		t.Errorf("events %q; want %q", got, want)
	}
}

// TestTaskFailureKeepsType: a task that fails inside PVE with a permission
// error reaches Go callers of the script as a *proxmox.TaskError, through
// starlark's *EvalError, with the privilege parsed, exactly as the client
// built it. A client that breaks WaitTask's contract (a failed status
// without its error) still fails the call, naming the exit status.
func TestTaskFailureKeepsType(t *testing.T) {
	const exit = "Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"
	{
		rig := newRig(t)
		rig.pve.exit["vzdump"] = exit
		rig.pve.quiet = true
		_, err := runStar(t, rig.env, `proxmox.vzdump(101, storage = "usb-backup")`)
		if err == nil || !strings.Contains(err.Error(), exit) || !strings.Contains(err.Error(), "the wait reported no error") {
			t.Errorf("a failed status without an error: err = %v; want a failure naming %q", err, exit)
		}
		if got := rig.log.all(); got[len(got)-1] != "unlock 101" {
			t.Errorf("lock not released after failure: %q", got)
		}
	}
	{
		rig := newRig(t)
		rig.pve.exit["vzdump"] = exit
		_, err := runStar(t, rig.env, `proxmox.vzdump(101, storage = "usb-backup")`)
		var evalErr *starlark.EvalError
		if !errors.As(err, &evalErr) {
			t.Fatalf("err = %v (%T); want *starlark.EvalError", err, err)
		}
		te, ok := errors.AsType[*proxmox.TaskError](err)
		if !ok {
			t.Fatalf("err = %v; want a *proxmox.TaskError in the chain", err)
		}
		if te.ExitStatus != exit || te.Permission == nil || te.Permission.Path != "/storage/usb-backup" ||
			!slices.Equal(te.Permission.Privileges, []string{"Datastore.AllocateSpace"}) {
			t.Errorf("TaskError = %+v (permission %+v)", te, te.Permission)
		}
		if len(te.LogTail) == 0 {
			t.Errorf("TaskError has no log tail")
		}
		if p, ok := proxmox.IsPermission(err); !ok || p.Privileges[0] != "Datastore.AllocateSpace" {
			t.Errorf("IsPermission(err) = %v, %v", p, ok)
		}
		if !strings.HasPrefix(evalErr.Msg, "proxmox.vzdump: task vzdump") {
			t.Errorf("message %q; want it to start with the builtin's name", evalErr.Msg)
		}
		if got := rig.log.all(); got[len(got)-1] != "unlock 101" {
			t.Errorf("lock not released after failure: %q", got)
		}
	}
}

// TestErrorsPassThrough: API errors from the request keep their type, both
// through a script and through starlark.Call of the builtin.
func TestErrorsPassThrough(t *testing.T) {
	rig := newRig(t)
	rig.pve.errs["Start"] = &proxmox.APIError{Method: "POST", Path: "/nodes/pve/lxc/101/status/start", Status: 500, Message: "CT is locked (backup)"}
	thread := &starlark.Thread{}
	SetEnv(thread, rig.env)
	fn := ProxmoxTable.Module().Members["start"]
	_, err := starlark.Call(thread, fn, starlark.Tuple{starlark.MakeInt(101)}, nil)
	if lock, ok := proxmox.IsLocked(err); !ok || lock != "backup" {
		t.Errorf("IsLocked(%v) = %q, %v; want backup, true", err, lock, ok)
	}
	if _, ok := errors.AsType[*proxmox.APIError](err); !ok {
		t.Errorf("err %v: want *proxmox.APIError in the chain", err)
	}
	if got := rig.log.all(); !slices.Equal(got, []string{"lock 101", "unlock 101"}) {
		t.Errorf("events %q; want the lock released after a refused request", got)
	}
}

// TestVzdumpArchiveMissing: a backup whose archive cannot be found fails,
// saying the task itself succeeded.
func TestVzdumpArchiveMissing(t *testing.T) {
	rig := newRig(t)
	_, err := runStar(t, rig.env, `proxmox.vzdump(101, storage = "local")`)
	if err == nil || !strings.Contains(err.Error(), "succeeded, but its archive on local was not found") {
		t.Errorf("err = %v; want the missing archive reported", err)
	}
}

// TestLocksSerialize: two runs mutating the same guest at once: the second
// waits for the first's task to end before it sends its request.
func TestLocksSerialize(t *testing.T) {
	rig := newRig(t)
	release := make(chan struct{})
	rig.pve.block = release
	rig.pve.waiting = make(chan proxmox.UPID, 2)
	rig.locks.waiting = make(chan int, 1)

	errc := make(chan error, 2)
	start := func() {
		_, err := runStar(t, rig.env, `proxmox.start(101)`)
		errc <- err
	}
	go start()
	<-rig.pve.waiting // the first holds the lock and waits for its task
	go start()
	select {
	case <-rig.locks.waiting: // the second is waiting for the lock
	case <-rig.pve.waiting:
		close(release)
		t.Fatalf("the second run reached its task while the first held the lock: %q", rig.log.all())
	}
	if got, want := rig.log.all(), []string{"lock 101", "Start 101", "wait vzstart"}; !slices.Equal(got, want) {
		close(release)
		t.Fatalf("while the first waits: events %q; want %q", got, want)
	}
	close(release)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"lock 101", "Start 101", "wait vzstart", "done vzstart", "unlock 101",
		"lock 101", "Start 101", "wait vzstart", "done vzstart", "unlock 101"}
	if got := rig.log.all(); !slices.Equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

// TestCancelWhileWaiting: cancelling the run's context while a mutation
// waits for its task returns the context's error and releases the lock.
func TestCancelWhileWaiting(t *testing.T) {
	rig := newRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	rig.env.Context = ctx
	rig.pve.block = make(chan struct{}) // never released
	rig.pve.waiting = make(chan proxmox.UPID, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := runStar(t, rig.env, `proxmox.vzdump(101, storage = "usb-backup")`)
		errc <- err
	}()
	select {
	case <-rig.pve.waiting:
	case err := <-errc:
		t.Fatalf("proxmox.vzdump returned (%v) before waiting for its task", err)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled in the chain", err)
	}
	if got := rig.log.all(); got[len(got)-1] != "unlock 101" {
		t.Errorf("events %q; want the lock released", got)
	}
}

// TestCancelWhileLocking: a run waiting for another run's guest lock stops
// waiting when it is cancelled, without sending its request.
func TestCancelWhileLocking(t *testing.T) {
	rig := newRig(t)
	unlock, err := rig.locks.LockGuest(t.Context(), 101)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(t.Context())
	rig.env.Context = ctx
	rig.locks.waiting = make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := runStar(t, rig.env, `proxmox.stop(101)`)
		errc <- err
	}()
	select {
	case <-rig.locks.waiting:
	case err := <-errc:
		t.Fatalf("proxmox.stop returned (%v) without waiting for the held lock", err)
	}
	cancel()
	err = <-errc
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "proxmox.stop: lock guest 101") {
		t.Errorf("err = %v; want proxmox.stop: lock guest 101: ... context canceled", err)
	}
	if slices.Contains(rig.log.all(), "Stop 101") {
		t.Error("the request was sent without the lock")
	}
}

// TestNoProxmox: without a client every proxmox and task builtin says so.
func TestNoProxmox(t *testing.T) {
	rig := newRig(t)
	rig.env.Proxmox = nil
	for _, call := range []string{`proxmox.version()`, `proxmox.start(101)`, `task.status("UPID:pve:00001A2B:0001E240:673D6A01:vzdump:101:root@pam:")`, `monitor.node()`} {
		_, err := runStar(t, rig.env, call)
		name := call[:strings.Index(call, "(")]
		if err == nil || !strings.Contains(err.Error(), name+": no Proxmox API configured") {
			t.Errorf("%s: err = %v; want %q", call, err, name+": no Proxmox API configured")
		}
	}
}

// loadTimeCalls is a valid call of every acting builtin of the four
// tables; TestLoadTime fails if a function is missing here.
var loadTimeCalls = map[string]string{
	"proxmox.node":            `proxmox.node()`,
	"monitor.gauge_value":     `monitor.gauge_value("x")`,
	"proxmox.wait_status":     `proxmox.wait_status(101)`,
	"proxmox.version":         `proxmox.version()`,
	"proxmox.nodes":           `proxmox.nodes()`,
	"proxmox.node_status":     `proxmox.node_status()`,
	"proxmox.resources":       `proxmox.resources()`,
	"proxmox.guests":          `proxmox.guests()`,
	"proxmox.cluster":         `proxmox.cluster()`,
	"proxmox.locate":          `proxmox.locate(101)`,
	"proxmox.guest":           `proxmox.guest(101)`,
	"proxmox.config":          `proxmox.config(101)`,
	"proxmox.storages":        `proxmox.storages()`,
	"proxmox.node_storages":   `proxmox.node_storages()`,
	"proxmox.content":         `proxmox.content("local")`,
	"proxmox.snapshots":       `proxmox.snapshots(101)`,
	"proxmox.tasks":           `proxmox.tasks()`,
	"proxmox.next_id":         `proxmox.next_id()`,
	"proxmox.disks":           `proxmox.disks()`,
	"proxmox.smart":           `proxmox.smart("/dev/sda")`,
	"proxmox.restore":         `proxmox.restore(101, "local:backup/a.tar.zst")`,
	"proxmox.vzdump":          `proxmox.vzdump(101, storage = "local")`,
	"proxmox.snapshot":        `proxmox.snapshot(101, "s1")`,
	"proxmox.rollback":        `proxmox.rollback(101, "s1")`,
	"proxmox.delete_snapshot": `proxmox.delete_snapshot(101, "s1")`,
	"proxmox.start":           `proxmox.start(101)`,
	"proxmox.stop":            `proxmox.stop(101)`,
	"proxmox.reboot":          `proxmox.reboot(101)`,
	"proxmox.shutdown":        `proxmox.shutdown(101)`,
	"proxmox.delete_guest":    `proxmox.delete_guest(101)`,
	"proxmox.delete_volume":   `proxmox.delete_volume("local", "local:backup/a.tar.zst")`,
	"proxmox.record_drill":    `proxmox.record_drill("local:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst", ok = True)`,
	"proxmox.set_config":      `proxmox.set_config(101, set = {"cores": 1})`,
	"task.wait":               `task.wait("UPID:pve:00001A2B:0001E240:673D6A01:vzdump:101:root@pam:")`,
	"task.status":             `task.status("UPID:pve:00001A2B:0001E240:673D6A01:vzdump:101:root@pam:")`,
	"task.log":                `task.log("UPID:pve:00001A2B:0001E240:673D6A01:vzdump:101:root@pam:")`,
	"task.stop":               `task.stop("UPID:pve:00001A2B:0001E240:673D6A01:vzdump:101:root@pam:")`,
	"host.create_golden":      `host.create_golden(9000, "local:vztmpl/d.tar.zst", "golden")`,
	"host.mount_usb":          `host.mount_usb("0a1b", "/mnt/usb")`,
	"host.smart":              `host.smart("/dev/sda")`,
	"host.sensors":            `host.sensors()`,
	"monitor.node":            `monitor.node()`,
	"monitor.storage":         `monitor.storage()`,
	"monitor.smart":           `monitor.smart()`,
	"monitor.sensors":         `monitor.sensors()`,
	"monitor.tunnel":          `monitor.tunnel()`,
	"monitor.all":             `monitor.all()`,
	"monitor.gauge":           `monitor.gauge("x", 1)`,
	"hub.desired_state":       `hub.desired_state()`,
}

// TestLoadTime: every acting builtin refuses while a file loads (a thread
// without an Env), with ErrAtLoadTime named after the builtin; host.enabled
// answers False.
func TestLoadTime(t *testing.T) {
	for _, table := range []*Table{ProxmoxTable, TaskTable, HostTable, MonitorTable, HubTable} {
		for _, f := range table.Funcs {
			name := table.Name + "." + f.Name
			if name == "host.enabled" {
				continue
			}
			call, ok := loadTimeCalls[name]
			if !ok {
				t.Errorf("%s: no call in loadTimeCalls", name)
				continue
			}
			_, err := runStar(t, nil, call)
			if !errors.Is(err, ErrAtLoadTime) || !strings.HasPrefix(err.Error(), name+": may only be called while a playbook runs") {
				t.Errorf("%s at load time: err = %v; want %s: %v", call, err, name, ErrAtLoadTime)
			}
		}
	}
	g, err := runStar(t, nil, `e = host.enabled()`)
	if err != nil || g["e"] != starlark.False {
		t.Errorf("host.enabled() at load time = %v, %v; want False", g["e"], err)
	}
}

// TestCheckSnapshotName: PVE's snapshot name format, a letter then 1 to 39
// letters, digits, '_' or '-' (pve-snapshot-name), checked before any
// request.
func TestCheckSnapshotName(t *testing.T) {
	for name, ok := range map[string]bool{
		"pre":                         true,
		"Pre-Upgrade_2":               true,
		"ab":                          true,
		"a" + strings.Repeat("b", 39): true,
		"a" + strings.Repeat("b", 40): false,
		"a":                           false,
		"":                            false,
		"1st":                         false,
		"_x":                          false,
		"-x":                          false,
		"a b":                         false,
		"a.b":                         false,
		"a@b":                         false, // '@' | 0x20 is '`', not a letter
		"a[b":                         false,
		"é1":                          false,
		"aé":                          false,
		"a\x00":                       false,
	} {
		if err := checkSnapshotName(name); (err == nil) != ok {
			t.Errorf("checkSnapshotName(%q) = %v; want ok %v", name, err, ok)
		}
	}
}
