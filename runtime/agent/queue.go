package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// The run queue: an accepted trigger always runs. A playbook that does not
// declare concurrent = True runs one run at a time; a run accepted while
// another of its playbook runs (or waits) is recorded queued and waits its
// turn, first come first served, and runs as soon as the playbook is free.
// At most Config.QueueMax runs wait per playbook: start refuses a trigger
// that would queue more (429 at the hub), before anything is recorded.
//
// Queued runs survive a restart: recovery leaves them queued and the new
// process queues them again, oldest first, once the playbooks are loaded.
// When the agent stops, the runs still waiting leave the queue without
// being recorded: they stay queued in the store for the next start.
//
// Invariants, under runQueues.mu: a playbook's running counts the runs
// that passed its gate and have not left it; a waiting turn is in exactly
// one waiting list until it is handed the gate (ready closed, running
// taken over) or withdraws.

// DefaultQueueMax is Config.QueueMax's default: runs waiting per playbook.
const DefaultQueueMax = 100

// runQueues gates the runs of every non-concurrent playbook.
type runQueues struct {
	max int

	mu       sync.Mutex
	byName   map[string]*playbookQueue
	draining bool          // no turn is handed on any more
	drained  chan struct{} // closed by drain: waiting runs leave the queue
}

type playbookQueue struct {
	running  int     // runs past the gate (0 or 1 unless concurrent runs mix in)
	reserved int     // places promised to start calls that have not queued yet
	waiting  []*turn // first in line first
}

// turn is one run's place in its playbook's queue.
type turn struct {
	id    string
	ready chan struct{} // closed when the run may go: the gate is its
}

func newRunQueues(max int) *runQueues {
	if max <= 0 {
		max = DefaultQueueMax
	}
	return &runQueues{max: max, byName: map[string]*playbookQueue{}, drained: make(chan struct{})}
}

func (q *runQueues) queue(name string) *playbookQueue {
	pq := q.byName[name]
	if pq == nil {
		pq = &playbookQueue{}
		q.byName[name] = pq
	}
	return pq
}

// reserve promises a place to one run of each named playbook, or returns
// the first playbook whose queue is full (nothing reserved then). A run
// that will find its playbook free uses its place only until it enters.
func (q *runQueues) reserve(names []string) (full string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, n := range names {
		pq := q.queue(n)
		if len(pq.waiting)+pq.reserved >= q.max && (pq.running > 0 || len(pq.waiting) > 0 || pq.reserved > 0) {
			return n
		}
	}
	for _, n := range names {
		q.queue(n).reserved++
	}
	return ""
}

// unreserve gives back places reserve promised and no run took.
func (q *runQueues) unreserve(names []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, n := range names {
		if pq := q.byName[n]; pq != nil && pq.reserved > 0 {
			pq.reserved--
		}
	}
}

// enter passes run id of playbook name through the gate at once (nil) or
// queues it (the turn to wait for). reserved says whether the run holds a
// place from reserve, which it now uses up.
func (q *runQueues) enter(name, id string, reserved bool) *turn {
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.queue(name)
	if reserved && pq.reserved > 0 {
		pq.reserved--
	}
	if pq.running == 0 && len(pq.waiting) == 0 {
		pq.running++
		return nil
	}
	t := &turn{id: id, ready: make(chan struct{})}
	pq.waiting = append(pq.waiting, t)
	return t
}

// withdraw takes t out of its queue (its run was cancelled, or the agent
// stops). It reports false when t had been handed the gate already: the
// caller then holds it and must leave.
func (q *runQueues) withdraw(name string, t *turn) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.byName[name]
	for i, w := range pq.waiting {
		if w == t {
			pq.waiting = append(pq.waiting[:i], pq.waiting[i+1:]...)
			return true
		}
	}
	return false
}

// leave gives the gate back; the first run waiting, if any, gets it
// (unless the agent is stopping).
func (q *runQueues) leave(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.byName[name]
	pq.running--
	if pq.running > 0 || len(pq.waiting) == 0 || q.draining {
		if pq.running == 0 && len(pq.waiting) == 0 && pq.reserved == 0 {
			delete(q.byName, name)
		}
		return
	}
	next := pq.waiting[0]
	pq.waiting = pq.waiting[1:]
	pq.running++
	close(next.ready)
}

// drain stops handing the gate on: the agent is stopping.
func (q *runQueues) drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.draining {
		q.draining = true
		close(q.drained)
	}
}

// position is run id's place in its playbook's queue, 1 for the next to
// go, or 0 when it is not waiting.
func (q *runQueues) position(playbook, id string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	pq := q.byName[playbook]
	if pq == nil {
		return 0
	}
	for i, w := range pq.waiting {
		if w.id == id {
			return i + 1
		}
	}
	return 0
}

// awaitTurn waits until lr may run (true), or until it is cancelled or the
// agent stops first (false). A run cancelled while queued is recorded
// cancelled; one the agent's stop takes out of the queue is not recorded
// at all and stays queued in the store, for the next start. Either way a
// false return has ended lr (done closed, out of the live runs).
func (a *Agent) awaitTurn(lr *liveRun, name string, t *turn) bool {
	a.metrics.queued.Inc()
	defer a.metrics.queued.Dec()
	select {
	case <-t.ready:
		return true
	case <-lr.ctx.Done():
	case <-a.queues.drained:
	}
	if !a.queues.withdraw(name, t) {
		a.queues.leave(name) // it was handed the gate meanwhile: pass it on
	}
	stopping := false
	select {
	case <-a.queues.drained:
		stopping = !errors.Is(context.Cause(lr.ctx), errCancelledByAPI)
	default:
	}
	if stopping {
		a.log.Info("the agent stops; the queued run stays queued for the next start", "run", lr.id, "playbook", name)
	} else {
		a.finishUnstarted(lr.id, runstate.Cancelled, "", "cancelled while queued: "+context.Cause(lr.ctx).Error())
		a.metrics.runFinished(name, string(runstate.Cancelled), 0)
	}
	a.endLive(lr)
	return false
}

// laneGuest separates a playbook's name from the guest in a lane name.
const laneGuest = "@guest/"

// laneOf is the queue a run of playbook waits in. A guest's own runs
// (Source guest) wait only behind the same playbook's runs for the same
// guest, never behind the host's: the nightly backup of every guest must
// not hold up a guest whose applications are stopped for its backup
// (PVE's own per-guest lock and vzdump's node-wide lock still order the
// tasks themselves: at most the one guest being backed up is waited
// for). Every other run waits in its playbook's queue.
func laneOf(playbook string, src store.Source, params json.RawMessage) string {
	if src != store.SourceGuest {
		return playbook
	}
	if vmid, ok := runGuest(params); ok {
		return playbook + laneGuest + strconv.Itoa(vmid)
	}
	return playbook
}

// runGuest is the guest a guest run's recorded parameters bind (vmid, or
// vmids holding exactly one vmid), the binding guest_triggers promises.
func runGuest(params json.RawMessage) (int, bool) {
	var p struct {
		VMID  *int  `json:"vmid"`
		VMIDs []int `json:"vmids"`
	}
	if len(params) == 0 || json.Unmarshal(params, &p) != nil {
		return 0, false
	}
	switch {
	case p.VMID != nil && *p.VMID > 0 && p.VMIDs == nil:
		return *p.VMID, true
	case p.VMID == nil && len(p.VMIDs) == 1 && p.VMIDs[0] > 0:
		return p.VMIDs[0], true
	}
	return 0, false
}
