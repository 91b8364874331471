package builtins

import (
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/starlarktest"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestTaskValue: a task reads, compares, prints and freezes as a struct of
// its fields would, under its own type name; comparing it with a struct
// is False, not a crash (starlarkstruct's equality assumes every "struct"
// is its own).
func TestTaskValue(t *testing.T) {
	rig := newRig(t)
	thread := &starlark.Thread{Name: t.Name()}
	starlarktest.SetReporter(thread, t)
	SetEnv(thread, rig.env)
	modules := starModules(t)
	modules["struct"] = starlark.NewBuiltin("struct", starlarkstruct.Make)
	_, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "task_value.star", `
a = proxmox.snapshot(101, "pre")
b = task.wait(a)
assert.eq(type(a), "task")
assert.eq(a.upid, b.upid)
assert.eq((a.node, a.type, a.id, a.status, a.exitstatus, a.ok, a.warnings, a.sync, a.storage, a.volid),
          ("pve", "vzsnapshot", "101", "stopped", "OK", True, 0, False, "", ""))
assert.eq(type(a.duration), "time.duration")
assert.eq(sorted(dir(a)), ["backups", "duration", "exitstatus", "id", "node", "ok", "status", "storage", "sync", "type", "upid", "volid", "warnings"])
assert.true(a == a)
assert.true(a != b) # another call: another duration
assert.true(a != struct(upid = a.upid))
assert.true(struct(upid = a.upid) != a)
assert.true(a not in [struct(upid = a.upid), 1, "x"])
assert.true(str(a).startswith("task(backups = [], duration = "))
assert.true(('upid = "%s"' % a.upid) in str(a))
assert.fails(lambda: {a: 1}, "unhashable")
assert.fails(lambda: a.nope, "no .nope field or method")
a.backups.append(1)
assert.eq(a.backups, [1]) # one list, kept
assert.true(bool(a))
`, modules)
	if err != nil {
		t.Fatal(err)
	}
}

// TestTaskValueFrozen: freezing a task freezes its backups list, whether
// it was read before or after.
func TestTaskValueFrozen(t *testing.T) {
	upid := proxmox.MustParseUPID("UPID:pve:00001000:0001E240:673D6A01:vzdump:101:felhom@pve!agent:")
	for _, readFirst := range []bool{false, true} {
		v := taskResult{UPID: upid, Status: "stopped", ExitStatus: "OK", Backups: []proxmox.Volume{{VolID: "usb:backup/x"}}}.value().(*taskValue)
		if readFirst {
			v.backupList()
		}
		v.Freeze()
		if err := v.backupList().Append(starlark.None); err == nil || !strings.Contains(err.Error(), "frozen") {
			t.Errorf("read first %v: append to a frozen task's backups = %v; want a frozen list", readFirst, err)
		}
	}
}

// TestTaskJournal: a task journaled and read back is the same task, its
// backups and a synchronous change's empty upid included; a malformed
// one is an error.
func TestTaskJournal(t *testing.T) {
	upid := proxmox.MustParseUPID("UPID:pve:00001000:0001E240:673D6A01:vzdump:101:felhom@pve!agent:")
	ctime := time.Date(2026, 11, 20, 3, 0, 1, 0, time.UTC)
	for name, r := range map[string]taskResult{
		"vzdump": {UPID: upid, Status: "stopped", ExitStatus: "WARNINGS: 2", Duration: 90 * time.Second, VolID: "usb:backup/x",
			Storage: "usb", Backups: []proxmox.Volume{{VolID: "usb:backup/x", Content: "backup", VMID: 101, Size: 1 << 30, CTime: ctime}}},
		"sync": syncResult(time.Millisecond),
	} {
		v := r.value()
		b, err := EncodeOutcome(v, nil)
		if err != nil {
			t.Fatalf("%s: EncodeOutcome: %v", name, err)
		}
		got, err := DecodeOutcome(b)
		if err != nil {
			t.Fatalf("%s: DecodeOutcome(%s): %v", name, b, err)
		}
		if eq, err := starlark.Equal(got, v); err != nil || !eq || got.String() != v.String() {
			t.Errorf("%s: round trip of %s = %s (%v)", name, v, got, err)
		}
	}
	for _, bad := range []string{`["K",{"upid":"nope","backups":["l",[]]}]`, `["K",{"upid":"","backups":["s","x"]}]`, `["K",[1]]`} {
		if _, err := decodeValue([]byte(bad)); err == nil {
			t.Errorf("decodeValue(%s) = nil error; want one", bad)
		}
	}
}
