package builtins

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

type fixedDesired struct {
	gen int64
	doc json.RawMessage
}

func (f fixedDesired) DesiredState() (int64, json.RawMessage) { return f.gen, f.doc }

func TestHubDesiredState(t *testing.T) {
	rig := newRig(t)
	rig.env.Desired = fixedDesired{7, json.RawMessage(`{"schema":1,"guests":[{"vmid":120,"hostname":"shop","cores":2}]}`)}
	g, err := runStar(t, rig.env, `
d = hub.desired_state()
gen = d.generation
first = d.state["guests"][0]
`)
	if err != nil {
		t.Fatal(err)
	}
	if g["gen"] != starlark.MakeInt(7) {
		t.Errorf("generation = %v; want 7", g["gen"])
	}
	first := g["first"].(*starlark.Dict)
	if v, _, _ := first.Get(starlark.String("hostname")); v != starlark.String("shop") {
		t.Errorf("guests[0].hostname = %v", v)
	}

	rig.env.Desired = fixedDesired{}
	g, err = runStar(t, rig.env, `d = hub.desired_state()`)
	if err != nil {
		t.Fatal(err)
	}
	if st := attrOf(t, g["d"], "state"); st != starlark.None {
		t.Errorf("state without a desired state = %v; want None", st)
	}

	rig.env.Desired = nil
	if _, err := runStar(t, rig.env, `hub.desired_state()`); err == nil || !strings.Contains(err.Error(), "hub.desired_state: no hub is configured") {
		t.Errorf("hub.desired_state() without a hub = %v", err)
	}
}

// TestReadHealthMatchesMonitorAll: the typed reading the hub report uses
// and monitor.all() read the same monitors.
func TestReadHealthMatchesMonitorAll(t *testing.T) {
	rig := newRig(t)
	rig.pve.errs["NodeStatus"] = errors.New("connection refused")
	h := ReadHealth(context.Background(), rig.env)
	if h.Node != nil || !strings.Contains(h.Errors["node"], "connection refused") {
		t.Errorf("node = %v, errors %v; want it failed", h.Node, h.Errors)
	}
	if len(h.Storage) != 3 || len(h.Disks) == 0 || h.Tunnel == nil {
		t.Errorf("health = %+v; want storage, disks and tunnel read", h)
	}
	if len(h.Took) != len(monitors) {
		t.Errorf("took = %v; want one per monitor", h.Took)
	}
	if len(h.Skipped) != 0 || len(h.Sensors) == 0 {
		t.Errorf("skipped = %v, sensors %v; want the sensors read on an agent with privileged operations", h.Skipped, h.Sensors)
	}
	rig.env.Host = nil
	h = ReadHealth(context.Background(), rig.env)
	if _, ok := h.Skipped["sensors"]; !ok || h.Errors["sensors"] != "" || h.Sensors != nil {
		t.Errorf("without privileged operations: skipped %v, errors %v, sensors %v; want sensors skipped, not failed", h.Skipped, h.Errors, h.Sensors)
	}
}
