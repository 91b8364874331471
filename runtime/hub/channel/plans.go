package channel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// Plan jobs: the hub asks what a run of a trigger would do. A plan job is
// a job like any other on the wire ({job_id, op_blob_b64, sig_armored}),
// whose blob is a plan request (op PlanOp) instead of a signed operation.
// It needs no signature — a plan reads the host with GETs only, runs the
// playbook against a mirror, records nothing and starts nothing — so it is
// bounded instead: at most MaxPlansPerFetch are decided per fetch (one per
// accepted report; the rest stay queued for the next ones), each within the
// agent's plan deadline, each blob at most MaxJobBlobBytes, each plan
// entry cut to the bounds below. Its outcome is a job outcome (kind
// "plan", outcome "planned" or "refused") and, when planned, a Plan in the
// next report's plans.

// PlanOp is the op of a plan request. It cannot name a playbook or a
// trigger (those are [a-z][a-z0-9_-]*), and the safety gate's verifier
// refuses it as a signed operation, so a plan request is never confused
// with an operation that runs.
const PlanOp = "felhom.plan"

// JobKindPlan is the kind of a plan job (Job.Kind, JobOutcome.Kind); a
// signed job's kind is "".
const JobKindPlan = "plan"

// JobPlanned is the outcome of a plan job whose plan was made (the Plan is
// in the report's plans, under its job id).
const JobPlanned = "planned"

// MaxPlansPerFetch bounds the plan jobs decided per fetch of the jobs: a
// hub can make the agent plan at most this often per accepted report, so
// at most once per poll interval (hub.poll_floor, 60 s by default).
const MaxPlansPerFetch = 1

// Bounds of one plan entry in the report and the state.
const (
	maxPlanSteps       = 200
	maxPlanChanges     = 200
	maxPlanAssumptions = 50
	maxPlanText        = 512     // a step's what, path and outcome; a change; an assumption
	maxPlanError       = 2 << 10 // the plan's error
	maxPlanResult      = 16 << 10
	maxPlanParams      = 8 << 10
	// maxPlanRecords bounds the unreported plans the State keeps (the
	// oldest go first; their job outcomes are still reported).
	maxPlanRecords = 8
)

// PlanRequest is the blob of a plan job:
//
//	{"op": "felhom.plan", "target": {"host_id": "cust-042"}, "trigger": "backup", "params": {"vmids": [101]}}
//
// Trigger names a playbook or a trigger exactly one playbook answers;
// Params are given as for a run (the playbook's declaration coerces them).
type PlanRequest struct {
	Op     string `json:"op"`
	Target struct {
		HostID string `json:"host_id"`
	} `json:"target"`
	Trigger string          `json:"trigger"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// triggerName is what a plan request's trigger may be (a playbook's name
// or trigger, as the engine declares them).
var triggerName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ParsePlanRequest reads a plan job's blob strictly: one JSON object of
// exactly the PlanRequest fields, op PlanOp, a trigger name, params an
// object. host is this host's id: a request for another host is refused.
func ParsePlanRequest(blob []byte, host string) (*PlanRequest, error) {
	var r PlanRequest
	if err := decodeStrict(blob, &r, true); err != nil {
		return nil, fmt.Errorf("plan request: %w", err)
	}
	switch {
	case r.Op != PlanOp:
		return nil, fmt.Errorf("plan request: op is %q, not %q", clip.Line(r.Op, 40), PlanOp)
	case r.Target.HostID != host:
		return nil, fmt.Errorf("plan request: target.host_id: it is for host %q, this is %q", clip.Line(r.Target.HostID, 80), host)
	case !triggerName.MatchString(r.Trigger):
		return nil, fmt.Errorf("plan request: trigger: %q is not a playbook or trigger name", clip.Line(r.Trigger, 80))
	}
	if p := bytes.TrimSpace(r.Params); len(p) == 0 || string(p) == "null" {
		r.Params = json.RawMessage("{}")
	} else if p[0] != '{' {
		return nil, errors.New("plan request: params: not a JSON object")
	}
	return &r, nil
}

// isPlanBlob reports whether op_blob_b64 holds a plan request (its op is
// PlanOp), however malformed otherwise; blob is the decoded bytes.
func isPlanBlob(b64 string) ([]byte, bool) {
	if b64 == "" || len(b64) > base64.StdEncoding.EncodedLen(MaxJobBlobBytes) {
		return nil, false
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, false
	}
	var head struct {
		Op string `json:"op"`
	}
	if json.Unmarshal(blob, &head) != nil || head.Op != PlanOp {
		return nil, false
	}
	return blob, true
}

// Plan is what a run would do, as the report carries it (plans): the
// mutations in order, the predicted end, the change in state and what the
// mirror assumed. Secret parameters are never in it: Params shows them as
// "[redacted]" and their values are scrubbed from every string.
type Plan struct {
	JobID    string `json:"job_id"`
	Trigger  string `json:"trigger"`
	Playbook string `json:"playbook"`
	Version  string `json:"version,omitempty"` // the playbook version planned
	// Params are the coerced parameters, secret ones redacted; absent
	// when over 8 KiB (Truncated).
	Params map[string]any `json:"params,omitempty"`
	// Status is the predicted end of the run (succeeded, failed,
	// timed_out, ...), or "not_planned" when no plan could be made (the
	// host could not be read, the deadline passed); Error says why.
	Status       string          `json:"status"`
	Steps        []PlanStep      `json:"steps"`
	StepsOmitted int             `json:"steps_omitted,omitempty"`
	Result       json.RawMessage `json:"result,omitempty"`
	Changes      []string        `json:"changes"`
	Assumptions  []string        `json:"assumptions"`
	Error        string          `json:"error,omitempty"`
	// Truncated is set when the entry was cut to its bounds.
	Truncated bool      `json:"truncated,omitempty"`
	At        time.Time `json:"at"`
	TookMS    int64     `json:"took_ms"`
}

// PlanNotPlanned is a Plan's status when no plan could be made.
const PlanNotPlanned = "not_planned"

// PlanStep is one mutation the playbook would send, in order.
type PlanStep struct {
	What    string `json:"what"`    // "vzdump 101 → usb-backup (snapshot, zstd)"
	Method  string `json:"method"`  // POST, PUT, DELETE
	Path    string `json:"path"`    // below /api2/json
	Outcome string `json:"outcome"` // "OK", the task's error, or the refusal
}

// PlanHandler makes the plan a plan job asks for. An error refuses the job
// for good (an unknown trigger, a parameter refused), naming the problem;
// a plan that could not be made is a Plan with status PlanNotPlanned. When
// ctx ends (the agent stops) the job stays queued, whatever is returned.
type PlanHandler func(ctx context.Context, req PlanRequest) (*Plan, error)

// bound cuts p to the plan entry's bounds.
func (p *Plan) bound() {
	cut := func(s string, n int) string {
		if c := clip.String(s, n); c != s {
			p.Truncated = true
			return c
		}
		return s
	}
	if len(p.Steps) > maxPlanSteps {
		p.StepsOmitted += len(p.Steps) - maxPlanSteps
		p.Steps, p.Truncated = p.Steps[:maxPlanSteps], true
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		s.What, s.Path, s.Outcome = cut(s.What, maxPlanText), cut(s.Path, maxPlanText), cut(s.Outcome, maxPlanText)
	}
	cutList := func(l []string, n int) []string {
		if len(l) > n {
			l, p.Truncated = l[:n], true
		}
		for i := range l {
			l[i] = cut(l[i], maxPlanText)
		}
		return l
	}
	p.Changes = cutList(p.Changes, maxPlanChanges)
	p.Assumptions = cutList(p.Assumptions, maxPlanAssumptions)
	p.Error = cut(p.Error, maxPlanError)
	if len(p.Result) > maxPlanResult {
		p.Result, _ = json.Marshal(clip.String(string(p.Result), maxPlanResult/2))
		p.Truncated = true
	}
	if b, err := json.Marshal(p.Params); err != nil || len(b) > maxPlanParams {
		p.Params, p.Truncated = nil, true
	}
	if p.Steps == nil {
		p.Steps = []PlanStep{}
	}
	if p.Changes == nil {
		p.Changes = []string{}
	}
	if p.Assumptions == nil {
		p.Assumptions = []string{}
	}
}

// planJob decides one well-formed plan job: the request is parsed and
// handed to the Plans handler; the plan made is kept for the next report.
// The error is for a job left undecided (the channel is stopping).
func (c *Channel) planJob(ctx context.Context, j Job) (JobOutcome, error) {
	if c.Plans == nil {
		return JobOutcome{Outcome: JobRefused, Reason: "this agent makes no plans"}, nil
	}
	req, err := ParsePlanRequest(j.Blob, c.HostID)
	if err != nil {
		return JobOutcome{Outcome: JobRefused, Reason: err.Error()}, nil
	}
	start := time.Now()
	p, err := c.Plans(ctx, *req)
	if ctx.Err() != nil {
		return JobOutcome{}, fmt.Errorf("the plan was interrupted: %w", ctx.Err())
	}
	if err != nil {
		return JobOutcome{Outcome: JobRefused, Reason: err.Error()}, nil
	}
	p.JobID, p.Trigger = j.ID, req.Trigger
	if p.At.IsZero() {
		p.At = time.Now().UTC()
	}
	if p.TookMS == 0 {
		p.TookMS = time.Since(start).Milliseconds()
	}
	p.bound()
	c.addPlan(*p)
	return JobOutcome{Outcome: JobPlanned}, nil
}

// addPlan keeps a plan for the next report, forgetting the oldest beyond
// maxPlanRecords.
func (c *Channel) addPlan(p Plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Plans = append(c.st.Plans, p)
	if n := len(c.st.Plans) - maxPlanRecords; n > 0 {
		c.logger().Warn("plans the hub has not received yet are forgotten: too many wait", "forgotten", n)
		c.st.Plans = append([]Plan(nil), c.st.Plans[n:]...)
	}
}

// unreportedPlans are the plans no accepted report carried yet, oldest
// first (a copy). c.mu held.
func (c *Channel) unreportedPlans() []Plan {
	if len(c.st.Plans) == 0 {
		return nil
	}
	out := make([]Plan, len(c.st.Plans))
	for i, p := range c.st.Plans {
		p.Steps = append([]PlanStep(nil), p.Steps...)
		p.Changes = append([]string(nil), p.Changes...)
		p.Assumptions = append([]string(nil), p.Assumptions...)
		out[i] = p
	}
	return out
}

// plansReported forgets the plans a report carried. c.mu held.
func (c *Channel) plansReported(sent []Plan) {
	if len(sent) == 0 {
		return
	}
	done := map[string]bool{}
	for _, p := range sent {
		done[p.JobID] = true
	}
	kept := c.st.Plans[:0:0]
	for _, p := range c.st.Plans {
		if !done[p.JobID] {
			kept = append(kept, p)
		}
	}
	c.st.Plans = kept
}
