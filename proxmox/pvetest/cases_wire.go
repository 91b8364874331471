package pvetest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// wireCases check what a host does on the wire, seen through
// World.Endpoint with a hand-written HTTP client: paging parameters the
// Client does not send, failed authentication, request bodies PVE refuses,
// and the read endpoints third-party clients call. Every rule names the
// PVE source it was read from.
var wireCases = []testCase{
	{
		name: "task-log-limit-0",
		rule: "GET .../tasks/{upid}/log?limit=0 returns the whole log, total being its line count " +
			"(pve-common src/PVE/Tools.pm dump_logfile_by_filehandle: read_until_end when limit is 0, since commit f0c1b0c); " +
			"without limit PVE reads 50 lines (pve-manager PVE/API2/Tasks.pm read_task_log)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the task of case snapshot")
			}
			want, err := s.c.TaskLogTail(s.ctx, s.snapTask, 100_000)
			if err != nil {
				t.Fatalf("TaskLogTail: %v", err)
			}
			r := s.raw(t).ok("GET", "/nodes/"+s.node+"/tasks/"+s.snapTask.String()+"/log", url.Values{"limit": {"0"}})
			lines := r.list()
			if len(lines) != len(want) || fmt.Sprint(r.env["total"]) != fmt.Sprint(len(want)) {
				t.Fatalf("log?limit=0 = %d lines, total %v; want all %d", len(lines), r.env["total"], len(want))
			}
			for i, l := range lines {
				if l["t"] != want[i] || fmt.Sprint(l["n"]) != fmt.Sprint(i+1) {
					t.Errorf("line %d = %v; want n %d, t %q", i, l, i+1, want[i])
				}
			}
		},
	},
	{
		name: "task-log-no-content",
		rule: "the log of a running task that has written nothing yet reads [{\"n\":1,\"t\":\"no content\"}] with total 1 " +
			"(pve-common src/PVE/Tools.pm dump_logfile_by_filehandle, the ExtJS guaranteeRange hack)",
		hooks: []string{"Endpoint", "HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			upid, err := s.c.Start(s.ctx, s.w.Stopped)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer func() {
				if err := s.c.StopTask(s.ctx, upid); err != nil {
					t.Errorf("StopTask: %v", err)
				}
				_, _ = s.wait(upid)
			}()
			r := s.raw(t).ok("GET", "/nodes/"+s.node+"/tasks/"+upid.String()+"/log", nil)
			if got := string(r.raw); got != `{"data":[{"n":1,"t":"no content"}],"total":1}` {
				t.Errorf("log of a running vzstart = %s; want PVE's no-content line", got)
			}
		},
	},
	{
		name: "auth-401",
		rule: "a failed authentication is a 401 whose reason phrase is the cause and whose body is empty (pve-http-server " +
			"src/PVE/APIServer/AnyEvent.pm: HTTP::Response with the error, no content): \"No ticket\" without credentials " +
			"(pve-manager PVE/HTTPServer.pm auth_handler), \"invalid token value!\" for a wrong secret and \"no such token " +
			"'ID' for user 'USER@REALM'\" for an unknown token (pve-access-control src/PVE/AccessControl.pm verify_token); " +
			"PVE 9.1.5+ says \"Authentication failed!\" for both (pve-manager 26c10a2e); pveproxy answers after " +
			"World.AuthFailureDelay (3 s on a real host)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			id, _, _ := strings.Cut(a.e.Token, "=")
			user, _, _ := strings.Cut(id, "!")
			for _, tc := range []struct {
				what, auth string
				reasons    []string
			}{
				{"no credentials", "", []string{"No ticket"}},
				{"a wrong secret", "PVEAPIToken=" + id + "=felhom-conformance-wrong-secret", []string{"invalid token value!", "Authentication failed!"}},
				{"an unknown token", "PVEAPIToken=" + user + "!felhomnosuchtoken=x", []string{
					fmt.Sprintf("no such token 'felhomnosuchtoken' for user '%s'", user), "Authentication failed!"}},
			} {
				r, err := a.send("GET", "/version", "", nil, tc.auth)
				if err != nil {
					t.Fatalf("GET /version with %s: %v", tc.what, err)
				}
				if r.status != http.StatusUnauthorized || !slices.Contains(tc.reasons, r.reason) {
					t.Errorf("GET /version with %s = %d %q; want 401 with reason %q", tc.what, r.status, r.reason, tc.reasons[0])
				}
				if len(r.raw) != 0 {
					t.Errorf("GET /version with %s: body %q; want none (no formatter runs for a failed authentication)", tc.what, r.raw)
				}
				if d := s.w.AuthFailureDelay; d > 0 && r.took < d {
					t.Errorf("GET /version with %s answered after %v; pveproxy waits %v before a 401", tc.what, r.took, d)
				}
			}
		},
	},
	{
		name: "body-text-plain",
		rule: "a POST or PUT body that is neither form-encoded nor JSON is refused before any handler runs: 506 " +
			"\"upload 'Content-Type 'text/plain' not implemented\" (pve-http-server src/PVE/APIServer/AnyEvent.pm " +
			"authenticate_and_handle_request), no JSON (the message as a plain body since libpve-http-server-perl 5.2.0)",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			path := fmt.Sprintf("/nodes/%s/lxc/%d/snapshot", s.node, s.w.Stopped)
			name := s.snapName + "tp"
			r, err := a.send("POST", path, "text/plain", []byte("snapname="+name), "PVEAPIToken="+a.e.Token)
			if err != nil {
				t.Fatalf("POST %s as text/plain: %v", path, err)
			}
			want := "upload 'Content-Type 'text/plain' not implemented"
			if r.status != 506 || r.reason != want {
				t.Errorf("POST as text/plain = %d %q %q; want 506 %q", r.status, r.reason, r.raw, want)
			}
			if body := string(r.raw); body != "" && body != want {
				t.Errorf("POST as text/plain: body %q; want none or the message", body)
			}
			if strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("POST as text/plain answered Content-Type %q; pveproxy's own errors are not JSON", r.header.Get("Content-Type"))
			}
			snaps := a.ok("GET", path, nil).list()
			for _, sn := range snaps {
				if sn["name"] == name {
					t.Errorf("the text/plain POST made snapshot %s", name)
				}
			}
		},
	},
	{
		name: "body-repeated-key",
		rule: "a form key sent twice arrives as a list (pve-http-server decode_urlencoded) and fails a scalar parameter's " +
			"type check: 400, errors {\"description\": \"type check ('string') failed - got ARRAY\"} (pve-common " +
			"src/PVE/JSONSchema.pm check_type); nothing changes",
		hooks: []string{"Endpoint"},
		run: func(t *testing.T, s *suite) {
			a := s.raw(t)
			path := fmt.Sprintf("/nodes/%s/lxc/%d/config", s.node, s.w.Stopped)
			r := a.fails("PUT", path, url.Values{"description": {"one", "two"}}, 400, "Parameter verification failed.")
			if errs, _ := r.env["errors"].(map[string]any); errs["description"] != "type check ('string') failed - got ARRAY" {
				t.Errorf("errors = %v; want description's ARRAY type check", r.env["errors"])
			}
			if d, _ := a.ok("GET", path, nil).object()["description"].(string); strings.Contains(d, "one") || strings.Contains(d, "two") {
				t.Errorf("description after the refused PUT = %q", d)
			}
		},
	},
}

// raw is a hand-written client of World.Endpoint for the running case.
func (s *suite) raw(t *testing.T) *rawAPI {
	return &rawAPI{t: t, e: *s.w.Endpoint}
}
