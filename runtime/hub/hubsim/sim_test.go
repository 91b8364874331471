package hubsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func do(t *testing.T, ts *httptest.Server, method, path, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	s := New()
	s.AdminKey = "admin"
	s.OnUnmodeled = func(r *http.Request) { t.Logf("unmodeled %s %s (expected once)", r.Method, r.URL.Path) }
	ts := httptest.NewTLSServer(s)
	defer ts.Close()

	steps := []struct {
		method, path, key, body string
		status                  int
		contains                string
	}{
		{"POST", "/sim/hosts", "admin", `{"host_id": "a", "api_key": "ka"}`, 204, ""},
		{"POST", "/sim/hosts", "admin", `{"host_id": "b", "api_key": "kb"}`, 204, ""},
		{"POST", "/sim/hosts", "ka", `{"host_id": "c", "api_key": "kc"}`, 401, "admin key"},
		{"POST", "/api/v1/host-report", "", `{"host_id": "a"}`, 401, "bearer"},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`, 200, `"desired_generation":0`},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "b"}`, 403, "does not match"},
		{"POST", "/api/v1/host-report", "ka", `not json`, 400, "not a JSON object"},
		{"PUT", "/api/v1/admin/hosts/a/desired-state", "admin", `{"schema": 1, "guests": []}`, 200, `"generation":1`},
		{"PUT", "/api/v1/admin/hosts/a/desired-state", "admin", `{`, 400, "not JSON"},
		{"PUT", "/api/v1/admin/hosts/zz/desired-state", "admin", `{}`, 404, "no host"},
		{"GET", "/api/v1/hosts/a/desired-state", "ka", ``, 200, `"generation":1`},
		{"GET", "/api/v1/hosts/a/desired-state", "kb", ``, 403, "own host"},
		{"POST", "/api/v1/admin/hosts/a/jobs", "admin", `{"op_blob_b64": "AA==", "sig_armored": "sig"}`, 201, `"job_id":"job-1"`},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`, 200, `"has_signed_ops":true`},
		{"GET", "/api/v1/hosts/a/jobs", "ka", ``, 200, `"op_blob_b64":"AA=="`},
		{"DELETE", "/api/v1/hosts/a/jobs/job-1", "ka", ``, 204, ""},
		{"DELETE", "/api/v1/hosts/a/jobs/job-1", "ka", ``, 204, ""},
		{"GET", "/sim/hosts/a/jobs/cleared", "admin", ``, 200, `["job-1"]`},
		{"PUT", "/sim/hosts/a/envelope", "admin", `{"poll_interval_seconds": 5, "blocked": true}`, 204, ""},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`, 200, `"poll_interval_seconds":5`},
		{"GET", "/sim/hosts/a/reports", "admin", ``, 200, `"bytes":`},
		{"PUT", "/sim/faults", "admin", `{"fail_next": 1, "fail_status": 500}`, 204, ""},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`, 500, "injected"},
		{"POST", "/api/v1/host-report", "ka", `{"host_id": "a"}`, 200, ""},
		{"GET", "/nowhere", "", ``, 404, "no route"},
	}
	for _, st := range steps {
		status, body := do(t, ts, st.method, st.path, st.key, st.body)
		if status != st.status || !strings.Contains(body, st.contains) {
			t.Errorf("%s %s (key %q) = %d %s; want %d containing %q", st.method, st.path, st.key, status, body, st.status, st.contains)
		}
	}
	if n := len(s.Reports("a")); n != 4 {
		t.Errorf("host a has %d reports; want 4", n)
	}
}

func TestReportSizeLimit(t *testing.T) {
	s := New()
	s.AddHost("a", "ka")
	s.MaxReportBytes = 1000
	ts := httptest.NewTLSServer(s)
	defer ts.Close()
	body, _ := json.Marshal(map[string]string{"host_id": "a", "pad": strings.Repeat("x", 1000)})
	status, _ := do(t, ts, "POST", "/api/v1/host-report", "ka", string(body))
	if status != 413 || s.Rejected("a", 413) != 1 || len(s.Reports("a")) != 0 {
		t.Fatalf("oversized report = %d; want 413 and nothing stored", status)
	}
}

func TestDown(t *testing.T) {
	s := New()
	s.AddHost("a", "ka")
	s.SetFaults(Faults{Down: true})
	ts := httptest.NewTLSServer(s)
	defer ts.Close()
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/host-report", bytes.NewReader([]byte(`{}`)))
	req.Header.Set("Authorization", "Bearer ka")
	if resp, err := ts.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a down hub answered %d", resp.StatusCode)
	}
}
