package pvesim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the Now knob of a test: tasks stop when it is advanced.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testStart is the fake clock's start: archive names made at once carry
// 2026_11_20-03_00_01.
var testStart = time.Date(2026, 11, 20, 3, 0, 1, 0, time.Local)

const testTaskDuration = 10 * time.Second

// harness is a Sim served over TLS with a fake clock, whose unmodelled
// requests fail the test.
type harness struct {
	t     *testing.T
	sim   *Sim
	srv   *Server
	clock *fakeClock
	hc    *http.Client
	token string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with knobs set by tune before the
// simulator serves.
func newHarnessWith(t *testing.T, tune func(*Sim)) *harness {
	t.Helper()
	clock := &fakeClock{t: testStart}
	sim := &Sim{TaskDuration: testTaskDuration, Now: clock.Now}
	if tune != nil {
		tune(sim)
	}
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	srv, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &harness{t: t, sim: sim, srv: srv, clock: clock, hc: srv.Client(), token: srv.Token}
}

// result is one answer of the simulated API.
type result struct {
	status  int
	reason  string // the reason phrase: resp.Status without the code
	raw     []byte
	env     map[string]any // the decoded envelope, nil for an empty body
	headers http.Header
}

func (r *result) data() any { return r.env["data"] }

func (r *result) message() string {
	s, _ := r.env["message"].(string)
	return s
}

func (r *result) errors() map[string]string {
	out := map[string]string{}
	if m, ok := r.env["errors"].(map[string]any); ok {
		for k, v := range m {
			out[k], _ = v.(string)
		}
	}
	return out
}

func (r *result) object() map[string]any {
	m, _ := r.data().(map[string]any)
	return m
}

func (r *result) list() []map[string]any {
	var out []map[string]any
	items, _ := r.data().([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		out = append(out, m)
	}
	return out
}

func (r *result) str() string {
	s, _ := r.data().(string)
	return s
}

// do sends an API request with the default token; params go in the query
// for GET and DELETE and in a form body for POST and PUT.
func (h *harness) do(method, path string, params url.Values) *result {
	h.t.Helper()
	return h.doAuth(method, path, params, "PVEAPIToken="+h.token)
}

func (h *harness) doAuth(method, path string, params url.Values, auth string) *result {
	h.t.Helper()
	u := h.srv.Endpoint + "/api2/json" + path
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) *result {
	h.t.Helper()
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	r := &result{status: resp.StatusCode, raw: raw, headers: resp.Header}
	_, r.reason, _ = strings.Cut(resp.Status, " ")
	if len(raw) > 0 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && resp.StatusCode >= 500 {
		return r // pveproxy's own errors: the message as plain text
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.env); err != nil {
			h.t.Fatalf("%s %s: body %q is not JSON: %v", req.Method, req.URL.Path, raw, err)
		}
	}
	return r
}

// ok asserts a 200 and returns the result.
func (h *harness) ok(method, path string, params url.Values) *result {
	h.t.Helper()
	r := h.do(method, path, params)
	if r.status != http.StatusOK {
		h.t.Fatalf("%s %s %v = %d %q %s; want 200", method, path, params, r.status, r.reason, r.raw)
	}
	return r
}

// fails asserts a PVE error: status, the reason phrase and the body's
// message both carrying msg (the body's with PVE's newline).
func (h *harness) fails(method, path string, params url.Values, status int, msg string) *result {
	h.t.Helper()
	r := h.do(method, path, params)
	if r.status != status || r.reason != msg {
		h.t.Fatalf("%s %s %v = %d %q %s; want %d %q", method, path, params, r.status, r.reason, r.raw, status, msg)
	}
	if got := strings.TrimSuffix(r.message(), "\n"); got != msg {
		h.t.Fatalf("%s %s: message = %q; want %q", method, path, r.message(), msg)
	}
	if _, ok := r.env["data"]; !ok || r.data() != nil {
		h.t.Fatalf("%s %s: error body %s lacks \"data\": null", method, path, r.raw)
	}
	return r
}

// upid starts a task and returns its UPID.
func (h *harness) upid(method, path string, params url.Values) string {
	h.t.Helper()
	r := h.ok(method, path, params)
	u := r.str()
	if !strings.HasPrefix(u, "UPID:") {
		h.t.Fatalf("%s %s = %s; want a UPID", method, path, r.raw)
	}
	return u
}

// finish advances the clock past every task and returns the task's
// status.
func (h *harness) finish(upid string) map[string]any {
	h.t.Helper()
	h.clock.Advance(time.Hour)
	st := h.ok("GET", "/nodes/"+upidNode(upid)+"/tasks/"+upid+"/status", nil).object()
	if st["status"] != "stopped" {
		h.t.Fatalf("task %s still %v after an hour", upid, st["status"])
	}
	return st
}

// wantExit runs the task to its end and asserts its exit status.
func (h *harness) wantExit(upid, exit string) []string {
	h.t.Helper()
	st := h.finish(upid)
	if st["exitstatus"] != exit {
		h.t.Fatalf("task %s exitstatus = %q; want %q\nlog:\n%s", upid, st["exitstatus"], exit, strings.Join(h.log(upid), "\n"))
	}
	return h.log(upid)
}

func (h *harness) log(upid string) []string {
	h.t.Helper()
	var lines []string
	for _, l := range h.ok("GET", "/nodes/"+upidNode(upid)+"/tasks/"+upid+"/log", url.Values{"limit": {"1000"}}).list() {
		s, _ := l["t"].(string)
		lines = append(lines, s)
	}
	return lines
}

func (h *harness) guest(vmid int) GuestView {
	h.t.Helper()
	g, ok := h.sim.Guest(vmid)
	if !ok {
		h.t.Fatalf("guest %d does not exist", vmid)
	}
	return g
}

const nodePath = "/nodes/" + DefaultNode

// upidNode is the node a UPID names (DefaultNode when it names none).
func upidNode(upid string) string {
	if _, rest, ok := strings.Cut(upid, "UPID:"); ok {
		if node, _, ok := strings.Cut(rest, ":"); ok && node != "" {
			return node
		}
	}
	return DefaultNode
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}
