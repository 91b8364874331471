package pvesim

import (
	"time"
)

// Start, stop, shutdown and destroy (pve-container API2/LXC/Status.pm and
// API2/LXC.pm destroy_vm). "already running" and "not running" are checked
// at the request, locks inside the worker as it starts, so a locked guest
// fails the task at once (locks.go); destroy checks its lock and run state
// at the request and holds the "destroyed" lock while it runs.

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
	st, vmid := c.st, c.int("vmid")
	if g, ok := st.guests[vmid]; ok && g.running {
		return die("CT %d already running", vmid)
	}
	t := st.startGuestTask(c.tok.id, vmid, st.now, st.sim.taskDuration())
	return ok(t.id)
}

// startGuestTask forks a vzstart worker. Workers that start a guest when
// they are done (restore, rollback with start=1) fork one too, at their
// end, as PVE's nested fork_worker does.
func (st *state) startGuestTask(user string, vmid int, at time.Time, d time.Duration) *task {
	return st.startTask(user, taskSpec{
		typ: "vzstart", id: vmidString(vmid), vmid: vmid, duration: d, at: at,
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		begin: func(*task) error {
			g, ok := st.guests[vmid]
			if !ok {
				return failf("Configuration file '%s' does not exist", st.configPath(vmid))
			}
			if g.isTemplate() {
				return failf("you can't start a CT if it's a template")
			}
			if g.lock() != "mounted" {
				return checkLock(g)
			}
			return nil
		},
		work: func(t *task) error {
			return st.workStart(t, vmid)
		},
	})
}

// workStart is the vzstart worker's body once its checks have passed.
func (st *state) workStart(t *task, vmid int) error {
	g, ok := st.guests[vmid]
	if !ok {
		return failf("Configuration file '%s' does not exist", st.configPath(vmid))
	}
	if g.running {
		return failf("CT %d already running", vmid)
	}
	st.setRunning(g, true, t.end)
	return nil
}

func (c *call) stopGuest() response {
	if resp, refused := c.skiplockRefused(); refused {
		return resp
	}
	return c.powerOff("vzstop", true)
}

func (c *call) shutdownGuest() response { return c.powerOff("vzshutdown", false) }

func (c *call) powerOff(typ string, hard bool) response {
	st, vmid := c.st, c.int("vmid")
	if g, ok := st.guests[vmid]; !ok || !g.running {
		return die("CT %d not running", vmid)
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: typ, id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		begin: func(*task) error {
			g, ok := st.guests[vmid]
			if !ok {
				return failf("Configuration file '%s' does not exist", st.configPath(vmid))
			}
			if !hard || g.lock() != "mounted" {
				return checkLock(g)
			}
			return nil
		},
		work: func(t *task) error {
			g, ok := st.guests[vmid]
			if !ok {
				return failf("Configuration file '%s' does not exist", st.configPath(vmid))
			}
			if g.running {
				st.setRunning(g, false, t.end)
			}
			return nil
		},
	})
	return ok(t.id)
}

// --- destroy ------------------------------------------------------------

func (c *call) destroyGuest() response {
	st, vmid := c.st, c.int("vmid")
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if g.conf["protection"] == "1" {
		return die("can't remove CT %d - protection mode enabled", vmid)
	}
	if err := checkLock(g); err != nil {
		return die("%s", err)
	}
	if g.running && !c.bool("force") {
		return die("unable to destroy CT %d - container is running", vmid)
	}
	force, purge := c.bool("force"), c.bool("purge")
	// The worker writes "lock: destroyed" before it removes anything, so
	// the guest refuses other changes meanwhile.
	g.conf["lock"] = "destroyed"
	t := st.startTask(c.tok.id, taskSpec{
		typ: "vzdestroy", id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.Allocate"}},
		cleanup: func() {
			if g, ok := st.guests[vmid]; ok && g.lock() == "destroyed" {
				delete(g.conf, "lock")
			}
		},
		work: func(t *task) error {
			g, ok := st.guests[vmid]
			if !ok {
				return failf("Configuration file '%s' does not exist", st.configPath(vmid))
			}
			if g.running {
				if !force {
					return failf("unable to destroy CT %d - container is running", vmid)
				}
				t.warnf("forced to stop CT %d before destroying!", vmid)
				st.setRunning(g, false, t.end)
			}
			for _, vol := range st.guestVolumes(g) {
				t.logf("  Logical volume \"%s\" successfully removed.", volumeName(vol))
				st.releaseDisk(vol)
			}
			if purge {
				t.logf("purging CT %d from related configurations..", vmid)
			}
			delete(st.guests, vmid)
			st.removeVMACLs(vmid)
			return nil
		},
	})
	return ok(t.id)
}

// removeVMACLs is PVE::AccessControl::remove_vm_access.
func (st *state) removeVMACLs(vmid int) {
	for _, tok := range st.tokens {
		delete(tok.acl, "/vms/"+vmidString(vmid))
	}
}
