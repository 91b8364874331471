package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/hubsim"
)

// fakePlanner answers like runtime/plan (its Report's JSON shape), with a
// step that carries the secret parameter's value, so that the scrubbing is
// seen; a playbook named "slow" plans until its context ends.
type fakePlanner struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakePlanner) plan(ctx context.Context, pb *engine.Playbook, params *engine.Params) (any, error) {
	f.mu.Lock()
	f.calls = append(f.calls, pb.Name)
	f.mu.Unlock()
	if pb.Name == "slow" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	pw := params.SecretValues()["pw"]
	return map[string]any{
		"playbook": pb.Name,
		"steps": []map[string]any{
			{"what": "vzdump 101 → usb-backup (snapshot, zstd)", "method": "POST", "path": "/nodes/pve/vzdump", "outcome": "OK", "upid": "UPID:x"},
			{"what": "set config of 101: description=" + pw, "method": "PUT", "path": "/nodes/pve/lxc/101/config", "outcome": "OK"},
		},
		"status":      "succeeded",
		"result":      map[string]any{"backed_up": []int{101}, "note": "used " + pw},
		"changes":     []string{"+ usb-backup:backup/vzdump-lxc-101-2026_12_01-15_00_00.tar.zst"},
		"assumptions": []string{"the host's running tasks finish"},
	}, nil
}

func (f *fakePlanner) made() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var planPlaybooks = map[string]string{
	"backup.star": agentPlaybook("backup", "    return 1",
		`params = {"vmids": param.list(param.int(), default = []), "pw": param.secret()}, triggers = ["nightly"]`),
	"slow.star": agentPlaybook("slow", "    return 1", `triggers = ["slow"]`),
	"a.star":    agentPlaybook("a", "    return 1", `triggers = ["twice"]`),
	"b.star":    agentPlaybook("b", "    return 1", `triggers = ["twice"]`),
}

const planSecret = "hunter2-plan-secret"

// TestHubPlan: a plan job's trigger is resolved and its params coerced as a
// run's; refusals name the problem; the plan carries no secret; the
// deadline bounds it; nothing is ever started or recorded.
func TestHubPlan(t *testing.T) {
	hsim := hubsim.New()
	hsim.PollInterval = 1
	hsim.AddHost("host-a", "host-key-a")
	srv, err := hsim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	fp := &fakePlanner{}
	client := simClient(t, pvesim.New()) // the report reads the node
	ta := startAgent(t, planPlaybooks, func(c *Config) {
		c.Engine.Env.Proxmox, c.Proxmox = client, client
		c.Planner = fp.plan
		c.Hub = &HubConfig{Client: channel.Config{URL: srv.URL, HostID: "host-a", APIKey: "host-key-a", TLS: proxmox.TLSTrust{Fingerprint: srv.Fingerprint}},
			MinPoll: time.Second, PlanTimeout: 200 * time.Millisecond}
	})
	ctx := t.Context()
	req := func(trigger, params string) channel.PlanRequest {
		r := channel.PlanRequest{Op: channel.PlanOp, Trigger: trigger, Params: json.RawMessage(params)}
		r.Target.HostID = "host-a"
		return r
	}

	p, err := ta.hubPlan(ctx, req("nightly", `{"vmids": [101], "pw": "`+planSecret+`"}`))
	if err != nil {
		t.Fatalf("hubPlan(nightly) = %v", err)
	}
	if p.Playbook != "backup" || p.Status != "succeeded" || len(p.Steps) != 2 || p.Steps[0].What != "vzdump 101 → usb-backup (snapshot, zstd)" ||
		len(p.Changes) != 1 || len(p.Assumptions) != 1 || p.Version == "" || p.At.IsZero() {
		t.Errorf("plan = %+v; want backup's, succeeded, its steps, changes and assumptions", p)
	}
	b, _ := json.Marshal(p)
	if strings.Contains(string(b), planSecret) || p.Params["pw"] != engine.Redacted ||
		p.Steps[1].What != "set config of 101: description="+engine.Redacted || !strings.Contains(string(p.Result), "used "+engine.Redacted) {
		t.Errorf("plan %s; want the secret redacted in params, steps and result", b)
	}

	for _, tc := range []struct{ trigger, params, want string }{
		{"nope", `{}`, `trigger: no playbook answers "nope"`},
		{"twice", `{}`, `2 playbooks answer trigger "twice"`},
		{"nightly", `{"vmids": "x", "pw": "` + planSecret + `"}`, `playbook backup: parameter "vmids" must be`},
		{"nightly", `{}`, `playbook backup: parameter "pw" is required`},
		{"nightly", `{"pw": "a", "vmid": 1}`, `parameter "vmid" is not declared`},
	} {
		_, err := ta.hubPlan(ctx, req(tc.trigger, tc.params))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), planSecret) {
			t.Errorf("hubPlan(%s, %s) = %v; want refused: %q", tc.trigger, tc.params, err, tc.want)
		}
	}

	// The deadline: a plan that does not finish is not_planned, named so.
	p, err = ta.hubPlan(ctx, req("slow", `{}`))
	if err != nil || p.Status != channel.PlanNotPlanned || !strings.Contains(p.Error, "the plan did not finish within 200ms") {
		t.Errorf("a slow plan = %+v, %v; want not_planned naming the deadline", p, err)
	}

	// Through the channel: the hub queues a plan job, the next report
	// carries the plan, the job is cleared.
	id, err := hsim.EnqueuePlan("host-a", "nightly", json.RawMessage(`{"vmids": [101], "pw": "`+planSecret+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var plans []json.RawMessage
	for deadline := time.Now().Add(20 * time.Second); len(plans) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			reps := hsim.Reports("host-a")
			t.Fatalf("no report carried the plan: %d reports, the last %s", len(reps), reps[len(reps)-1].Body)
		}
		plans = hsim.Plans("host-a")
	}
	if len(plans) != 1 || !strings.Contains(string(plans[0]), `"job_id":"`+id+`"`) || !strings.Contains(string(plans[0]), `"trigger":"nightly"`) ||
		strings.Contains(string(plans[0]), planSecret) {
		t.Errorf("plans reported %s; want the job's plan, no secret", plans)
	}
	if c := hsim.Cleared("host-a"); len(c) != 1 || c[0] != id {
		t.Errorf("cleared %v; want %s", c, id)
	}
	for _, r := range hsim.Reports("host-a") {
		if strings.Contains(string(r.Body), planSecret) {
			t.Errorf("a report holds the secret: %s", r.Body)
		}
	}

	// A plan starts nothing and records nothing.
	runs, err := ta.client.Runs(ctx, api.ListFilter{})
	if err != nil || len(runs) != 0 {
		t.Errorf("runs after the plans: %v, %v; want none", runs, err)
	}
	if got := strings.Join(fp.made(), ","); got != "backup,slow,backup" {
		t.Errorf("plans made %s; want backup, slow, backup (refused requests plan nothing)", got)
	}
}

// TestLocalPlanSharesHubPlan: POST /v1/plan is made by the same piece:
// coerced params, refusals as a run's, and no planner answers 503.
func TestLocalPlanSharesHubPlan(t *testing.T) {
	fp := &fakePlanner{}
	ta := startAgent(t, planPlaybooks, func(c *Config) { c.Planner = fp.plan })
	ctx := t.Context()
	raw, err := ta.client.Plan(ctx, api.TriggerRequest{Playbook: "backup", Args: map[string]string{"vmids": "101", "pw": planSecret}})
	if err != nil || !strings.Contains(string(raw), `"what":"vzdump 101 → usb-backup (snapshot, zstd)"`) {
		t.Fatalf("Plan = %s, %v", raw, err)
	}
	_, err = ta.client.Plan(ctx, api.TriggerRequest{Playbook: "backup", Args: map[string]string{"vmids": "x", "pw": "a"}})
	if ae, ok := errors.AsType[*api.Error](err); !ok || ae.Status != 400 || ae.Field != "params.vmids" {
		t.Errorf("Plan with a bad parameter = %v; want a bad request naming params.vmids", err)
	}
	if _, err := ta.client.Plan(ctx, api.TriggerRequest{Playbook: "nope"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Plan of no such playbook = %v; want not found", err)
	}

	none := startAgent(t, planPlaybooks, nil)
	if _, err := none.client.Plan(ctx, api.TriggerRequest{Playbook: "slow"}); !strings.Contains(fmtErr(err), "makes no plans") || err.(*api.Error).Status != 503 {
		t.Errorf("Plan without a planner = %v; want unavailable", err)
	}
	r := channel.PlanRequest{Op: channel.PlanOp, Trigger: "slow"}
	if _, err := none.hubPlan(ctx, r); err == nil || !strings.Contains(err.Error(), "makes no plans") {
		t.Errorf("a plan job without a planner = %v; want refused", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
