package hubsim

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Plan jobs (docs/hub-protocol.md, "Plan jobs"): the hub asks a host what a
// run of a trigger would do by queueing an unsigned job whose blob is a
// plan request, and reads the plan in the host's next report. The
// simulator builds the request ([Sim.EnqueuePlan], POST
// /sim/hosts/{host_id}/plan-jobs) and keeps the plans the reports carried
// ([Sim.Plans], GET /sim/hosts/{host_id}/plans).

// PlanOp is the op of a plan request, as the agent reads it.
const PlanOp = "felhom.plan"

// PlanBlob is the plan request for a run of trigger with params (a JSON
// object; nil for none) on host id.
func PlanBlob(id, trigger string, params json.RawMessage) ([]byte, error) {
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	if !json.Valid(params) {
		return nil, errors.New("hubsim: the plan's params are not JSON")
	}
	return json.Marshal(map[string]any{
		"op":      PlanOp,
		"target":  map[string]string{"host_id": id},
		"trigger": trigger,
		"params":  params,
	})
}

// EnqueuePlan queues a plan job (unsigned: a plan needs no signature) for
// a host and returns its id.
func (s *Sim) EnqueuePlan(id, trigger string, params json.RawMessage) (string, error) {
	blob, err := PlanBlob(id, trigger, params)
	if err != nil {
		return "", err
	}
	return s.EnqueueJob(id, Job{OpBlobB64: base64.StdEncoding.EncodeToString(blob)})
}

// Plans returns the plans a host's reports carried, oldest first, each as
// the report had it (job_id, trigger, playbook, params, status, steps,
// result, changes, assumptions, error).
func (s *Sim) Plans(id string) []json.RawMessage {
	var out []json.RawMessage
	for _, r := range s.Reports(id) {
		var body struct {
			Plans []json.RawMessage `json:"plans"`
		}
		if json.Unmarshal(r.Body, &body) == nil {
			out = append(out, body.Plans...)
		}
	}
	return out
}

func (s *Sim) postPlanJob(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Trigger string          `json:"trigger"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, "want {trigger, params}: "+err.Error())
		return
	}
	id, err := s.EnqueuePlan(r.PathValue("host_id"), p.Trigger, p.Params)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"job_id": id})
}

func (s *Sim) getPlans(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("host_id")
	if err := s.withHost(id, func(*host) error { return nil }); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	p := s.Plans(id)
	if p == nil {
		p = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, p)
}
