package pvesim

import (
	"slices"
	"time"
)

// Guest locks over time. PVE's workers check a guest's config lock when
// they start, not when they end: each forks, takes the config file's flock
// (lock_config), loads the config and calls check_lock before doing
// anything, so a task requested while another holds the guest fails at
// once with "CT is locked (LOCK)" as its exit status — the POST still
// answers a UPID, because the check runs in the worker:
//
//   - vzsnapshot, vzrollback, vzdelsnapshot: pve-container
//     src/PVE/API2/LXC/Snapshot.pm forks a worker that calls
//     PVE::AbstractConfig snapshot_create / snapshot_rollback /
//     snapshot_delete, whose prepare step runs lock_config + check_lock
//     (pve-guest-common src/PVE/AbstractConfig.pm) and then sets the
//     snapshot lock it holds until the end;
//   - vzstart, vzstop, vzshutdown: src/PVE/API2/LXC/Status.pm, the worker's
//     lock_config closure loads the config and calls check_lock (start and
//     stop skip it for the "mounted" lock) before vm_start / vm_stop;
//   - vzdump: pve-manager PVE/VZDump.pm exec_backup_task calls the plugin's
//     lock_vm (pve-container src/PVE/VZDump/LXC.pm: set_lock 'backup',
//     which check_locks first) when it reaches that guest, after the global
//     vzdump lock and after the guests before it; it unlocks the guest
//     when that guest is done. A multi-guest job therefore holds each
//     guest only during its own slot.
//
// The config PUT of a container is synchronous (src/PVE/API2/LXC/Config.pm
// update_vm runs lock_config + check_lock in the request) and so answers
// 500 "CT is locked (backup)" itself; destroy checks at the request too
// (src/PVE/API2/LXC.pm destroy_vm).
//
// A second vzdump is not refused: it waits for the node's global vzdump
// lock (PVE/VZDump.pm getlock, "trying to get global lock - waiting...",
// lockwait 180 minutes by default), and by the time it reaches the guest
// the first job has released it.
//
// Tasks stop lazily (see tasks.go); what happens part-way through a task —
// a vzdump taking and releasing each guest's lock — is an event on the
// state's timeline, run by advance in time order with the task ends.

// event is something that happens at a point in simulated time.
type event struct {
	at  time.Time
	seq int // insertion order breaks ties
	fn  func()
}

// schedule runs fn at at: at once when that time has come, otherwise when
// advance reaches it. Events due at the same instant run in the order they
// were scheduled, and before a task that stops at that instant.
func (st *state) schedule(at time.Time, fn func()) {
	if !at.After(st.now) {
		fn()
		return
	}
	st.eventSeq++
	here := st.here // the event happens on the node that scheduled it
	st.events = append(st.events, &event{at: at, seq: st.eventSeq, fn: func() { st.as(here, fn) }})
}

// nextEvent returns the earliest pending event due by limit, or nil.
func (st *state) nextEvent(limit time.Time) *event {
	var next *event
	for _, e := range st.events {
		if e.at.After(limit) {
			continue
		}
		if next == nil || e.at.Before(next.at) || (e.at.Equal(next.at) && e.seq < next.seq) {
			next = e
		}
	}
	return next
}

// runEvent removes e from the timeline and runs it.
func (st *state) runEvent(e *event) {
	st.events = slices.DeleteFunc(st.events, func(x *event) bool { return x == e })
	e.fn()
}

// advanceEvents runs every event due before (or at) until, in order. The
// task loop in advance calls it before stopping a task that ends at until,
// so a task's end sees what happened before it.
func (st *state) advanceEvents(until time.Time) {
	for e := st.nextEvent(until); e != nil; e = st.nextEvent(until) {
		st.runEvent(e)
	}
}

// failAtStart makes t fail the moment it starts, with err as its exit
// status: a worker whose first step (load_config, check_lock, a snapshot
// name check) dies. Its work never runs and it holds nothing.
func (t *task) failAtStart(err error) {
	t.startErr = err
	t.end = t.start
}
