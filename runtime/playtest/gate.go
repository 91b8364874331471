package playtest

import (
	"encoding/json"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
)

// testScratch is the simulator's self-test guest: scratch in tests, as
// with --sim.
const testScratch = 9999

// gate is the safety gate of one run_playbook: the run's calls pass it as
// on a serving agent; with operator, the simulated operator signs every
// pending operation (the run log says so). decisions fills with the
// gate's decisions other than plain benign passes, for the test to read.
func (h *harness) gate(id string, pb *engine.Playbook, p *engine.Params, operator bool) (*safety.Gate, *starlark.List, error) {
	rec, err := json.Marshal(p.Record())
	if err != nil {
		return nil, nil, err
	}
	decisions := starlark.NewList(nil)
	g := &safety.Gate{
		Run:    safety.RunInfo{ID: id, Playbook: pb.Name, Triggers: pb.Decl.Triggers, Params: rec, Source: "test"},
		HostID: h.client.Node(), Policy: safety.Policy{MinBackups: 1, Scratch: []int{testScratch}},
		Facts: safety.ClientFacts{C: h.client},
		Audit: func(e safety.AuditEntry) {
			if e.Decision != safety.Allowed {
				h.logger.Info("safety gate", "run", id, "decision", string(e.Decision), "what", e.What, "rule", e.Rule, "detail", e.Detail)
				decisions.Append(starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
					"decision": starlark.String(e.Decision), "what": starlark.String(e.What), "rule": starlark.String(e.Rule), "guest": starlark.MakeInt(e.Guest),
				}))
			}
		},
	}
	if operator {
		if err := g.SignSimulated(); err != nil {
			return nil, nil, err
		}
	}
	return g, decisions, nil
}
