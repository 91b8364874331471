package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
)

// TestHubTriggerRefusals: every malformed, unauthenticated or unanswerable
// trigger gets its status, starts nothing, and leaves the agent serving. A
// replayed id gets 200 and the same runs, never a second run.
func TestHubTriggerRefusals(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "50ms")
	a := startAgent(t, agentOpts{env: sim.env()})

	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := func(id string) []byte {
		return triggerBody(t, id, "typed", map[string]any{"token": "hunter2-" + id})
	}
	signedAt := func(body []byte, at time.Time) http.Header {
		return hub.Sign(hubPriv, hubKeyID, "POST", "/v1/triggers", body, at)
	}
	now := time.Now()
	tests := []struct {
		name   string
		req    hubRequest
		status int
		want   string // substring of the answer
	}{
		{"unsigned", hubRequest{body: good("unsigned"), unsigned: true}, 401, "missing"},
		{"signed by another key", hubRequest{body: good("otherkey"), header: hub.Sign(otherPriv, hubKeyID, "POST", "/v1/triggers", good("otherkey"), now)}, 401, "does not verify"},
		{"unknown key id", hubRequest{body: good("keyid"), header: hub.Sign(hubPriv, "hub-unknown", "POST", "/v1/triggers", good("keyid"), now)}, 401, "unknown key"},
		{"forged body", hubRequest{body: good("forged-b"), header: signedAt(good("forged-a"), now)}, 401, "does not verify"},
		{"stale timestamp", hubRequest{body: good("stale"), header: signedAt(good("stale"), now.Add(-301*time.Second))}, 401, "outside the allowed window"},
		// Well past the 300 s window: "now" is taken before the requests go
		// out, and on a loaded machine they may take many seconds.
		{"future timestamp", hubRequest{body: good("future"), header: signedAt(good("future"), now.Add(400*time.Second))}, 401, "outside the allowed window"},
		{"oversized body", hubRequest{body: bytes.Repeat([]byte(" "), 4<<20)}, 413, "too large"},
		{"malformed JSON", hubRequest{body: []byte(`{"id": "m", "trigger": "typed", "params": {`)}, 400, ""},
		{"not an object", hubRequest{body: []byte(`["typed"]`)}, 400, ""},
		{"missing id", hubRequest{body: []byte(`{"trigger": "typed", "params": {"token": "x"}}`)}, 400, "id"},
		{"wrong type: string for int", hubRequest{body: triggerBody(t, "p1", "typed", map[string]any{"token": "x", "count": "three"})}, 400, "count"},
		{"wrong type: number for bool", hubRequest{body: triggerBody(t, "p2", "typed", map[string]any{"token": "x", "dry": 1})}, 400, "dry"},
		{"wrong type: bad duration", hubRequest{body: triggerBody(t, "p3", "typed", map[string]any{"token": "x", "wait": "soon"})}, 400, "wait"},
		{"wrong type: not in enum", hubRequest{body: triggerBody(t, "p4", "typed", map[string]any{"token": "x", "mode": "FAST"})}, 400, "mode"},
		{"wrong type: list of strings", hubRequest{body: triggerBody(t, "p5", "typed", map[string]any{"token": "x", "only": []string{"1"}})}, 400, "only"},
		{"wrong type: object for secret", hubRequest{body: triggerBody(t, "p6", "typed", map[string]any{"token": map[string]string{"pw": "hunter2"}})}, 400, "token"},
		{"missing required parameter", hubRequest{body: triggerBody(t, "p7", "typed", nil)}, 400, "token"},
		{"unknown parameter", hubRequest{body: triggerBody(t, "p8", "typed", map[string]any{"token": "x", "bogus": 1})}, 400, "bogus"},
		{"unknown trigger", hubRequest{body: triggerBody(t, "u1", "no-such-trigger", nil)}, 404, "no-such-trigger"},
		{"wrong method", hubRequest{method: "PUT", body: good("put")}, 405, ""},
	}
	refused := newTally(t, "hub trigger refusals with the right status (nothing started)", "cases", "right status")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused.add("cases")
			before := len(a.runs(t))
			r := tt.req
			if r.method == "" {
				r.method = "POST"
			}
			r.path = "/v1/triggers"
			code, body, err := a.hubDo(t, r)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if code != tt.status {
				t.Errorf("HTTP %d %s; want %d", code, clipLine(string(body)), tt.status)
			} else {
				refused.add("right status")
			}
			if tt.want != "" && !strings.Contains(string(body), tt.want) {
				t.Errorf("answer %s does not mention %q", clipLine(string(body)), tt.want)
			}
			if strings.Contains(string(body), "hunter2") || strings.Contains(string(body), "three") {
				t.Errorf("answer echoes a parameter value: %s", body)
			}
			if after := len(a.runs(t)); after != before {
				t.Errorf("%d runs before, %d after: a refused trigger started something", before, after)
			}
		})
	}

	t.Run("replayed id", func(t *testing.T) {
		body := triggerBody(t, "replay-1", "typed", map[string]any{"token": "x", "count": 7})
		code1, first := a.trigger(t, "replay-1", "typed", map[string]any{"token": "x", "count": 7})
		if code1 != http.StatusAccepted || len(first.Runs) != 1 {
			t.Fatalf("first trigger: HTTP %d %+v; want 202 with one run", code1, first)
		}
		for i := range 200 {
			code, b, err := a.hubDo(t, hubRequest{method: "POST", path: "/v1/triggers", body: body})
			if err != nil {
				t.Fatalf("replay %d: %v", i, err)
			}
			var again triggerAnswer
			_ = json.Unmarshal(b, &again)
			if code != http.StatusOK || !slices.Equal(runIDs(again.Runs), runIDs(first.Runs)) {
				t.Fatalf("replay %d: HTTP %d %s; want 200 with %v", i, code, b, runIDs(first.Runs))
			}
		}
		n := 0
		for _, r := range a.runs(t) {
			if r.Key == "replay-1" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d runs carry trigger id replay-1; want 1", n)
		}
		record(t, "replays of one trigger id / runs it has", "200 / %d", n)
	})

	t.Run("still serving", func(t *testing.T) {
		code, ans := a.trigger(t, "after-refusals", "typed", map[string]any{"token": paramSecret})
		if code != http.StatusAccepted {
			t.Fatalf("a good trigger after the refusals: HTTP %d %+v", code, ans)
		}
		r := a.waitRun(t, ans.Runs[0].ID, time.Minute, "to finish", finished)
		if r.Status != "succeeded" {
			t.Errorf("run %s: %s (%s)", r.ID, r.Status, r.Error)
		}
		if code, st := a.hubRun(t, ans.Runs[0].ID); code != http.StatusOK || st.Status != "succeeded" {
			t.Errorf("GET /v1/runs/%s: HTTP %d %+v", ans.Runs[0].ID, code, st)
		}
	})
}

func runIDs(rs []hub.RunRef) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// TestTCPListenerSurface: the TCP listener serves hub triggers, /metrics
// and /healthz, and no run control; the socket is not world-accessible.
func TestTCPListenerSurface(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: sim.env()})
	// A run of the local API, so that its id is real.
	r := a.startRun(t, "selftest", nil)
	a.waitRun(t, r.ID, time.Minute, "to finish", finished)

	tests := []struct {
		method, path string
		signed       bool
		ok           []int // allowed statuses
	}{
		{"GET", "/healthz", false, []int{200, 503}},
		{"GET", "/metrics", false, []int{200}},
		{"POST", "/v1/triggers", false, []int{401}},
		{"GET", "/v1/runs", false, []int{404, 405}},
		{"GET", "/v1/runs", true, []int{404, 405}},
		{"POST", "/v1/runs", false, []int{404, 405}},
		{"POST", "/v1/runs", true, []int{404, 405}},
		{"GET", "/v1/playbooks", true, []int{404, 405}},
		{"GET", "/v1/runs/" + r.ID, false, []int{401}},
		{"GET", "/v1/runs/" + r.ID, true, []int{404}}, // started locally: not the hub's to see
		{"GET", "/v1/runs/" + r.ID + "/logs", true, []int{404, 405}},
		{"GET", "/v1/runs/" + r.ID + "/follow", true, []int{404, 405}},
		{"POST", "/v1/runs/" + r.ID + "/cancel", true, []int{404, 405}},
		{"GET", "/debug/pprof/", false, []int{404}},
		{"GET", "/", false, []int{404}},
	}
	ok := 0
	for _, tt := range tests {
		code, body, err := a.hubDo(t, hubRequest{method: tt.method, path: tt.path, unsigned: !tt.signed})
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		if !slices.Contains(tt.ok, code) {
			t.Errorf("%s %s (signed %v): HTTP %d %s; want one of %v", tt.method, tt.path, tt.signed, code, clipLine(string(body)), tt.ok)
			continue
		}
		ok++
	}
	fi, err := os.Stat(a.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("socket %s mode %v; want a socket without world access (0660)", a.socket, fi.Mode())
	}
	record(t, "TCP routes answered as allowed / socket mode", "%d/%d / %v", ok, len(tests), fi.Mode().Perm())
}
