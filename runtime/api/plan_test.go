package api

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
)

// planningBackend is a Backend that plans.
type planningBackend struct {
	*fakeBackend
	got TriggerRequest
}

func (p *planningBackend) Plan(_ context.Context, req TriggerRequest) (json.RawMessage, error) {
	p.got = req
	if _, ok := req.Args["bad"]; ok {
		return nil, &BadRequestError{Field: "params.bad", Msg: "is not declared"}
	}
	return json.RawMessage(`{"playbook":"` + req.Playbook + `","status":"succeeded"}`), nil
}

// TestPlanRoute: POST /v1/plan hands the request to a Planner and answers
// its plan; a refusal keeps its field; an agent that does not plan
// answers 503, and a plan needs a playbook's name.
func TestPlanRoute(t *testing.T) {
	pb := &planningBackend{fakeBackend: newFake()}
	c, _ := serve(t, pb, nil)
	ctx := context.Background()
	raw, err := c.Plan(ctx, TriggerRequest{Playbook: "backup", Args: map[string]string{"vmids": "101"}})
	if err != nil || string(raw) != `{"playbook":"backup","status":"succeeded"}` || pb.got.Args["vmids"] != "101" {
		t.Errorf("Plan = %s, %v (backend got %+v)", raw, err, pb.got)
	}
	_, err = c.Plan(ctx, TriggerRequest{Playbook: "backup", Args: map[string]string{"bad": "1"}})
	if e, ok := errors.AsType[*Error](err); !ok || e.Status != 400 || e.Field != "params.bad" {
		t.Errorf("Plan with a refused parameter = %v; want a 400 naming params.bad", err)
	}
	if _, err := c.Plan(ctx, TriggerRequest{}); err == nil {
		t.Error("Plan without a playbook = nil error")
	}
	plain, _ := serve(t, newFake(), nil)
	if _, err := plain.Plan(ctx, TriggerRequest{Playbook: "backup"}); !errors.Is(err, ErrUnavailable) {
		if e, ok := errors.AsType[*Error](err); !ok || e.Status != 503 {
			t.Errorf("Plan on an agent that does not plan = %v; want 503", err)
		}
	}
}
