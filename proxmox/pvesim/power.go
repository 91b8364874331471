package pvesim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Start, stop, shutdown, reboot and destroy of both guest kinds: containers
// after pve-container API2/LXC/Status.pm and API2/LXC.pm destroy_vm, VMs
// after qemu-server API2/Qemu.pm (vm_start, vm_stop, vm_shutdown,
// vm_reboot, destroy_vm) and QemuServer.pm (vm_start, _do_vm_stop).
// A container's "already running" / "not running" are checked at the
// request; a VM's start checks it as its worker starts, and stopping or
// shutting down a stopped VM is a task that does nothing. Locks are
// checked as the worker starts, so a locked guest fails the task at once
// (locks.go); destroy checks its lock and run state at the request and
// holds the "destroyed" lock while it runs.

// skiplockRefused is the 400 PVE gives anyone but root@pam for skiplock.
func (c *call) skiplockRefused() (response, bool) {
	if c.bool("skiplock") {
		return paramError(map[string]string{"skiplock": "Only root may use this option."}), true
	}
	return response{}, false
}

func (c *call) startGuest() response {
	if resp, refused := c.skiplockRefused(); refused {
		return resp
	}
	st, vmid, kind := c.st, c.int("vmid"), c.kind()
	if g, ok := st.lookup(kind, vmid); ok && g.running && kind == kindLXC {
		return die("CT %d already running", vmid)
	}
	if err := st.checkQuorum(); err != nil {
		return die("%s", err)
	}
	if g, ok := st.lookup(kind, vmid); ok && g.ha != "" {
		return c.haPower(g, true)
	}
	t := st.startKindTask(kind, c.tok.id, vmid, st.now, st.sim.taskDuration())
	return ok(t.id)
}

// startGuestTask forks a vzstart worker. Workers that start a guest when
// they are done (restore, rollback with start=1) fork one too, at their
// end, as PVE's nested fork_worker does.
func (st *state) startGuestTask(user string, vmid int, at time.Time, d time.Duration) *task {
	return st.startKindTask(kindLXC, user, vmid, at, d)
}

// startKindTask forks the start worker of a guest of kind: vzstart or
// qmstart.
func (st *state) startKindTask(kind, user string, vmid int, at time.Time, d time.Duration) *task {
	return st.startTask(user, taskSpec{
		typ: workerType(kind, "start"), id: vmidString(vmid), vmid: vmid, duration: d, at: at,
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		begin: func(*task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if g.isTemplate() {
				if kind == kindQemu {
					return failf("you can't start a vm if it's a template")
				}
				return failf("you can't start a CT if it's a template")
			}
			if g.lock() != "mounted" {
				if err := checkLock(g); err != nil {
					return err
				}
			}
			if kind == kindQemu && g.running {
				// QemuServer::vm_start checks this under the config lock.
				return failf("VM %d already running", vmid)
			}
			return nil
		},
		work: func(t *task) error {
			return st.workStart(t, kind, vmid)
		},
	})
}

// workStart is the start worker's body once its checks have passed.
func (st *state) workStart(t *task, kind string, vmid int) error {
	g, ok := st.lookup(kind, vmid)
	if !ok {
		return st.missing(kind, vmid)
	}
	if g.running {
		return failf("%s %d already running", g.label(), vmid)
	}
	if kind == kindLXC {
		// The pre-start hook dies; vm_start prints the container's stderr
		// log and dies (src/PVE/LXC.pm monitor_start).
		if err := st.missingBindDir(g); err != "" {
			t.logf("%s", err)
			return failf("startup for container '%d' failed", vmid)
		}
	}
	st.setRunning(g, true, t.end)
	return nil
}

// missingBindDir is pve-container's refusal to mount a bind mount point
// whose directory does not exist on the container's node (src/PVE/LXC.pm
// mountpoint_mount: "directory '$volid' does not exist"), for the first
// such in mp0..mp255, when the Sim models host directories (HostDir);
// "" when there is none.
func (st *state) missingBindDir(g *guest) string {
	if st.sim.HostDir == nil {
		return ""
	}
	for n := 0; n <= 255; n++ {
		v, ok := g.conf["mp"+strconv.Itoa(n)]
		if !ok {
			continue
		}
		vol, _, _ := strings.Cut(v, ",")
		if strings.HasPrefix(vol, "/") && !strings.HasPrefix(vol, "/dev/") && !st.sim.HostDir(g.node, vol) {
			return fmt.Sprintf("directory '%s' does not exist", vol)
		}
	}
	return ""
}

func (c *call) stopGuest() response {
	if resp, refused := c.skiplockRefused(); refused {
		return resp
	}
	return c.powerOff("stop", true)
}

func (c *call) shutdownGuest() response { return c.powerOff("shutdown", false) }

func (c *call) powerOff(action string, hard bool) response {
	st, vmid, kind := c.st, c.int("vmid"), c.kind()
	if g, ok := st.lookup(kind, vmid); kind == kindLXC && (!ok || !g.running) {
		return die("CT %d not running", vmid)
	}
	if g, ok := st.lookup(kind, vmid); ok && g.ha != "" {
		return c.haPower(g, false)
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: workerType(kind, action), id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		begin: func(*task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if kind == kindQemu && !g.running {
				return nil // _do_vm_stop returns at once without a pid
			}
			if !hard || g.lock() != "mounted" {
				return checkLock(g)
			}
			return nil
		},
		work: func(t *task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if g.running {
				st.setRunning(g, false, t.end)
			}
			return nil
		},
	})
	return ok(t.id)
}

// rebootGuest is vm_reboot (qemu-server API2/Qemu.pm and pve-container
// API2/LXC/Status.pm): refused for a stopped guest at the request, "VM
// 101 not running" for both kinds, a clean stop and start in the worker.
func (c *call) rebootGuest() response {
	st, vmid, kind := c.st, c.int("vmid"), c.kind()
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if !g.running {
		// Both pve-container's vm_reboot and qemu-server's say "VM".
		return die("VM %d not running", vmid)
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: workerType(kind, "reboot"), id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		begin: func(*task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			return checkLock(g)
		},
		work: func(t *task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if g.running {
				st.setRunning(g, false, t.end)
			}
			st.setRunning(g, true, t.end)
			return nil
		},
	})
	return ok(t.id)
}

// --- destroy ------------------------------------------------------------

func (c *call) destroyGuest() response {
	st, vmid, kind := c.st, c.int("vmid"), c.kind()
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if kind == kindQemu {
		if resp, refused := c.skiplockRefused(); refused {
			return resp
		}
	}
	if g.conf["protection"] == "1" {
		return die("can't remove %s %d - protection mode enabled", g.label(), vmid)
	}
	if err := checkLock(g); err != nil {
		return die("%s", err)
	}
	force, purge := c.bool("force"), c.bool("purge")
	if g.running && (kind == kindQemu || !force) {
		return die("%s", runningRefusal(kind, vmid))
	}
	// The worker writes "lock: destroyed" before it removes anything, so
	// the guest refuses other changes meanwhile.
	g.conf["lock"] = "destroyed"
	t := st.startTask(c.tok.id, taskSpec{
		typ: workerType(kind, "destroy"), id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.Allocate"}},
		cleanup: func() {
			if g, ok := st.lookup(kind, vmid); ok && g.lock() == "destroyed" {
				delete(g.conf, "lock")
			}
		},
		work: func(t *task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if g.running {
				if !force || kind == kindQemu {
					return failf("%s", runningRefusal(kind, vmid))
				}
				t.warnf("forced to stop CT %d before destroying!", vmid)
				st.setRunning(g, false, t.end)
			}
			for _, vol := range st.guestVolumes(g) {
				t.logf("  Logical volume \"%s\" successfully removed.", volumeName(vol))
				st.releaseDisk(vol)
			}
			if purge {
				t.logf("purging %s %d from related configurations..", g.label(), vmid)
			}
			delete(st.guests, vmid)
			st.removeVMACLs(vmid)
			return nil
		},
	})
	return ok(t.id)
}

// runningRefusal is destroy's text for a running guest: pve-container's
// "unable to destroy CT 101 - container is running", qemu-server's
// "VM 200 is running - destroy failed".
func runningRefusal(kind string, vmid int) string {
	if kind == kindQemu {
		return "VM " + vmidString(vmid) + " is running - destroy failed"
	}
	return "unable to destroy CT " + vmidString(vmid) + " - container is running"
}

// removeVMACLs is PVE::AccessControl::remove_vm_access.
func (st *state) removeVMACLs(vmid int) {
	for _, tok := range st.tokens {
		delete(tok.acl, "/vms/"+vmidString(vmid))
	}
}
