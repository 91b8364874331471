package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
)

// requireServe skips t when the binary has no serve command (the daemon is
// written in parallel with this suite); the skip names why.
func requireServe(t testing.TB) {
	t.Helper()
	if serveMissing != "" {
		skip(t, "serve not available: %s", serveMissing)
	}
}

// agent is a `felhom-agent serve` process: its TCP listener (hub triggers,
// /metrics, /healthz), its unix socket (local API) and its state, which
// outlive the process so a test can kill it and start it again.
type agent struct {
	proc      *proc
	listen    string // host:port
	socket    string
	stateDir  string
	playbooks string
	env       []string
	args      []string
	starts    int
	tcp       *http.Client
	unix      *http.Client
}

// agentOpts configures startAgent.
type agentOpts struct {
	env       []string // proxmox configuration and extras (FELHOM_AGENT_*)
	playbooks string   // the playbooks directory; "" means servePlaybooks(t)
	args      []string // extra serve flags
	stateDir  string   // the state directory; "" means a fresh t.TempDir()
}

// startAgent starts serve on a free loopback port and a short socket path
// with a fresh state directory, and waits until it answers /healthz.
func startAgent(t testing.TB, o agentOpts) *agent {
	t.Helper()
	requireServe(t)
	sockDir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	a := &agent{
		listen:    freeAddr(t),
		socket:    filepath.Join(sockDir, "a.sock"),
		stateDir:  o.stateDir,
		playbooks: o.playbooks,
		env:       append([]string{"FELHOM_AGENT_HUB_KEYS=" + hubKeyID + "=" + hubPubB64(), "FELHOM_AGENT_LOG_FORMAT=json"}, o.env...),
		args:      o.args,
	}
	if a.playbooks == "" {
		a.playbooks = servePlaybooks(t)
	}
	if a.stateDir == "" {
		a.stateDir = t.TempDir()
	}
	a.tcp = &http.Client{Timeout: 30 * time.Second}
	a.unix = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", a.socket)
		},
	}}
	// Registered after t.TempDir, so it runs before the directory goes and
	// after the process cleanups (LIFO): the run store is scanned for
	// secrets like every other output.
	t.Cleanup(func() { scanDir(t, a.stateDir) })
	a.start(t, true)
	return a
}

// scanDir captures every file below dir (the run store and its WAL) for
// the secret scan.
func scanDir(t testing.TB, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			captureBytes(t, "state file "+filepath.Base(path), b)
		}
		return nil
	})
}

// start starts the serve process on the agent's listener, socket and
// state, optionally waiting for readiness.
func (a *agent) start(t testing.TB, wait bool) {
	t.Helper()
	a.starts++
	args := append([]string{"--playbooks", a.playbooks, "serve",
		"--listen", a.listen, "--socket", a.socket, "--state-dir", a.stateDir}, a.args...)
	a.proc = startProc(t, fmt.Sprintf("serve#%d", a.starts), a.env, args...)
	if wait {
		a.waitReady(t)
	}
}

// waitReady waits until /healthz answers (ok or degraded) and the socket
// accepts a request.
func (a *agent) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, 60*time.Second, "serve to answer /healthz and the socket", func() (bool, string) {
		if !a.proc.running() {
			t.Fatalf("serve exited (%v) before it was ready\nstderr: %s", a.proc.err, tail(a.proc.stderr.String(), 3000))
		}
		resp, err := a.tcp.Get("http://" + a.listen + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		resp, err = a.unix.Get("http://agent/v1/playbooks")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
}

// kill9 kills the serve process with SIGKILL.
func (a *agent) kill9(t testing.TB) { t.Helper(); a.proc.kill9(t) }

// stop sends SIGTERM and waits for a graceful exit, returning the exit code.
func (a *agent) stop(t testing.TB) int {
	t.Helper()
	if err := a.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	return a.proc.wait(t, 2*time.Minute)
}

// restart starts a new serve process on the same state and waits for it.
func (a *agent) restart(t testing.TB) {
	t.Helper()
	a.unix.CloseIdleConnections()
	a.tcp.CloseIdleConnections()
	a.start(t, true)
}

// freeAddr returns a loopback address with a port nothing listens on,
// below the kernel's ephemeral range: an agent restarted on the address
// (after a kill -9) binds it again, and a port of that range may meanwhile
// have become some outgoing connection's own ("bind: address already in
// use"), which a port below it never does. No port is handed out twice in
// one test process, so parallel tests and an agent down between a kill
// and its restart never share one. Where the range starts too low to
// leave room (an ip_local_port_range from 1024, say), any free port, and
// the restart's risk is back.
func freeAddr(t testing.TB) string {
	t.Helper()
	const lowest = 10000
	if first := ephemeralFirst(); first > lowest+1000 {
		givenPorts.Lock()
		defer givenPorts.Unlock()
		for range 100 {
			port := lowest + rand.IntN(first-lowest)
			if givenPorts.m[port] {
				continue
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			if ln, err := net.Listen("tcp", addr); err == nil {
				ln.Close()
				givenPorts.m[port] = true
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// givenPorts are the ports freeAddr has handed out in this process.
var givenPorts = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// ephemeralFirst is the first port the kernel gives outgoing connections
// (net.ipv4.ip_local_port_range), or 0 when it cannot be read.
func ephemeralFirst() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return 0
	}
	return first
}

// servePlaybooks makes a playbooks directory for serve: the shipped
// self-test (no schedule, so no timer fires during a test) with the
// shipped lib/ it loads, and the suite's own playbooks from testdata/serve.
func servePlaybooks(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "serve"))); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(playbooksDir, "selftest.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "selftest.star"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "lib"), os.DirFS(filepath.Join(playbooksDir, "lib"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --- hub endpoints (TCP) ------------------------------------------------

// hubRequest is one request to the hub endpoints; the zero values sign it
// properly now.
type hubRequest struct {
	method, path string
	body         []byte
	header       http.Header // replaces the signature headers when set
	unsigned     bool
}

// hubDo sends r to the TCP listener and returns the status and body
// (captured for the secret scan).
func (a *agent) hubDo(t testing.TB, r hubRequest) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(r.method, "http://"+a.listen+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case r.header != nil:
		for k, v := range r.header {
			req.Header[k] = v
		}
	case !r.unsigned:
		for k, v := range hub.Sign(hubPriv, hubKeyID, r.method, r.path, r.body, time.Now()) {
			req.Header[k] = v
		}
	}
	resp, err := a.tcp.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	captureBytes(t, "hub answer "+r.method+" "+r.path, b)
	return resp.StatusCode, b, err
}

// triggerBody is the JSON of a hub trigger.
func triggerBody(t testing.TB, id, name string, params map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"id": id, "trigger": name, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// triggerAnswer is the body of an accepted trigger.
type triggerAnswer struct {
	Runs  []hub.RunRef `json:"runs"`
	Error string       `json:"error"`
	Field string       `json:"field"`
}

// trigger posts a signed trigger and decodes the answer.
func (a *agent) trigger(t testing.TB, id, name string, params map[string]any) (int, triggerAnswer) {
	t.Helper()
	code, b, err := a.hubDo(t, hubRequest{method: "POST", path: "/v1/triggers", body: triggerBody(t, id, name, params)})
	if err != nil {
		t.Fatalf("trigger %s: %v", id, err)
	}
	var ans triggerAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("trigger %s: HTTP %d, body %q: %v", id, code, b, err)
	}
	return code, ans
}

// acceptedRun posts a signed trigger expected to start exactly one run
// and returns its id. It never calls t.Fatal, so load senders running in
// their own goroutines can use it.
func (a *agent) acceptedRun(t testing.TB, id, name string, params map[string]any) (string, error) {
	code, b, err := a.hubDo(t, hubRequest{method: "POST", path: "/v1/triggers", body: triggerBody(t, id, name, params)})
	var ans triggerAnswer
	if err != nil || code != http.StatusAccepted || json.Unmarshal(b, &ans) != nil || len(ans.Runs) != 1 {
		return "", fmt.Errorf("HTTP %d %s %v", code, b, err)
	}
	return ans.Runs[0].ID, nil
}

// hubRun asks GET /v1/runs/{id}, signed.
func (a *agent) hubRun(t testing.TB, id string) (int, hub.RunStatus) {
	t.Helper()
	code, b, err := a.hubDo(t, hubRequest{method: "GET", path: "/v1/runs/" + url.PathEscape(id)})
	if err != nil {
		t.Fatalf("GET /v1/runs/%s: %v", id, err)
	}
	var st hub.RunStatus
	if code == http.StatusOK {
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("GET /v1/runs/%s: %v", id, err)
		}
	}
	return code, st
}

// healthz returns /healthz's status and body.
func (a *agent) healthz(t testing.TB) (int, string) {
	t.Helper()
	resp, err := a.tcp.Get("http://" + a.listen + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	captureBytes(t, "healthz", b)
	return resp.StatusCode, string(b)
}

// metrics returns /metrics.
func (a *agent) metrics(t testing.TB) string {
	t.Helper()
	resp, err := a.tcp.Get("http://" + a.listen + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	captureBytes(t, "metrics", b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	return string(b)
}

// metricValue returns the value of the sample of metric name whose labels
// include every one of labels (`playbook="burst"`), from Prometheus text.
func metricValue(t testing.TB, text, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	t.Fatalf("no sample of %s with %v in /metrics", name, labels)
	return 0
}

// --- local API (unix socket) -------------------------------------------

// local sends a request to the local API and returns status and body
// (captured).
func (a *agent) local(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://agent"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.unix.Do(req)
	if err != nil {
		t.Fatalf("%s %s on the socket: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	captureBytes(t, "local API "+method+" "+path, b)
	return resp.StatusCode, b
}

// runs lists up to 1000 runs, newest first.
func (a *agent) runs(t testing.TB) []api.Run {
	t.Helper()
	code, b := a.local(t, "GET", "/v1/runs?limit=1000", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/runs: HTTP %d %s", code, b)
	}
	var out struct {
		Runs []api.Run `json:"runs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Runs
}

// run returns one run.
func (a *agent) run(t testing.TB, id string) api.Run {
	t.Helper()
	code, b := a.local(t, "GET", "/v1/runs/"+url.PathEscape(id), nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/runs/%s: HTTP %d %s", id, code, b)
	}
	var r api.Run
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// startRun starts a run through the local API.
func (a *agent) startRun(t testing.TB, playbook string, params map[string]any) api.Run {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range params {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	body, _ := json.Marshal(api.TriggerRequest{Playbook: playbook, Params: raw})
	code, b := a.local(t, "POST", "/v1/runs", body)
	if code != http.StatusAccepted {
		t.Fatalf("POST /v1/runs %s: HTTP %d %s", playbook, code, b)
	}
	var r api.Run
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRun polls run id until cond holds.
func (a *agent) waitRun(t testing.TB, id string, timeout time.Duration, what string, cond func(api.Run) bool) api.Run {
	t.Helper()
	var last api.Run
	eventually(t, timeout, "run "+id+" "+what, func() (bool, string) {
		last = a.run(t, id)
		return cond(last), fmt.Sprintf("status %s, %d tasks, error %q", last.Status, len(last.Tasks), last.Error)
	})
	return last
}

// finished is the condition of a run that has ended.
func finished(r api.Run) bool { return r.Ended != nil }

// vmHWM reads the peak resident set size of the process (VmHWM, kB).
func vmHWM(t testing.TB, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("read /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
