package agent

import (
	"context"
	"errors"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// The Agent answers the hub: a verified trigger starts every playbook that
// lists its name, and the hub may follow the runs it started.
var _ hub.Backend = (*Agent)(nil)

// hubLogTail is how many of a run's last log lines the hub is shown.
const hubLogTail = 20

// StartTrigger starts a run of every playbook whose declaration lists
// t.Name, all or nothing: t.Params are coerced against every one of their
// declarations before any run is recorded, and the runs are recorded
// together with t.ID, durably, before they start. A trigger id seen
// before returns that trigger's runs and starts nothing, even if the
// playbooks or their parameters have changed since.
func (a *Agent) StartTrigger(ctx context.Context, keyID string, t hub.Trigger) ([]hub.RunRef, bool, error) {
	if a.hubBlocked.Load() {
		a.log.Warn("hub trigger refused: the hub has blocked this host", "trigger", t.Name, "trigger_id", t.ID)
		return nil, false, hub.ErrBlocked
	}
	st, err := a.start(ctx, startRequest{
		Source: store.SourceHub, Key: t.ID, Trigger: t.Name, Params: t.Params,
		Attrs: []any{"hub_key", keyID, "trigger", t.Name, "trigger_id", t.ID},
	})
	if r, ok := errors.AsType[*startRefusal](err); ok {
		switch r.Reason {
		case refusedUnknown:
			return nil, false, fmt.Errorf("trigger %q: %w", t.Name, hub.ErrUnknownTrigger)
		case refusedParams:
			return nil, false, &hub.ParamError{Playbook: r.Playbook, Param: r.Param, Msg: r.Msg}
		case refusedStore:
			return nil, false, fmt.Errorf("%w: %w", hub.ErrUnavailable, r)
		case refusedQueueFull:
			return nil, false, &hub.QueueFullError{Playbook: r.Playbook, Max: a.queues.max}
		}
	}
	if err != nil {
		return nil, false, err
	}
	return runRefs(st.Runs), st.Existing, nil
}

// TriggeredRun reports a run to the hub, only if a hub trigger started it.
func (a *Agent) TriggeredRun(ctx context.Context, id string) (hub.RunStatus, error) {
	r, err := a.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.Source != store.SourceHub) {
		return hub.RunStatus{}, fmt.Errorf("run %q: %w", id, hub.ErrUnknownRun)
	}
	if err != nil {
		return hub.RunStatus{}, err
	}
	if !r.Status.Terminal() {
		a.followRead(r.ID) // the hub follows it (follow.go)
	}
	tail, err := a.logTail(ctx, id, hubLogTail)
	if err != nil {
		return hub.RunStatus{}, err
	}
	return hub.RunStatus{
		ID: r.ID, Playbook: r.Playbook, TriggerID: r.Key, Status: string(r.Status), Error: r.Error,
		QueuePosition: a.queues.position(laneOf(r.Playbook, r.Source, r.Params), r.ID),
		Created:       r.Created.UTC(), Started: timePtr(r.Started), Ended: timePtr(r.Ended), Result: r.Result, Log: tail,
		Resumes: r.Resumes,
	}, nil
}

func runRefs(runs []store.Run) []hub.RunRef {
	out := make([]hub.RunRef, len(runs))
	for i, r := range runs {
		out[i] = hub.RunRef{ID: r.ID, Playbook: r.Playbook}
	}
	return out
}

// logTail returns the last n lines of run id's log as text.
func (a *Agent) logTail(ctx context.Context, id string, n int) ([]string, error) {
	lines, err := a.store.LogTail(ctx, id, n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = apiLogLine(l).String()
	}
	return out, nil
}
