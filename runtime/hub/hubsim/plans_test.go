package hubsim

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
)

// TestPlanJobs: a plan job is queued unsigned with a request the agent's
// parser accepts; a lost DELETE keeps it queued; the plans the reports
// carry are kept for the test to read.
func TestPlanJobs(t *testing.T) {
	s := New()
	s.AdminKey = "admin"
	s.AddHost("a", "ka")
	ts := httptest.NewTLSServer(s)
	defer ts.Close()

	status, body := do(t, ts, "POST", "/sim/hosts/a/plan-jobs", "admin", `{"trigger": "backup", "params": {"vmids": [101]}}`)
	if status != 201 || !strings.Contains(body, `"job_id":"job-1"`) {
		t.Fatalf("POST plan-jobs = %d %s", status, body)
	}
	if status, body := do(t, ts, "POST", "/sim/hosts/zz/plan-jobs", "admin", `{"trigger": "backup"}`); status != 404 {
		t.Errorf("a plan job for an unknown host = %d %s; want 404", status, body)
	}
	_, list := do(t, ts, "GET", "/api/v1/hosts/a/jobs", "ka", "")
	jobs, err := channel.ParseJobs([]byte(list))
	if err != nil || len(jobs) != 1 || jobs[0].Kind != channel.JobKindPlan || jobs[0].Err != nil {
		t.Fatalf("the agent reads the jobs as %+v, %v; want one plan job", jobs, err)
	}
	req, err := channel.ParsePlanRequest(jobs[0].Blob, "a")
	if err != nil || req.Trigger != "backup" || string(req.Params) != `{"vmids":[101]}` {
		t.Fatalf("the plan request = %+v, %v", req, err)
	}
	if PlanOp != channel.PlanOp {
		t.Errorf("PlanOp %q; the agent's is %q", PlanOp, channel.PlanOp)
	}

	s.SetFaults(Faults{FailClear: 1})
	if status, _ := do(t, ts, "DELETE", "/api/v1/hosts/a/jobs/job-1", "ka", ""); status != 503 {
		t.Errorf("a lost DELETE = %d; want 503", status)
	}
	if status, _ := do(t, ts, "DELETE", "/api/v1/hosts/a/jobs/job-1", "ka", ""); status != 204 {
		t.Errorf("the DELETE after it = %d; want 204", status)
	}
	if c := s.Cleared("a"); len(c) != 1 || c[0] != "job-1" {
		t.Errorf("cleared %v; want job-1 once", c)
	}

	plan := `{"job_id":"job-1","trigger":"backup","status":"succeeded","steps":[{"what":"vzdump 101"}]}`
	do(t, ts, "POST", "/api/v1/host-report", "ka", `{"host_id": "a", "plans": [`+plan+`]}`)
	do(t, ts, "POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`)
	if p := s.Plans("a"); len(p) != 1 || string(p[0]) != plan {
		t.Errorf("Plans = %s; want the one reported", p)
	}
	if status, body := do(t, ts, "GET", "/sim/hosts/a/plans", "admin", ""); status != 200 || !strings.Contains(body, `"what":"vzdump 101"`) {
		t.Errorf("GET plans = %d %s", status, body)
	}
	b, _ := PlanBlob("a", "x", nil)
	if r, err := channel.ParsePlanRequest(b, "a"); err != nil || string(r.Params) != "{}" {
		t.Errorf("PlanBlob without params = %s: %+v, %v; want params {}", b, r, err)
	}
	if _, err := PlanBlob("a", "x", json.RawMessage("{")); err == nil {
		t.Error("PlanBlob took params that are not JSON")
	}
}
