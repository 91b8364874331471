package pvetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Conformance runs every case against the host c talks to, in order, each
// as a subtest named after it. Later cases use what earlier ones made (the
// snapshot task, the backup archive, the restored guest); a case whose
// input is missing because an earlier case failed skips, naming it.
// A case that needs a World hook that is nil skips, naming the hook.
//
// Conformance first checks that the host matches w (Running runs, Stopped
// is stopped, Scratch is free, the storages exist) and stops with
// t.Fatal if not; when t ends it undoes what the cases changed.
func Conformance(t *testing.T, c *proxmox.Client, w World) {
	t.Helper()
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
	s := &suite{c: c, w: w, node: c.Node(), snapName: snapshotName()}
	s.precheck(t)
	t.Cleanup(func() { s.undo(t) })
	for _, tc := range cases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("rule: %s", tc.rule)
				}
			})
			for _, hook := range tc.hooks {
				if why := s.missingHook(hook); why != "" {
					t.Skip(why)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), w.caseTimeout())
			defer cancel()
			s.ctx = ctx
			tc.run(t, s)
		})
	}
}

// testCase is one rule and the steps that check it.
type testCase struct {
	name  string
	rule  string   // what PVE does, as the PVE API notes state it
	hooks []string // World hooks the case needs: "LockGuest", ...
	run   func(t *testing.T, s *suite)
}

// cases is the whole suite in order: reads, then the failure paths of a
// missing guest and of config changes, snapshots, power, tasks, backups,
// restores, the cluster, volumes, what differs for a VM, then the wire rules seen
// through World.Endpoint.
func cases() []testCase {
	var all []testCase
	for _, group := range [][]testCase{readCases, missingCases, configCases, snapshotCases, powerCases, taskCases, backupCases, restoreCases, clusterCases, volumeCases, qemuCases, wireCases} {
		all = append(all, group...)
	}
	return all
}

// suite is the state the cases share. Fields below "made by cases" are
// filled in as cases pass.
type suite struct {
	c        *proxmox.Client
	w        World
	node     string
	ctx      context.Context // the running case's
	snapName string          // the snapshot the snapshot cases take of Stopped

	// Found at the start, for undo and for comparisons.
	stoppedConfig proxmox.GuestConfig

	// Made by cases.
	snapTask   proxmox.UPID // a vzsnapshot task that stopped OK
	failedTask proxmox.UPID // a vzsnapshot task that failed
	archive    string       // the archive the vzdump case made of Stopped
	archives   []string     // every archive the suite made, to delete at the end
	restored   bool         // Scratch exists because the suite restored it
}

func (s *suite) missingHook(name string) string {
	var nilHook bool
	switch name {
	case "LockGuest":
		nilHook = s.w.LockGuest == nil
	case "DenyAtRequest":
		nilHook = s.w.DenyAtRequest == nil
	case "DenyAtTaskTime":
		nilHook = s.w.DenyAtTaskTime == nil
	case "HoldTasks":
		nilHook = s.w.HoldTasks == nil
	case "Endpoint":
		nilHook = s.w.Endpoint == nil
	case "ProxyError":
		nilHook = s.w.ProxyError == nil
	case "RawLXCGuest":
		if s.w.RawLXCGuest == 0 {
			return "World.RawLXCGuest is 0: no container with raw lxc.* keys"
		}
	case "StoppedVM":
		if s.w.StoppedVM == 0 {
			return "World.StoppedVM is 0: no VM to run the VM cases on"
		}
	default:
		return "unknown hook " + name
	}
	if nilHook {
		return fmt.Sprintf("World.%s is nil: the implementation cannot create this situation on demand", name)
	}
	return ""
}

// snapshotName is a pve-configid unlikely to exist on a real host.
func snapshotName() string {
	return "felhomconf" + strings.ToLower(fmt.Sprintf("%x", time.Now().Unix()))
}

// precheck stops the test when the host does not look like w says.
func (s *suite) precheck(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.w.caseTimeout())
	defer cancel()
	want := func(vmid int, status string) {
		st, err := s.c.GuestStatus(ctx, proxmox.LXC, vmid)
		if err != nil {
			t.Fatalf("World: guest %d: %v", vmid, err)
		}
		if st.Status != status || st.Lock != "" || st.Template {
			t.Fatalf("World: guest %d is %s (lock %q, template %v); want %s, unlocked, no template", vmid, st.Status, st.Lock, st.Template, status)
		}
	}
	want(s.w.Running, "running")
	want(s.w.Stopped, "stopped")
	if _, err := s.c.GuestStatus(ctx, proxmox.LXC, s.w.Scratch); !proxmox.IsNotFound(err) {
		t.Fatalf("World: Scratch guest %d must not exist; GuestStatus = %v", s.w.Scratch, err)
	}
	gc, err := s.c.GuestConfig(ctx, proxmox.LXC, s.w.Stopped)
	if err != nil {
		t.Fatalf("World: config of guest %d: %v", s.w.Stopped, err)
	}
	s.stoppedConfig = gc
	stores, err := s.c.Storages(ctx)
	if err != nil {
		t.Fatalf("World: storages: %v", err)
	}
	for _, need := range []struct{ id, content string }{{s.w.BackupStorage, "backup"}, {s.w.GuestStorage, "rootdir"}} {
		i := slices.IndexFunc(stores, func(st proxmox.Storage) bool { return st.Storage == need.id })
		if i < 0 || !slices.Contains(stores[i].Content, need.content) {
			t.Fatalf("World: storage %q with content %q not found in %v", need.id, need.content, stores)
		}
	}
}

// undo puts back what the cases changed. It runs when the whole suite
// ends and only logs what it could not undo.
func (s *suite) undo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), s.w.caseTimeout())
	defer cancel()
	wait := func(what string, upid proxmox.UPID, err error) {
		if err == nil {
			_, err = s.c.WaitTask(ctx, upid, s.w.Wait)
		}
		if err != nil {
			t.Logf("undo: %s: %v", what, err)
		}
	}
	if snaps, err := s.c.Snapshots(ctx, proxmox.LXC, s.w.Stopped); err == nil {
		for _, sn := range snaps {
			if strings.HasPrefix(sn.Name, s.snapName) {
				upid, err := s.c.DeleteSnapshot(ctx, proxmox.LXC, s.w.Stopped, sn.Name)
				wait("delete snapshot "+sn.Name, upid, err)
			}
		}
	}
	if gc, err := s.c.GuestConfig(ctx, proxmox.LXC, s.w.Stopped); err == nil && gc.Description != s.stoppedConfig.Description {
		var err error
		if s.stoppedConfig.Description == "" {
			_, err = s.c.SetConfig(ctx, proxmox.LXC, s.w.Stopped, nil, []string{"description"})
		} else {
			_, err = s.c.SetConfig(ctx, proxmox.LXC, s.w.Stopped, map[string]string{"description": s.stoppedConfig.Description}, nil)
		}
		wait("restore the description of guest "+fmt.Sprint(s.w.Stopped), proxmox.UPID{}, err)
	}
	if st, err := s.c.GuestStatus(ctx, proxmox.LXC, s.w.Running); err == nil && st.Status != "running" {
		upid, err := s.c.Start(ctx, proxmox.LXC, s.w.Running)
		wait(fmt.Sprintf("start guest %d again", s.w.Running), upid, err)
	}
	if s.restored {
		if _, err := s.c.GuestStatus(ctx, proxmox.LXC, s.w.Scratch); err == nil {
			upid, err := s.c.DeleteGuest(ctx, proxmox.LXC, s.w.Scratch, true)
			wait(fmt.Sprintf("destroy guest %d", s.w.Scratch), upid, err)
		}
	}
	for _, volid := range s.archives {
		upid, err := s.c.DeleteVolume(ctx, s.w.BackupStorage, volid)
		if proxmox.IsNotFound(err) {
			continue
		}
		wait("delete archive "+volid, upid, err)
	}
}

// --- helpers the cases share ---------------------------------------------

func (s *suite) vm(vmid int) string { return "/vms/" + itoa(vmid) }

func itoa(n int) string { return strconv.Itoa(n) }

// wait waits for a task with the World's options.
func (s *suite) wait(upid proxmox.UPID) (proxmox.TaskStatus, error) {
	return s.c.WaitTask(s.ctx, upid, s.w.Wait)
}

// mustDone runs a step that must succeed: the request and its task.
func (s *suite) mustDone(t *testing.T, what string, upid proxmox.UPID, err error) proxmox.TaskStatus {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: request failed: %v", what, err)
	}
	st, err := s.wait(upid)
	if err != nil {
		t.Fatalf("%s: task %s failed: %v", what, upid, err)
	}
	if !st.Succeeded() {
		t.Fatalf("%s: task %s = %+v; want it stopped OK", what, upid, st)
	}
	return st
}

// wantAPIError asserts that err is PVE refusing the request with status
// and exactly msg (compared without PVE's trailing newline).
func wantAPIError(t *testing.T, what string, err error, status int, msg string) *proxmox.APIError {
	t.Helper()
	ae, ok := errors.AsType[*proxmox.APIError](err)
	if !ok {
		t.Fatalf("%s: err = %v (%T); want an *APIError %d %q", what, err, err, status, msg)
	}
	if ae.Status != status || (msg != "" && ae.Message != msg) {
		t.Fatalf("%s: APIError = %d %q; want %d %q", what, ae.Status, ae.Message, status, msg)
	}
	return ae
}

// wantTaskError asserts that a mutation was accepted and its task failed
// with exactly exit as exit status, the log's last line saying so.
func (s *suite) wantTaskError(t *testing.T, what string, upid proxmox.UPID, reqErr error, exit string) *proxmox.TaskError {
	t.Helper()
	if reqErr != nil {
		t.Fatalf("%s: the request failed (%v); PVE refuses this inside the task, so the request returns a UPID", what, reqErr)
	}
	st, err := s.wait(upid)
	te, ok := errors.AsType[*proxmox.TaskError](err)
	if !ok {
		t.Fatalf("%s: WaitTask = %+v, %v; want a *TaskError %q", what, st, err, exit)
	}
	if te.ExitStatus != exit || st.ExitStatus != exit || st.Running() {
		t.Fatalf("%s: task stopped with %q (status %+v); want %q", what, te.ExitStatus, st, exit)
	}
	if te.UPID != upid {
		t.Errorf("%s: TaskError.UPID = %s; want %s", what, te.UPID, upid)
	}
	if n := len(te.LogTail); n == 0 || te.LogTail[n-1] != "TASK ERROR: "+exit {
		t.Errorf("%s: TaskError.LogTail = %q; want it to end with %q", what, te.LogTail, "TASK ERROR: "+exit)
	}
	return te
}

// wantKind asserts proxmox.Kind's classification of err.
func wantKind(t *testing.T, what string, err error, kind string) {
	t.Helper()
	if got := proxmox.Kind(err); got != kind {
		t.Errorf("%s: Kind(%v) = %q; want %q", what, err, got, kind)
	}
}

// wantPermission asserts that err is a permission failure naming path and
// privilege.
func wantPermission(t *testing.T, what string, err error, path, privilege string) {
	t.Helper()
	p, ok := proxmox.IsPermission(err)
	if !ok {
		t.Fatalf("%s: IsPermission(%v) = false", what, err)
	}
	if p.Path != path || !slices.Equal(p.Privileges, []string{privilege}) {
		t.Errorf("%s: permission = %q %q; want %q [%s]", what, p.Path, p.Privileges, path, privilege)
	}
	wantKind(t, what, err, "permission")
}

// noRequest asserts that call fails in the Client, before anything is
// sent: the error names param, and no HTTP request was made.
func (s *suite) noRequest(t *testing.T, what, param string, call func(ctx context.Context) error) {
	t.Helper()
	var n requestCounter
	err := call(proxmox.WithObserver(s.ctx, &n))
	if err == nil || !strings.Contains(err.Error(), param) {
		t.Errorf("%s: err = %v; want a client-side error naming %q", what, err, param)
	}
	if got := n.requests.Load(); got != 0 {
		t.Errorf("%s: %d requests sent; want the Client to refuse before sending", what, got)
	}
}

// firstAnswer is an Observer that ends a call's context once its first
// HTTP attempt has finished, so that a read the client would retry
// returns that attempt's answer.
type firstAnswer struct{ end context.CancelFunc }

func (f firstAnswer) Request(proxmox.RequestInfo)                                     { f.end() }
func (firstAnswer) TaskStarted(proxmox.UPID)                                          {}
func (firstAnswer) TaskWaited(proxmox.UPID, time.Duration, proxmox.TaskStatus, error) {}

// requestCounter is an Observer counting HTTP attempts.
type requestCounter struct{ requests atomic.Int64 }

func (r *requestCounter) Request(proxmox.RequestInfo)                                       { r.requests.Add(1) }
func (r *requestCounter) TaskStarted(proxmox.UPID)                                          {}
func (r *requestCounter) TaskWaited(proxmox.UPID, time.Duration, proxmox.TaskStatus, error) {}
