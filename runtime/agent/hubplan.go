package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
)

// Plans on a serving agent: what a run of a playbook would do, made by
// cfg.Planner (the command line gives runtime/plan over the read-only
// client: GETs only reach Proxmox, the playbook runs against a mirror).
// One piece serves both front ends: the local API's POST /v1/plan
// (`trigger NAME --plan`) and the hub's plan jobs (docs/hub-protocol.md,
// "Plan jobs"). A plan records nothing and starts nothing: no run, no
// journal, no gate decision, no guest lock.

// DefaultPlanTimeout is how long a hub plan job may take (HubConfig's
// PlanTimeout): reading the host and running the playbook against the
// mirror. The channel decides at most one plan job per accepted report, so
// a hostile hub can keep the agent planning for at most this long per
// poll interval.
const DefaultPlanTimeout = time.Minute

// errNoPlanner refuses plans when no Planner is configured.
var errNoPlanner = errors.New("this agent makes no plans (no planner is configured)")

// planPlaybook coerces args and raw by pb's declaration, as a run's
// parameters are, and plans a run of pb. The error is errNoPlanner, a
// *engine.ParamError (wrapped), or the planner's (the host could not be
// read).
func (a *Agent) planPlaybook(ctx context.Context, pb *engine.Playbook, args map[string]string, raw map[string]json.RawMessage) (*engine.Params, any, error) {
	if a.cfg.Planner == nil {
		return nil, nil, errNoPlanner
	}
	params, err := pb.Decl.Coerce(args, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("playbook %s: %w", pb.Name, err)
	}
	r, err := a.cfg.Planner(ctx, pb, params)
	return params, r, err
}

// resolveOne finds the one playbook name stands for: a playbook of that
// name, else the one playbook answering trigger name. A signed operation's
// op and a plan request's trigger are resolved so.
func (a *Agent) resolveOne(name string) (*engine.Playbook, error) {
	if pb := a.registry.Get(name); pb != nil {
		return pb, nil
	}
	var pbs []*engine.Playbook
	for _, p := range a.registry.Playbooks() {
		if slices.Contains(p.Decl.Triggers, name) {
			pbs = append(pbs, p)
		}
	}
	switch len(pbs) {
	case 0:
		return nil, fmt.Errorf("no playbook answers %q", name)
	case 1:
		return pbs[0], nil
	}
	return nil, fmt.Errorf("%d playbooks answer trigger %q; it must name one playbook", len(pbs), name)
}

// hubPlan makes the plan a hub plan job asks for (channel.PlanHandler):
// the trigger resolved to one playbook, the params coerced by its
// declaration, the plan made within HubConfig.PlanTimeout. A request
// that cannot be planned (no such playbook, a parameter refused, no
// planner) is refused naming the problem; a plan that could not be made
// (the host unreadable, the deadline) is a plan with status not_planned.
// Secret parameters appear redacted, and their values are scrubbed from
// everything the plan says.
func (a *Agent) hubPlan(ctx context.Context, req channel.PlanRequest) (*channel.Plan, error) {
	pb, err := a.resolveOne(req.Trigger)
	if err != nil {
		return nil, fmt.Errorf("trigger: %w", err)
	}
	var raw map[string]json.RawMessage
	if len(req.Params) > 0 {
		if err := json.Unmarshal(req.Params, &raw); err != nil {
			return nil, fmt.Errorf("params: %w", err)
		}
	}
	var timeout time.Duration
	if a.cfg.Hub != nil {
		timeout = a.cfg.Hub.PlanTimeout
	}
	if timeout <= 0 {
		timeout = DefaultPlanTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	params, r, err := a.planPlaybook(pctx, pb, nil, raw)
	if pe, ok := errors.AsType[*engine.ParamError](err); ok {
		return nil, fmt.Errorf("playbook %s: parameter %q %s", pb.Name, pe.Param, refusalMsg(pe))
	}
	if errors.Is(err, errNoPlanner) {
		return nil, err
	}
	p := &channel.Plan{Playbook: pb.Name, Version: pb.ShortVersion(), Params: params.Record(), At: start.UTC()}
	if err == nil {
		err = decodePlan(r, p)
	}
	if err == nil && pctx.Err() != nil {
		err = pctx.Err() // the mirror run was cut short
	}
	if err != nil {
		p.Status, p.Error = channel.PlanNotPlanned, err.Error()
		if errors.Is(pctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			p.Error = fmt.Sprintf("the plan did not finish within %s: %s", timeout, err)
		}
	}
	scrubbed, err := scrubPlan(p, params)
	if err != nil {
		return nil, err
	}
	scrubbed.TookMS = time.Since(start).Milliseconds() // after the scrub: a number is never mistaken for a secret
	a.log.Info("hub plan made", "playbook", pb.Name, "status", scrubbed.Status, "steps", len(scrubbed.Steps), "took", time.Since(start).Round(time.Millisecond))
	return scrubbed, nil
}

// decodePlan reads the planner's answer (runtime/plan's Report, by its
// JSON: the shape POST /v1/plan answers) into p. It reads the JSON, not
// the type, because runtime/plan runs playbooks against the simulator,
// which the agent's production code never depends on (TestLayering).
func decodePlan(r any, p *channel.Plan) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("the plan: %w", err)
	}
	var w struct {
		Steps []struct {
			What, Method, Path, Outcome string
		} `json:"steps"`
		Status      string          `json:"status"`
		Error       string          `json:"error"`
		Result      json.RawMessage `json:"result"`
		Changes     []string        `json:"changes"`
		Assumptions []string        `json:"assumptions"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("the plan: %w", err)
	}
	if w.Status == "" {
		return errors.New("the plan: the planner said nothing of the run's end")
	}
	for _, s := range w.Steps {
		p.Steps = append(p.Steps, channel.PlanStep{What: s.What, Method: s.Method, Path: s.Path, Outcome: s.Outcome})
	}
	p.Status, p.Error, p.Result, p.Changes, p.Assumptions = w.Status, w.Error, w.Result, w.Changes, w.Assumptions
	return nil
}

// scrubPlan returns p with the values of params' secrets replaced
// wherever they appear (a step's parameters, an error, the result).
func scrubPlan(p *channel.Plan, params *engine.Params) (*channel.Plan, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("the plan: %w", err)
	}
	var out channel.Plan
	if err := json.Unmarshal(params.ScrubJSON(b), &out); err != nil {
		return nil, fmt.Errorf("the plan, scrubbed: %w", err)
	}
	return &out, nil
}
