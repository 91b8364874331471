package pvetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Endpoint is how a client that is not proxmox.Client reaches a host.
type Endpoint struct {
	URL   string // "https://HOST:PORT"; the API is below /api2/json
	Node  string // the node name
	Token string // USER@REALM!TOKENID=SECRET
	// HTTPClient trusts the host's certificate; nil means
	// http.DefaultClient (the system roots).
	HTTPClient *http.Client
	// CAFile is a PEM file the host's certificate verifies against, for
	// Proxmoxer (Python's requests cannot pin a fingerprint); "" makes
	// Proxmoxer skip.
	CAFile string
}

// upidText is PVE's UPID decoder pattern (pve-common PVE::UPID).
var upidText = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s]+):([^:\s]*):([^:\s]+):$`)

// ThirdParty drives the host the way generic clients (proxmoxer, the
// Terraform providers, curl scripts) do: form-encoded bodies for POST and
// PUT, query strings for GET and DELETE, an "Authorization: PVEAPIToken="
// header, JSON envelopes read by hand, and every task polled through
// GET /nodes/{node}/tasks/{upid}/status until it says "stopped". The flow:
// snapshot, rollback and delete a snapshot of w.Stopped; change its
// description (PUT returns null); back it up; restore the archive into
// w.Scratch; and be refused, with PVE's reason phrase, when starting
// w.Running or sending an unknown parameter, and with 401 for a wrong
// secret. It undoes what it changed.
func ThirdParty(t *testing.T, e Endpoint, w World) {
	t.Helper()
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
	api := &rawAPI{t: t, e: e}
	node := "/nodes/" + e.Node
	stopped := fmt.Sprintf("%s/lxc/%d", node, w.Stopped)
	snap := snapshotName() + "raw"

	t.Cleanup(func() { api.undo(w, snap) })

	// A wrong secret is a 401 with no JSON to read. (The reason phrase is
	// not compared: hosts word it differently.)
	if id, _, ok := strings.Cut(e.Token, "="); ok {
		wrong := &rawAPI{t: t, e: e}
		wrong.e.Token = id + "=felhom-conformance-wrong-secret"
		if r, err := wrong.do("GET", "/version", nil); err != nil || r.status != http.StatusUnauthorized {
			t.Errorf("GET /version with a wrong secret = %+v, %v; want 401", r, err)
		}
	}

	v := api.ok("GET", "/version", nil)
	if s, _ := v.object()["version"].(string); s == "" {
		t.Errorf("GET /version = %s; want data.version", v.raw)
	}
	next := api.ok("GET", "/cluster/nextid", nil)
	if s, ok := next.data.(string); !ok {
		t.Errorf("GET /cluster/nextid = %s; PVE sends the id as a JSON string", next.raw)
	} else if n, err := strconv.Atoi(s); err != nil || n < 100 {
		t.Errorf("GET /cluster/nextid = %q; want a guest id", s)
	}

	api.task("POST", stopped+"/snapshot", url.Values{"snapname": {snap}, "description": {"raw client"}}, "OK")
	list := api.ok("GET", stopped+"/snapshot", nil).list()
	names := make([]string, 0, len(list))
	for _, s := range list {
		n, _ := s["name"].(string)
		names = append(names, n)
	}
	if !slices.Contains(names, snap) || !slices.Contains(names, "current") {
		t.Errorf("snapshot list %q; want %s and PVE's pseudo-entry current", names, snap)
	}
	api.task("POST", stopped+"/snapshot/"+snap+"/rollback", nil, "OK")
	api.task("DELETE", stopped+"/snapshot/"+snap, nil, "OK")

	before, _ := api.ok("GET", stopped+"/config", nil).object()["description"].(string)
	put := api.ok("PUT", stopped+"/config", url.Values{"description": {"raw client"}})
	if put.data != nil {
		t.Errorf("PUT %s/config = %s; PVE applies an LXC config synchronously and answers null", stopped, put.raw)
	}
	if d, _ := api.ok("GET", stopped+"/config", nil).object()["description"].(string); d != "raw client\n" {
		t.Errorf("description read back = %q; want %q", d, "raw client\n")
	}
	if before == "" {
		api.ok("PUT", stopped+"/config", url.Values{"delete": {"description"}})
	} else {
		api.ok("PUT", stopped+"/config", url.Values{"description": {before}})
	}

	contentPath := node + "/storage/" + w.BackupStorage + "/content"
	byVMID := url.Values{"content": {"backup"}, "vmid": {strconv.Itoa(w.Stopped)}}
	had := api.volids(contentPath, byVMID)
	api.task("POST", node+"/vzdump", url.Values{
		"vmid": {strconv.Itoa(w.Stopped)}, "storage": {w.BackupStorage}, "mode": {"snapshot"}, "compress": {"zstd"}, "remove": {"0"},
	}, "OK")
	var archive string
	for _, id := range api.volids(contentPath, byVMID) {
		if !slices.Contains(had, id) {
			archive = id
		}
	}
	api.archive = archive
	if m := archiveName.FindStringSubmatch(archive); m == nil || m[1] != w.BackupStorage || m[2] != strconv.Itoa(w.Stopped) {
		t.Fatalf("new archive %q; want %s:backup/vzdump-lxc-%d-YYYY_MM_DD-HH_MM_SS.tar.zst", archive, w.BackupStorage, w.Stopped)
	}

	api.task("POST", node+"/lxc", url.Values{
		"vmid": {strconv.Itoa(w.Scratch)}, "ostemplate": {archive}, "restore": {"1"}, "storage": {w.GuestStorage},
	}, "OK")
	api.restored = true
	st := api.ok("GET", fmt.Sprintf("%s/lxc/%d/status/current", node, w.Scratch), nil).object()
	if st["status"] != "stopped" {
		t.Errorf("restored guest %d status = %v; want stopped", w.Scratch, st["status"])
	}

	api.fails("POST", fmt.Sprintf("%s/lxc/%d/status/start", node, w.Running), nil, 500,
		fmt.Sprintf("CT %d already running", w.Running))
	bad := api.fails("PUT", stopped+"/config", url.Values{"felhomnosuchkey": {"1"}}, 400, "Parameter verification failed.")
	if errs, _ := bad.env["errors"].(map[string]any); errs["felhomnosuchkey"] != "property is not defined in schema and the schema does not allow additional properties" {
		t.Errorf("400 errors = %v; want felhomnosuchkey's schema message", bad.env["errors"])
	}
}

// rawAPI is a minimal hand-written PVE client.
type rawAPI struct {
	t        *testing.T
	e        Endpoint
	archive  string // made by the flow, deleted by undo
	restored bool   // Scratch was restored by the flow
}

// rawResult is one answer: status, reason phrase and the decoded envelope.
type rawResult struct {
	status int
	reason string
	raw    []byte
	env    map[string]any
	data   any
	header http.Header
	took   time.Duration // from sending the request to the end of the headers
}

func (r *rawResult) object() map[string]any { m, _ := r.data.(map[string]any); return m }

func (r *rawResult) list() []map[string]any {
	items, _ := r.data.([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// do sends one request the way proxmoxer does.
func (a *rawAPI) do(method, path string, params url.Values) (*rawResult, error) {
	var body []byte
	if method == "POST" || method == "PUT" {
		body = []byte(params.Encode())
	} else if len(params) > 0 {
		path += "?" + params.Encode()
	}
	ct := ""
	if body != nil {
		ct = "application/x-www-form-urlencoded"
	}
	r, err := a.send(method, path, ct, body, "PVEAPIToken="+a.e.Token)
	if err != nil {
		return nil, err
	}
	if len(r.raw) > 0 {
		if r.env == nil {
			return nil, fmt.Errorf("body %q is not JSON", r.raw)
		}
		r.data = r.env["data"]
	}
	return r, nil
}

// send sends one request with a body of content type ct (none when ""),
// and auth as the Authorization header (none when ""). The envelope is
// decoded when the body is JSON; r.raw always holds the body.
func (a *rawAPI) send(method, path, ct string, body []byte, auth string) (*rawResult, error) {
	target := strings.TrimSuffix(a.e.URL, "/") + "/api2/json" + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Accept", "application/json")
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	hc := a.e.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &rawResult{status: resp.StatusCode, raw: raw, header: resp.Header, took: time.Since(start)}
	_, r.reason, _ = strings.Cut(resp.Status, " ")
	if json.Unmarshal(raw, &r.env) == nil && r.env != nil {
		r.data = r.env["data"]
	}
	return r, nil
}

// ok sends a request that must answer 200.
func (a *rawAPI) ok(method, path string, params url.Values) *rawResult {
	a.t.Helper()
	r, err := a.do(method, path, params)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != http.StatusOK {
		a.t.Fatalf("%s %s %v = %d %q %s; want 200", method, path, params, r.status, r.reason, r.raw)
	}
	return r
}

// fails sends a request PVE must refuse with status and msg as the
// reason phrase, and a body {"data": null, ...}.
func (a *rawAPI) fails(method, path string, params url.Values, status int, msg string) *rawResult {
	a.t.Helper()
	r, err := a.do(method, path, params)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.status != status || r.reason != msg {
		a.t.Errorf("%s %s = %d %q %s; want %d %q", method, path, r.status, r.reason, r.raw, status, msg)
	}
	if d, ok := r.env["data"]; !ok || d != nil {
		a.t.Errorf("%s %s: error body %s; want \"data\": null", method, path, r.raw)
	}
	return r
}

// task starts a task, polls its status until it stops and asserts its
// exit status.
func (a *rawAPI) task(method, path string, params url.Values, exit string) string {
	a.t.Helper()
	upid, _ := a.ok(method, path, params).data.(string)
	if !upidText.MatchString(upid) {
		a.t.Fatalf("%s %s answered %q; want a UPID", method, path, upid)
	}
	statusPath := "/nodes/" + a.e.Node + "/tasks/" + upid + "/status"
	delay := 5 * time.Millisecond
	for deadline := time.Now().Add(2 * time.Minute); ; {
		st := a.ok("GET", statusPath, nil).object()
		switch st["status"] {
		case "stopped":
			if st["exitstatus"] != exit {
				a.t.Fatalf("%s %s: task %s stopped with %v; want %q", method, path, upid, st["exitstatus"], exit)
			}
			if st["upid"] != upid {
				a.t.Errorf("task status upid = %v; want %s", st["upid"], upid)
			}
			return upid
		case "running":
			if _, has := st["exitstatus"]; has {
				a.t.Errorf("running task %s has an exitstatus: %v", upid, st)
			}
		default:
			a.t.Fatalf("task %s status = %v; want running or stopped", upid, st)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("task %s still running after 2 minutes", upid)
		}
		time.Sleep(delay)
		delay = min(delay*2, time.Second)
	}
}

// volids lists the volume ids of a content query.
func (a *rawAPI) volids(path string, q url.Values) []string {
	a.t.Helper()
	var out []string
	for _, v := range a.ok("GET", path, q).list() {
		if id, ok := v["volid"].(string); ok {
			out = append(out, id)
		}
	}
	return out
}

// undo removes what the flow made; failures are only logged.
func (a *rawAPI) undo(w World, snap string) {
	node := "/nodes/" + a.e.Node
	try := func(method, path string, params url.Values) {
		r, err := a.do(method, path, params)
		if err != nil || r.status != http.StatusOK {
			return
		}
		if upid, ok := r.data.(string); ok && upidText.MatchString(upid) {
			for range 200 {
				st, err := a.do("GET", node+"/tasks/"+upid+"/status", nil)
				if err != nil || st.object()["status"] != "running" {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	if r, err := a.do("GET", fmt.Sprintf("%s/lxc/%d/snapshot", node, w.Stopped), nil); err == nil {
		for _, s := range r.list() {
			if s["name"] == snap {
				try("DELETE", fmt.Sprintf("%s/lxc/%d/snapshot/%s", node, w.Stopped, snap), nil)
			}
		}
	}
	if a.restored {
		try("DELETE", fmt.Sprintf("%s/lxc/%d", node, w.Scratch), url.Values{"purge": {"1"}})
	}
	if a.archive != "" {
		try("DELETE", node+"/storage/"+w.BackupStorage+"/content/"+a.archive, nil)
	}
}
