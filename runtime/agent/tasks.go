package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// runTasks is the proxmox.Observer on a run's context: it counts the run's
// API requests and task waits, records each UPID the moment its POST
// returns, and records a task's end when a wait sees it.
type runTasks struct {
	a   *Agent
	run string

	mu   sync.Mutex
	open map[string]proxmox.UPID
}

var _ proxmox.Observer = (*runTasks)(nil)

func (t *runTasks) Request(info proxmox.RequestInfo) { metricsObserver{t.a.metrics}.Request(info) }

// TaskStarted is synchronous on purpose: the builtin goes on only once
// the UPID is durable, so a crash right after the POST still leaves the
// task for recovery to follow.
func (t *runTasks) TaskStarted(upid proxmox.UPID) {
	t.mu.Lock()
	t.open[upid.String()] = upid
	t.mu.Unlock()
	if err := t.a.store.TaskStarted(context.Background(), t.run, upid.String(), time.Time{}); err != nil {
		t.a.log.Error("recording a Proxmox task failed", "run", t.run, "upid", upid.String(), "err", err)
	}
}

func (t *runTasks) TaskWaited(upid proxmox.UPID, took time.Duration, st proxmox.TaskStatus, err error) {
	metricsObserver{t.a.metrics}.TaskWaited(upid, took, st, err)
	if st.Running() || st.ExitStatus == "" {
		return // the wait ended before the task did
	}
	t.mu.Lock()
	_, mine := t.open[upid.String()]
	delete(t.open, upid.String())
	t.mu.Unlock()
	if !mine {
		return // a task another run (or nobody) recorded
	}
	t.a.recordTaskEnd(t.run, upid.String(), st.ExitStatus)
}

// unfinished returns the tasks whose end no wait has seen.
func (t *runTasks) unfinished() []proxmox.UPID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]proxmox.UPID, 0, len(t.open))
	for _, u := range t.open {
		out = append(out, u)
	}
	return out
}

// recordTaskEnd records a task's exit status, and a guest's backup in the
// per-guest index (indexTask); a second record of the same end (two waits
// on one task) is not an error and indexes nothing.
func (a *Agent) recordTaskEnd(run, upid, exit string) {
	err := a.store.TaskFinished(context.Background(), upid, exit, time.Time{})
	if err != nil && !errors.Is(err, store.ErrFinished) {
		a.log.Error("recording the end of a Proxmox task failed", "upid", upid, "err", err)
	}
	if err == nil {
		a.indexTask(run, upid, exit)
	}
}
