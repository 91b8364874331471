package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// wantError asserts err is an *Error with status (and field, if not "").
func wantError(t *testing.T, what string, err error, status int, field, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s = %v (%T); want *Error %d", what, err, err, status)
	}
	if e.Status != status || e.Field != field || !strings.Contains(e.Message, msg) {
		t.Errorf("%s = %d %q field %q; want %d containing %q field %q", what, e.Status, e.Message, e.Field, status, msg, field)
	}
}

func TestRoutes(t *testing.T) {
	b := newFake()
	b.addRun("r-1", "backup", "running")
	b.addRun("r-2", "selftest", "running")
	b.log("r-1", "one", "two", "three")
	b.finish("r-2", "succeeded")
	c, _ := serve(t, b, nil)
	ctx := context.Background()

	t.Run("runs", func(t *testing.T) {
		runs, err := c.Runs(ctx, ListFilter{Playbook: "backup", Status: "running", Limit: 10})
		if err != nil || len(runs) != 1 || runs[0].ID != "r-1" {
			t.Fatalf("Runs(backup) = %+v, %v; want [r-1]", runs, err)
		}
		if want := (ListFilter{Playbook: "backup", Status: "running", Limit: 10}); b.filter != want {
			t.Errorf("backend got filter %+v; want %+v", b.filter, want)
		}
		runs, err = c.Runs(ctx, ListFilter{})
		if err != nil || len(runs) != 2 || runs[0].ID != "r-2" || runs[0].Ended == nil {
			t.Errorf("Runs() = %+v, %v; want [r-2 (ended), r-1]", runs, err)
		}
		_, err = c.Runs(ctx, ListFilter{Limit: 5000})
		wantError(t, "Runs(limit 5000)", err, 400, "limit", "limit: must be an integer from 1 to 1000")
	})
	t.Run("run", func(t *testing.T) {
		run, err := c.Run(ctx, "r-1")
		if err != nil || run.ID != "r-1" || run.Status != "running" || run.Finished() {
			t.Errorf("Run(r-1) = %+v, %v", run, err)
		}
		_, err = c.Run(ctx, "nope")
		wantError(t, "Run(nope)", err, 404, "", `run "nope": not found`)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
		}
		if _, err := c.Run(ctx, ""); err == nil {
			t.Error("Run(\"\") succeeded")
		}
		_, err = c.Run(ctx, "a/b c")
		wantError(t, "Run(a/b c)", err, 404, "", `run "a/b c": not found`)
	})
	t.Run("logs", func(t *testing.T) {
		lines, err := c.Logs(ctx, "r-1", 1, 1)
		if err != nil || len(lines) != 1 || lines[0].Seq != 2 || lines[0].Msg != "two" {
			t.Errorf("Logs(r-1, after 1, limit 1) = %+v, %v; want [2 two]", lines, err)
		}
		lines, err = c.Logs(ctx, "r-1", 0, 0)
		if err != nil || len(lines) != 3 {
			t.Errorf("Logs(r-1) = %d lines, %v; want 3", len(lines), err)
		}
		lines, err = c.Logs(ctx, "r-2", 0, 0)
		if err != nil || lines == nil || len(lines) != 0 {
			t.Errorf("Logs(r-2) = %#v, %v; want an empty list", lines, err)
		}
		_, err = c.Logs(ctx, "r-1", 0, 20000)
		wantError(t, "Logs(limit 20000)", err, 400, "limit", "from 1 to 10000")
		_, err = c.Logs(ctx, "r-1", -1, 0)
		wantError(t, "Logs(after -1)", err, 400, "after", "after")
		_, err = c.Logs(ctx, "nope", 0, 0)
		wantError(t, "Logs(nope)", err, 404, "", "not found")
	})
	t.Run("playbooks", func(t *testing.T) {
		pbs, err := c.Playbooks(ctx)
		if err != nil || len(pbs) != 2 {
			t.Fatalf("Playbooks() = %+v, %v", pbs, err)
		}
		if p := pbs[0]; p.Name != "backup" || p.NextRun == nil || !p.NextRun.Equal(t0) || string(p.Params[0].Default) != `"usb"` {
			t.Errorf("Playbooks()[0] = %+v", p)
		}
		if p := pbs[1]; p.LoadError == "" || p.Version != "" {
			t.Errorf("Playbooks()[1] = %+v; want a load error", p)
		}
	})
	t.Run("trigger", func(t *testing.T) {
		run, err := c.Trigger(ctx, TriggerRequest{Playbook: "backup", Params: map[string]json.RawMessage{"storage": json.RawMessage(`"nas"`)}})
		if err != nil || run.Source != "api" || run.Status != "queued" || string(run.Params) != `{"storage":"nas"}` {
			t.Errorf("Trigger(backup) = %+v, %v", run, err)
		}
		if got, err := c.Run(ctx, run.ID); err != nil || got.ID != run.ID {
			t.Errorf("Run(%s) after Trigger = %+v, %v", run.ID, got, err)
		}
		_, err = c.Trigger(ctx, TriggerRequest{Playbook: "backup", Params: map[string]json.RawMessage{"storage": json.RawMessage(`7`)}})
		wantError(t, "Trigger(storage=7)", err, 400, "params.storage", "params.storage: must be a string")
		_, err = c.Trigger(ctx, TriggerRequest{Playbook: "restore"})
		wantError(t, "Trigger(restore)", err, 404, "", `playbook "restore": not found`)
		_, err = c.Trigger(ctx, TriggerRequest{})
		wantError(t, "Trigger(no playbook)", err, 400, "playbook", "playbook: is required")
	})
	t.Run("cancel", func(t *testing.T) {
		run, err := c.Cancel(ctx, "r-1")
		if err != nil || run.Status != "cancelling" {
			t.Errorf("Cancel(r-1) = %+v, %v; want status cancelling", run, err)
		}
		_, err = c.Cancel(ctx, "r-2")
		wantError(t, "Cancel(finished r-2)", err, 409, "", "run r-2 already succeeded")
		if !errors.Is(err, ErrConflict) {
			t.Errorf("errors.Is(%v, ErrConflict) = false", err)
		}
		_, err = c.Cancel(ctx, "nope")
		wantError(t, "Cancel(nope)", err, 404, "", "not found")
	})
}

// rawCases are requests the typed Client cannot send, and their answers.
var rawCases = []struct {
	method, path, body string
	status             int
	field, msg         string
}{
	{"POST", "/v1/runs", `{"playbook":"backup","x":1}`, 400, "x", "unknown field"},
	{"POST", "/v1/runs", `{"playbook":"backup"}{}`, 400, "", "data after the object"},
	{"POST", "/v1/runs", `{"playbook":"backup"`, 400, "", "malformed JSON"},
	{"POST", "/v1/runs", `{"playbook":["backup"]}`, 400, "playbook", "must be a JSON string"},
	{"POST", "/v1/runs", `{"playbook":"backup","params":[1]}`, 400, "params", "must be a JSON object"},
	{"POST", "/v1/runs", `{"playbook":"backup","params":{"storage":"` + strings.Repeat("x", maxRequestBody) + `"}}`, 400, "", "over 1048576 bytes"},
	{"GET", "/v1/runs?limit=x", "", 400, "limit", "integer"},
	{"GET", "/v1/runs/r-1/follow?after=x", "", 400, "after", "integer"},
	{"DELETE", "/v1/runs/r-1", "", 405, "", ""},
	{"GET", "/v2/runs", "", 404, "", ""},
}

// TestRawRequests sends rawCases over the socket.
func TestRawRequests(t *testing.T) {
	b := newFake()
	_, path := serve(t, b, nil)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer hc.CloseIdleConnections()
	for _, c := range rawCases {
		req, _ := http.NewRequest(c.method, "http://x"+c.path, strings.NewReader(c.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		var e Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.status || e.Field != c.field || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s %s = %d %q field %q; want %d containing %q field %q", c.method, c.path, resp.StatusCode, e.Message, e.Field, c.status, c.msg, c.field)
		}
	}
}

func TestInternalErrorIsLoggedNotShown(t *testing.T) {
	b := newFake()
	b.failRuns = errors.New("database disk image is malformed")
	var logged bytes.Buffer
	c, _ := serve(t, b, NewHandler(b, slog.New(slog.NewTextHandler(&logged, nil))))
	_, err := c.Runs(context.Background(), ListFilter{})
	wantError(t, "Runs", err, 500, "", "internal error")
	if strings.Contains(err.Error(), "malformed") {
		t.Errorf("client sees the internal error: %v", err)
	}
	if !strings.Contains(logged.String(), "database disk image is malformed") {
		t.Errorf("log lacks the internal error:\n%s", logged.String())
	}
}

func TestClientErrorFromForeignBody(t *testing.T) {
	c, _ := serve(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream says no", http.StatusBadGateway)
	}))
	_, err := c.Playbooks(context.Background())
	wantError(t, "Playbooks", err, 502, "", "upstream says no")
}

// FuzzDecodeTrigger checks that any request body is either a
// TriggerRequest naming a playbook or a trigger, or a *BadRequestError, and that an
// accepted one survives a round trip.
func FuzzDecodeTrigger(f *testing.F) {
	for _, c := range rawCases {
		if c.method == "POST" && len(c.body) < 1000 {
			f.Add(c.body)
		}
	}
	f.Add(`{"playbook":"backup","params":{"storage":"usb","only":[1,2]}}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := decodeTrigger(strings.NewReader(body))
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) || bad.Msg == "" {
				t.Fatalf("decodeTrigger(%q) = %v; want a *BadRequestError", body, err)
			}
			return
		}
		if (req.Playbook == "") == (req.Trigger == "") {
			t.Fatalf("decodeTrigger(%q) accepted %+v; want exactly one of playbook and trigger", body, req)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", req, err)
		}
		back, err := decodeTrigger(bytes.NewReader(again))
		if err != nil || back.Playbook != req.Playbook || back.Trigger != req.Trigger || len(back.Params) != len(req.Params) {
			t.Fatalf("round trip of %q = %+v, %v; want %+v", body, back, err, req)
		}
	})
}
