package pvetest

import (
	"fmt"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// World describes the host a suite runs against: the guests and storages
// it may use, and hooks for situations a client cannot create by itself.
//
// The suites change the host, and undo what they change when the test
// ends (best effort, logged when it fails): they take, roll back and
// delete snapshots of Stopped; set Stopped's description and write the
// original back; stop, shut down and start Running (and, in a cluster,
// the third-party flows migrate it to Cluster.Other and back); back up Stopped and
// Running to BackupStorage and delete the archives they made; restore an
// archive into Scratch and destroy Scratch again. Give them guests that
// exist for testing.
type World struct {
	// Running is a running, unlocked LXC guest. Required.
	Running int
	// Stopped is a stopped, unlocked LXC guest that is not a template,
	// with its disks on storage that can take snapshots (lvmthin, zfs).
	// Required.
	Stopped int
	// StoppedVM is a stopped, unlocked QEMU VM that is not a template,
	// with its disks on storage that can take snapshots; the flows that
	// work per guest kind (goclient.Check) snapshot, start, stop and back
	// it up as they do Stopped. 0 leaves VMs out.
	StoppedVM int
	// RawLXCGuest is a stopped, unlocked container whose config has raw
	// lxc.* keys (which only root@pam can write); the suite backs it up to
	// BackupStorage, restores that into Scratch and destroys Scratch and
	// the archive again. 0 skips that case.
	RawLXCGuest int
	// Scratch is a guest id that is free when the suite starts; the
	// suite restores a backup into it and destroys it again. Required.
	Scratch int
	// BackupStorage is a directory storage with content "backup".
	// Required.
	BackupStorage string
	// GuestStorage is a storage with content "rootdir" that restores put
	// the root disk on (PVE's default, "local", usually cannot hold
	// one). Required.
	GuestStorage string

	// Wait tunes every task wait; the zero value is the Client's
	// defaults (250ms doubling to 2s), fine for a real host. Against a
	// simulator with short tasks, small intervals keep the suite fast.
	Wait proxmox.WaitOptions
	// CaseTimeout bounds each case; 0 means 2 minutes.
	CaseTimeout time.Duration

	// LockGuest sets config lock lock ("backup", "snapshot", ...) on
	// guest vmid, as an operator or a crashed task leaves it, and clears
	// it again at t's cleanup. Nil skips the cases that need it (a real
	// host offers no way for a token to set a lock).
	LockGuest func(t testing.TB, vmid int, lock string)
	// DenyAtRequest withdraws privilege on aclPath from the client's
	// token, so that the permission check of a request fails, until t's
	// cleanup. Nil skips the cases that need it.
	DenyAtRequest func(t testing.TB, aclPath, privilege string)
	// DenyAtTaskTime lets requests pass their permission check but makes
	// every worker task that checks privilege on aclPath fail with PVE's
	// permission text, until t's cleanup. Nil skips the cases that need it.
	DenyAtTaskTime func(t testing.TB, aclPath, privilege string)
	// Endpoint reaches the same host and token as the Client, for the
	// cases that check what the Client does not send or read: raw
	// request bodies, failed authentication, paging parameters, the
	// endpoints third-party clients call that it has no method for. Nil
	// skips those cases.
	Endpoint *Endpoint
	// AuthFailureDelay is the least time the host takes to answer a
	// failed authentication: pveproxy waits 3 s. Zero checks no timing
	// (a simulator that answers at once).
	AuthFailureDelay time.Duration
	// ProxyError makes the next request for method and path fail as
	// pveproxy answers when the node it proxies to is unreachable (595,
	// no body), until t's cleanup. Nil skips the case (a real host does
	// this only for a node of its cluster that is down).
	ProxyError func(t testing.TB, method, path string)
	// Cluster describes the host's cluster for the cluster cases; nil
	// skips them (a host in no cluster).
	Cluster *Cluster
	// HoldTasks keeps tasks that are running from stopping on their own
	// until t's cleanup (they still stop when asked to), so that a case
	// can look at a task while it runs and at the locks it holds. Nil
	// skips the cases that need it (on a real host a task's length is
	// not under the suite's control).
	HoldTasks func(t testing.TB)
}

// validate names every required field that is missing.
func (w World) validate() error {
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Running", w.Running != 0},
		{"Stopped", w.Stopped != 0},
		{"Scratch", w.Scratch != 0},
		{"BackupStorage", w.BackupStorage != ""},
		{"GuestStorage", w.GuestStorage != ""},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pvetest: World lacks %v", missing)
	}
	if w.Running == w.Stopped || w.Running == w.Scratch || w.Stopped == w.Scratch {
		return fmt.Errorf("pvetest: World.Running (%d), Stopped (%d) and Scratch (%d) must differ", w.Running, w.Stopped, w.Scratch)
	}
	if c := w.Cluster; c != nil && (c.Other == "" || c.OtherGuest == 0) {
		return fmt.Errorf("pvetest: World.Cluster needs Other and OtherGuest")
	}
	if w.StoppedVM != 0 && (w.StoppedVM == w.Running || w.StoppedVM == w.Stopped || w.StoppedVM == w.Scratch) {
		return fmt.Errorf("pvetest: World.StoppedVM (%d) must differ from Running, Stopped and Scratch", w.StoppedVM)
	}
	return nil
}

func (w World) caseTimeout() time.Duration {
	if w.CaseTimeout <= 0 {
		return 2 * time.Minute
	}
	return w.CaseTimeout
}
