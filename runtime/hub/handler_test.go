package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend answers triggers "backup" (two playbooks) and "fail", keeps
// trigger ids like the run store does, and knows one non-hub run.
type fakeBackend struct {
	mu      sync.Mutex
	seen    map[string][]RunRef // trigger id -> runs
	started int                 // runs started
	calls   int                 // StartTrigger calls
}

func (b *fakeBackend) StartTrigger(_ context.Context, keyID string, t Trigger) ([]RunRef, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if runs, ok := b.seen[t.ID]; ok {
		return runs, true, nil
	}
	switch t.Name {
	case "backup":
		if v, ok := t.Params["storage"]; ok && string(v) != `"usb"` {
			return nil, false, &ParamError{Playbook: "backup", Param: "storage", Msg: `must be one of "usb", "nas"`}
		}
	case "fail":
		return nil, false, errors.New("database is locked")
	case "blocked":
		return nil, false, ErrBlocked
	case "full":
		return nil, false, fmt.Errorf("%w: store: database or disk is full", ErrUnavailable)
	case "busy":
		return nil, false, &QueueFullError{Playbook: "provision", Max: 100}
	default:
		return nil, false, fmt.Errorf("trigger %s: %w", t.Name, ErrUnknownTrigger)
	}
	runs := []RunRef{{ID: fmt.Sprintf("r%d", b.started+1), Playbook: "backup"}, {ID: fmt.Sprintf("r%d", b.started+2), Playbook: "backup-offsite"}}
	b.started += 2
	if b.seen == nil {
		b.seen = map[string][]RunRef{}
	}
	b.seen[t.ID] = runs
	return runs, false, nil
}

func (b *fakeBackend) TriggeredRun(_ context.Context, id string) (RunStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tid, runs := range b.seen {
		for _, r := range runs {
			if r.ID == id {
				ended := testNow.Add(time.Minute)
				return RunStatus{ID: id, Playbook: r.Playbook, TriggerID: tid, Status: "succeeded",
					Created: testNow, Started: &testNow, Ended: &ended,
					Result: json.RawMessage(`{"backed_up":[100]}`), Log: []string{"INFO backed up vmid=100"}}, nil
			}
		}
	}
	return RunStatus{}, fmt.Errorf("run %q: %w", id, ErrUnknownRun)
}

func TestHandler(t *testing.T) {
	b := &fakeBackend{}
	var logged bytes.Buffer
	h := NewHandler(testVerifier(), b, slog.New(slog.NewTextHandler(&logged, nil)))

	// do sends a signed request (priv nil: unsigned) and returns status and body.
	do := func(priv bool, method, path, body string) (int, map[string]any) {
		t.Helper()
		var r *http.Request
		if priv {
			r = signedRequest(testPriv, testKeyID, method, path, []byte(body), testNow)
		} else {
			r = httptest.NewRequest(method, path, strings.NewReader(body))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil && w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, w.Body, err)
		}
		return w.Code, got
	}

	steps := []struct {
		name       string
		signed     bool
		method     string
		path, body string
		status     int
		want       string // substring of the JSON answer
		started    int    // runs started so far
	}{
		{"unsigned trigger", false, "POST", "/v1/triggers", goodBody, 401, `"error":"missing X-Felhom-Key header"`, 0},
		{"malformed trigger", true, "POST", "/v1/triggers", `{"id":"t-1"`, 400, "malformed JSON", 0},
		{"unknown field", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"backup","x":1}`, 400, `"field":"x"`, 0},
		{"refused parameter", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"backup","params":{"storage":"tape"}}`, 400,
			`"error":"parameter storage: must be one of \"usb\", \"nas\"","field":"params.storage"`, 0},
		{"unknown trigger", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"restore"}`, 404, `no playbook answers trigger \"restore\"`, 0},
		{"host blocked by the hub", true, "POST", "/v1/triggers", `{"id":"t-b","trigger":"blocked"}`, 403, `this host is blocked by the hub`, 0},
		{"internal failure", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"fail"}`, 500, `{"error":"internal error"}`, 0},
		{"store cannot write", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"full"}`, 503, `the agent cannot record runs now`, 0},
		{"queue full", true, "POST", "/v1/triggers", `{"id":"t-1","trigger":"busy"}`, 429, `playbook provision already has 100 runs queued (runs.queue_max)`, 0},
		{"new trigger", true, "POST", "/v1/triggers", goodBody, 202, `{"runs":[{"id":"r1","playbook":"backup"},{"id":"r2","playbook":"backup-offsite"}]}`, 2},
		{"repeated id", true, "POST", "/v1/triggers", goodBody, 200, `{"runs":[{"id":"r1","playbook":"backup"},{"id":"r2","playbook":"backup-offsite"}]}`, 2},
		{"run status", true, "GET", "/v1/runs/r2", "", 200, `"status":"succeeded","trigger_id":"t-1"`, 2},
		{"unsigned run status", false, "GET", "/v1/runs/r2", "", 401, "missing", 2},
		{"not a hub run", true, "GET", "/v1/runs/cli-7", "", 404, `{"error":"no such run"}`, 2},
		{"wrong method", true, "DELETE", "/v1/runs/r2", "", 405, "", 2},
	}
	for _, s := range steps {
		status, got := do(s.signed, s.method, s.path, s.body)
		js, _ := json.Marshal(got)
		if status != s.status || !strings.Contains(string(js), s.want) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %s", s.name, s.method, s.path, status, js, s.status, s.want)
		}
		if b.started != s.started {
			t.Errorf("%s: %d runs started; want %d", s.name, b.started, s.started)
		}
	}
	// Rejections by the verifier and the parser never reach the backend.
	if b.calls != 8 {
		t.Errorf("StartTrigger called %d times; want 8", b.calls)
	}
	log := logged.String()
	assertNoSecrets(t, "log", log)
	for _, want := range []string{"database is locked", "unsigned request", `msg="hub trigger"`, "repeated=true"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "tape") {
		t.Errorf("log shows a parameter value:\n%s", log)
	}
}

func TestHandlerOversizedBody(t *testing.T) {
	b := &fakeBackend{}
	h := NewHandler(testVerifier(), b, nil)
	body := `{"id":"big","trigger":"backup","params":{"pad":"` + strings.Repeat("x", DefaultMaxBody) + `"}}`
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedRequest(testPriv, testKeyID, "POST", "/v1/triggers", []byte(body), testNow))
	if w.Code != http.StatusRequestEntityTooLarge || b.calls != 0 {
		t.Errorf("oversized trigger = %d after %d backend calls; want 413 after none", w.Code, b.calls)
	}
}
