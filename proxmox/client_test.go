package proxmox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  proxmox.Config
		opts []proxmox.Option
		want string
	}{
		{"invalid config", proxmox.Config{Endpoint: "http://pve:8006", Token: testToken}, nil, "proxmox.endpoint"},
		{"missing node", proxmox.Config{Endpoint: "https://pve:8006", Token: testToken}, nil, "proxmox.node"},
		{"both client and transport", testConfig("https://pve:8006"),
			[]proxmox.Option{proxmox.WithHTTPClient(http.DefaultClient), proxmox.WithTransport(http.DefaultTransport)}, "cannot be combined"},
		{"zero backoff", testConfig("https://pve:8006"), []proxmox.Option{proxmox.WithRetryBackoff(0, time.Second)}, "backoff"},
		{"inverted backoff", testConfig("https://pve:8006"), []proxmox.Option{proxmox.WithRetryBackoff(2*time.Second, time.Second)}, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := proxmox.New(tt.cfg, tt.opts...)
			if err == nil || c != nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want an error containing %q", c, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestNode(t *testing.T) {
	c := newClientCfg(t, testConfig("https://pve:8006"))
	if c.Node() != testNode {
		t.Errorf("Node() = %q; want %q", c.Node(), testNode)
	}
}

// TestTarget: a client names its endpoint's host and its node, the same
// way however the endpoint is spelled, and differently for another host,
// port or node.
func TestTarget(t *testing.T) {
	for _, tt := range []struct {
		endpoint, node, want string
	}{
		{"https://pve:8006", testNode, "https://pve:8006 node " + testNode},
		{"https://PVE:8006/api2/json", testNode, "https://pve:8006 node " + testNode},
		{"https://pve", testNode, "https://pve:443 node " + testNode},
		{"https://[::1]:8006", "pve2", "https://[::1]:8006 node pve2"},
		{"https://10.0.0.2:8006", "pve1", "https://10.0.0.2:8006 node pve1"},
	} {
		cfg := testConfig(tt.endpoint)
		cfg.Node = tt.node
		if got := newClientCfg(t, cfg).Target(); got != tt.want {
			t.Errorf("Target() of %s node %s = %q; want %q", tt.endpoint, tt.node, got, tt.want)
		}
	}
}

// TestRequestShape checks what goes on the wire: the API base below the
// endpoint's host (its path ignored), the token header, reads as query
// parameters and mutations as a form body.
func TestRequestShape(t *testing.T) {
	var headers []http.Header
	f := newFake(t)
	record := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			headers = append(headers, r.Header.Clone())
			h(w, r)
		}
	}
	f.on("GET /nodes/node1/storage/local/content", record(serveFile(t, "responses/storage_content_list.pve7x.json")))
	f.on("POST /nodes/node1/lxc/101/snapshot", record(serveFile(t, "responses/lxc_snapshot_create.pve9x.json")))
	ts := startTLS(t, f)
	cfg := testConfig(ts.URL + "/some/ignored/path?x=1")
	cfg.Fingerprint = pinOf(ts)
	c := newClientCfg(t, cfg)

	if _, err := c.StorageContent(t.Context(), "local", "vztmpl", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(t.Context(), proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "before", Description: "a b&c=d"}); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v", calls)
	}
	wantAuth := "PVEAPIToken=felhom-agent@pve!agent=" + testSecret
	for i, h := range headers {
		if got := h.Get("Authorization"); got != wantAuth {
			t.Errorf("request %d: Authorization = %q; want %q", i, got, wantAuth)
		}
		if h.Get("Accept") != "application/json" || h.Get("User-Agent") != "felhom-agent" {
			t.Errorf("request %d: Accept %q, User-Agent %q", i, h.Get("Accept"), h.Get("User-Agent"))
		}
	}
	if get := calls[0]; get.Query.Get("content") != "vztmpl" || get.ContentType != "" {
		t.Errorf("GET = %+v; want query content=vztmpl and no body", get)
	}
	if post := calls[1]; post.Form.Get("description") != "a b&c=d" || len(post.Query) != 0 || post.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("POST = %+v; want the form body only", post)
	}
}

func TestWithHTTPClient(t *testing.T) {
	f := newFake(t).fixture("GET /version", "responses/version.pve9x_2.json")
	ts := startTLS(t, f)
	// No pin and no CA: the given client's transport decides trust.
	c, err := proxmox.New(testConfig(ts.URL), proxmox.WithHTTPClient(ts.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Version(t.Context()); err != nil || v.Release != "9.1" {
		t.Errorf("Version = %+v, %v", v, err)
	}
}

func TestObserverRequests(t *testing.T) {
	f := newFake(t).on("GET /version", sequence(serveError(503, "busy", nil), serveFile(t, "responses/version.pve7x_2.json")))
	c := fakeClient(t, f)
	rec := &recorder{}
	ctx := proxmox.WithObserver(t.Context(), rec)
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := rec.Requests()
	if len(reqs) != 2 {
		t.Fatalf("observed %+v; want two attempts", reqs)
	}
	first, second := reqs[0], reqs[1]
	if ae, ok := errors.AsType[*proxmox.APIError](first.Err); first.Method != "GET" || first.Path != "/version" || first.Attempt != 1 || first.Status != 503 || !ok || ae.Status != 503 {
		t.Errorf("first attempt = %+v", first)
	}
	if second.Attempt != 2 || second.Status != 200 || second.Err != nil {
		t.Errorf("second attempt = %+v", second)
	}
	// A nil observer further down removes it.
	if _, err := c.Version(proxmox.WithObserver(ctx, nil)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Requests()); n != 2 {
		t.Errorf("observer saw %d attempts after removal; want still 2", n)
	}
}

// TestSecretNeverLeaks drives successes and every kind of failure with a
// debug logger and checks that the token's secret appears in no log
// record and no error.
func TestSecretNeverLeaks(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake(t).
		fixture("GET /version", "responses/version.pve7x_2.json").
		on("GET /nodes/node1/status", serveError(403, "Permission check failed (/nodes/node1, Sys.Audit)", nil)).
		on("GET /nodes/node1/lxc", serveReason(401, "authentication failure", "")).
		on("POST /nodes/node1/lxc/101/status/start", dropConn).
		on("PUT /nodes/node1/lxc/101/config", serveError(400, "Parameter verification failed.", map[string]string{"foo": "property is not defined in schema"})).
		on(statusRoute, stopped("Permission check failed (/vms/101, VM.Backup)")).
		on(logRoute, pagedLog([]string{"TASK ERROR: Permission check failed (/vms/101, VM.Backup)"}, true))
	ts := startTLS(t, f)
	c := newClient(t, ts, proxmox.WithLogger(logger))
	ctx := t.Context()

	var errs []error
	_, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.NodeStatus(ctx)
	errs = append(errs, err)
	_, err = c.Guests(ctx)
	errs = append(errs, err)
	_, err = c.Start(ctx, proxmox.LXC, 101)
	errs = append(errs, err)
	_, err = c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"foo": "bar"}, nil)
	errs = append(errs, err)
	_, err = c.WaitTask(ctx, proxmox.MustParseUPID(upidWait), fastWait)
	errs = append(errs, err)
	badPin := testConfig(ts.URL)
	badPin.Fingerprint = strings.Repeat("00:", 31) + "00"
	_, err = newClientCfg(t, badPin, proxmox.WithLogger(logger)).Version(ctx)
	errs = append(errs, err)
	_, err = proxmox.New(proxmox.Config{Endpoint: "ftp://x", Token: testToken})
	errs = append(errs, err)

	for i, err := range errs {
		if err == nil {
			t.Errorf("step %d succeeded; want an error", i)
			continue
		}
		b, _ := json.Marshal(err)
		for _, s := range []string{err.Error(), string(b)} {
			if strings.Contains(s, testSecret) {
				t.Errorf("error %d shows the secret: %s", i, s)
			}
		}
	}
	if !strings.Contains(logs.String(), `"msg":"proxmox api request"`) || !strings.Contains(logs.String(), `"path":"/nodes/node1/status"`) {
		t.Fatalf("debug log lacks request records:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("debug log shows the secret:\n%s", logs.String())
	}
}

// TestLogRecords checks the fields of the per-request debug record.
func TestLogRecords(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFake(t).fixture("GET /cluster/nextid", "responses/cluster_nextid.pve7x.json")
	if _, err := fakeClient(t, f, proxmox.WithLogger(logger)).NextID(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", logs.String(), err)
	}
	for k, want := range map[string]any{"level": "DEBUG", "method": "GET", "path": "/cluster/nextid", "attempt": 1.0, "status": 200.0} {
		if rec[k] != want {
			t.Errorf("record[%q] = %v; want %v", k, rec[k], want)
		}
	}
	if _, ok := rec["took"]; !ok {
		t.Errorf("record lacks took: %v", rec)
	}
}

// TestRedirectNotFollowed checks that a redirect is reported, not
// followed: following it would turn a mutation into a GET elsewhere.
func TestRedirectNotFollowed(t *testing.T) {
	f := newFake(t).on("POST /nodes/node1/lxc/101/status/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api2/json/version", http.StatusFound)
	})
	_, err := fakeClient(t, f).Start(t.Context(), proxmox.LXC, 101)
	if ae, ok := errors.AsType[*proxmox.APIError](err); !ok || ae.Status != http.StatusFound {
		t.Errorf("error = %v; want an *APIError with status 302", err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("server saw %d requests; want 1", n)
	}
}
