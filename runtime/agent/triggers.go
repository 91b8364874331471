package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"

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
	if prior, err := a.store.RunsByKey(ctx, store.SourceHub, t.ID); err != nil {
		return nil, false, err
	} else if len(prior) > 0 {
		return runRefs(prior), true, nil
	}
	if a.isDraining() {
		return nil, false, errDraining
	}

	var pbs []*engine.Playbook
	for _, pb := range a.registry.Playbooks() { // sorted by name: refusals are stable
		if slices.Contains(pb.Decl.Triggers, t.Name) {
			pbs = append(pbs, pb)
		}
	}
	if len(pbs) == 0 {
		return nil, false, fmt.Errorf("trigger %q: %w", t.Name, hub.ErrUnknownTrigger)
	}
	params := make([]*engine.Params, len(pbs))
	newRuns := make([]store.NewRun, len(pbs))
	for i, pb := range pbs {
		p, err := pb.Decl.Coerce(nil, t.Params)
		if err != nil {
			if pe, ok := errors.AsType[*engine.ParamError](err); ok {
				return nil, false, &hub.ParamError{Playbook: pb.Name, Param: pe.Param, Msg: refusalMsg(pe)}
			}
			return nil, false, fmt.Errorf("playbook %s: %w", pb.Name, err)
		}
		rec, err := json.Marshal(p.Record())
		if err != nil {
			return nil, false, fmt.Errorf("playbook %s: parameters: %w", pb.Name, err)
		}
		params[i] = p
		newRuns[i] = store.NewRun{Playbook: pb.Name, Version: pb.Version, Params: rec}
	}

	runs, created, err := a.store.CreateRuns(ctx, store.Trigger{Source: store.SourceHub, Key: t.ID}, newRuns)
	if err != nil {
		return nil, false, err
	}
	if !created { // a concurrent request with the same id won the race
		return runRefs(runs), true, nil
	}
	for i, run := range runs {
		a.launch(run, pbs[i], params[i], "hub_key", keyID, "trigger", t.Name, "trigger_id", t.ID)
	}
	return runRefs(runs), false, nil
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
	tail, err := a.logTail(ctx, id, hubLogTail)
	if err != nil {
		return hub.RunStatus{}, err
	}
	return hub.RunStatus{
		ID: r.ID, Playbook: r.Playbook, TriggerID: r.Key, Status: string(r.Status), Error: r.Error,
		Created: r.Created.UTC(), Started: timePtr(r.Started), Ended: timePtr(r.Ended), Result: r.Result, Log: tail,
	}, nil
}

func runRefs(runs []store.Run) []hub.RunRef {
	out := make([]hub.RunRef, len(runs))
	for i, r := range runs {
		out[i] = hub.RunRef{ID: r.ID, Playbook: r.Playbook}
	}
	return out
}

// logTail returns the last n lines of run id's log as text. Lines are
// numbered 1, 2, 3, ... so the last number is found by probing for lines
// at doubling offsets, then bisecting: a few one-row queries however long
// the log, instead of reading it all on every poll.
func (a *Agent) logTail(ctx context.Context, id string, n int) ([]string, error) {
	exists := func(seq int64) (bool, error) {
		lines, err := a.store.Logs(ctx, id, seq-1, 1)
		return len(lines) > 0, err
	}
	var lo, hi int64 = 0, 1 // line lo exists (0: none needed); line hi is probed
	for {
		ok, err := exists(hi)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 { // lo exists, hi does not
		mid := lo + (hi-lo)/2
		ok, err := exists(mid)
		if err != nil {
			return nil, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return nil, nil
	}
	lines, err := a.store.Logs(ctx, id, max(0, lo-int64(n)), n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = logLineText(l.Level, l.Msg, l.Attrs)
	}
	return out, nil
}

// logLineText renders a log line for people: "INFO msg k=v k2=v2", keys
// sorted, values as JSON text.
func logLineText(level, msg string, attrs json.RawMessage) string {
	var b strings.Builder
	b.WriteString(level)
	b.WriteByte(' ')
	b.WriteString(msg)
	var m map[string]json.RawMessage
	if len(attrs) > 0 && json.Unmarshal(attrs, &m) == nil {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			b.WriteByte(' ')
			b.WriteString(k)
			b.WriteByte('=')
			b.Write(m[k])
		}
	}
	return b.String()
}
