package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// testAgent is an Agent serving in the background for one test, with its
// local API client and a channel of the changes its reloads applied.
type testAgent struct {
	*Agent
	t       testing.TB
	dir     string // playbooks root
	state   string // state directory
	sig     *enginetest.Signal
	reloads chan engine.Change
	client  *api.Client
	cancel  context.CancelFunc
	done    chan error
}

// agentPlaybook is a playbook file whose entry function runs body, an
// indented block; decl holds extra keyword arguments of playbook().
func agentPlaybook(name, body, decl string) string {
	if decl != "" {
		decl = ", " + decl
	}
	return fmt.Sprintf("def run(ctx):\n%s\n\nplaybook(name = %q, run = run%s)\n", body, name, decl)
}

// startAgent writes files as the playbooks root and serves an agent on
// them with a TCP listener on a free loopback port and a local API socket;
// mod adjusts the configuration first. The agent stops at the end of the
// test (or earlier with stop). before, if any, sees the agent before it
// runs (to set hooks).
func startAgent(t testing.TB, files map[string]string, mod func(*Config), before ...func(*Agent)) *testAgent {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "fa") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ta := &testAgent{t: t, dir: enginetest.WriteTree(t, files), state: t.TempDir(), sig: enginetest.NewSignal(),
		reloads: make(chan engine.Change, 100), done: make(chan error, 1)}
	cfg := Config{
		PlaybooksDir:   ta.dir,
		StateDir:       ta.state,
		Listen:         "127.0.0.1:0",
		Socket:         filepath.Join(sockDir, "s"),
		Loader:         engine.LoaderOptions{Tables: enginetest.Tables(ta.sig), Logger: enginetest.Logger()},
		Logger:         enginetest.Logger(),
		Debounce:       20 * time.Millisecond,
		HealthInterval: time.Hour,
		// The test world's guests 101 and 9999 are the fixtures' self-test
		// guests (snapshot, rollback, delete): scratch, as a host declares
		// its self-test guest. The gate's own tests (safety_test.go) use
		// guests that are not.
		Safety: SafetyConfig{ScratchVMIDs: []int{101, 9999}},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ta.Agent = a
	a.hooks.reloaded = func(ch engine.Change) { ta.reloads <- ch }
	for _, f := range before {
		f(a)
	}
	if cfg.Socket != "" {
		ta.client = api.NewClient(cfg.Socket)
		t.Cleanup(func() { ta.client.Close() })
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { ta.done <- a.Run(ctx) }()
	ta.waitReload(func(engine.Change) bool { return true }) // the initial load
	t.Cleanup(func() { ta.stop() })
	return ta
}

// stop shuts the agent down and returns Run's error.
func (ta *testAgent) stop() error {
	ta.cancel()
	err, ok := <-ta.done
	if ok {
		close(ta.done)
	}
	return err
}

// waitReload returns the first applied change that pred accepts. The
// deadline only keeps a broken watcher from hanging the test run.
func (ta *testAgent) waitReload(pred func(engine.Change) bool) engine.Change {
	ta.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ch := <-ta.reloads:
			if pred(ch) {
				return ch
			}
		case <-timeout:
			ta.t.Fatal("no matching reload")
			return engine.Change{}
		}
	}
}

// start starts a run through the local API.
func (ta *testAgent) start(playbook string, params map[string]any) api.Run {
	ta.t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range params {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	run, err := ta.client.Trigger(context.Background(), api.TriggerRequest{Playbook: playbook, Params: raw})
	if err != nil {
		ta.t.Fatalf("starting %s: %v", playbook, err)
	}
	return run
}

// wait follows run id to its end through the local API and returns the
// finished run with its log.
func (ta *testAgent) wait(id string) (api.Run, []api.LogLine) {
	ta.t.Helper()
	var lines []api.LogLine
	run, err := ta.client.Follow(context.Background(), id, func(l api.LogLine) error {
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		ta.t.Fatalf("following %s: %v", id, err)
	}
	return run, lines
}

// get is an HTTP GET on the TCP listener.
func (ta *testAgent) get(path string) (int, string) {
	ta.t.Helper()
	resp, err := http.Get("http://" + ta.Addr().String() + path)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// openStore opens the agent's run store after the agent has stopped.
func openStore(t testing.TB, state string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(state, StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func msgs(lines []api.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Msg
	}
	return out
}

func TestAgentLocalAPIRoundTrip(t *testing.T) {
	ta := startAgent(t, map[string]string{
		"hello.star": agentPlaybook("hello", `    log.info("hello", n = ctx.params.n, token = ctx.params.token)
    return {"n": ctx.params.n}`,
			`doc = "Says hello.", params = {"n": param.int(default = 1), "token": param.secret(), "mode": param.enum(["a", "b"], default = "a")}, schedule = "TZ=UTC 0 3 * * *", triggers = ["greet"]`),
		"broken.star": "def run(ctx)\n",
		"fails.star":  agentPlaybook("fails", `    fail("no luck")`, ""),
	}, nil)
	ctx := context.Background()

	run := ta.start("hello", map[string]any{"n": 5, "token": "s3cret-value"})
	if run.Source != "api" || run.Status != "queued" || run.Playbook != "hello" {
		t.Errorf("Start = %+v; want a queued api run of hello", run)
	}
	done, lines := ta.wait(run.ID)
	if done.Status != "succeeded" || string(done.Result) != `{"n":5}` || done.Started == nil || done.Ended == nil {
		t.Errorf("finished run = %+v; want succeeded with result {\"n\":5}", done)
	}
	if strings.Contains(string(done.Params), "s3cret") || !strings.Contains(string(done.Params), engine.Redacted) {
		t.Errorf("params %s: the secret must be recorded redacted", done.Params)
	}
	if got := msgs(lines); !slices.Contains(got, "hello") || got[len(got)-1] != "run finished" {
		t.Errorf("log = %q; want the playbook's line and the engine's last line", got)
	}
	for _, l := range lines {
		if l.Msg == "hello" && string(l.Attrs) != `{"n":5,"token":"[redacted]"}` {
			// What the playbook logs of its secret is scrubbed (issue 12),
			// and the run/playbook tags of the agent's log are not repeated.
			t.Errorf("hello line attrs = %s", l.Attrs)
		}
	}

	failedRun := ta.start("fails", nil)
	if done, _ := ta.wait(failedRun.ID); done.Status != "failed" || !strings.Contains(done.Error, "fails.star:2:") || done.ErrorKind != engine.KindError {
		t.Errorf("failing run = %+v; want failed at fails.star:2 with kind error", done)
	}

	runs, err := ta.client.Runs(ctx, api.ListFilter{Playbook: "hello"})
	if err != nil || len(runs) != 1 || runs[0].ID != run.ID {
		t.Errorf("Runs(hello) = %v, %v; want just %s", runs, err, run.ID)
	}
	if runs, err := ta.client.Runs(ctx, api.ListFilter{Status: "failed"}); err != nil || len(runs) != 1 || runs[0].ID != failedRun.ID {
		t.Errorf("Runs(failed) = %v, %v", runs, err)
	}
	if _, err := ta.client.Runs(ctx, api.ListFilter{Status: "exploded"}); err == nil || !strings.Contains(err.Error(), "status") {
		t.Errorf("Runs(status=exploded) err = %v; want a 400 naming status", err)
	}
	if _, err := ta.client.Run(ctx, "r-nope"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Run(unknown) err = %v; want not found", err)
	}
	if _, err := ta.client.Cancel(ctx, run.ID); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Cancel(finished) err = %v; want conflict", err)
	}

	pbs, err := ta.client.Playbooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pbs {
		names = append(names, p.Name)
		switch p.Name {
		case "hello":
			if p.Version == "" || p.Schedule != "TZ=UTC 0 3 * * *" || p.NextRun == nil || !slices.Equal(p.Triggers, []string{"greet"}) ||
				p.Doc != "Says hello." || len(p.Params) != 3 || p.Params[0].Type != "enum(a|b)" || string(p.Params[0].Default) != `"a"` ||
				p.Params[2].Name != "token" || p.Params[2].Default != nil {
				t.Errorf("hello = %+v", p)
			}
			if p.NextRun != nil && (p.NextRun.Hour() != 3 || p.NextRun.Minute() != 0 || !p.NextRun.After(time.Now())) {
				t.Errorf("hello next run %v; want the next 03:00 UTC", p.NextRun)
			}
		case "broken":
			if p.Version != "" || !strings.Contains(p.LoadError, "broken.star:2:1:") {
				t.Errorf("broken = %+v; want no version and a located load error", p)
			}
		}
	}
	if !slices.Equal(names, []string{"broken", "fails", "hello"}) {
		t.Errorf("playbooks = %v", names)
	}

	// Refusals name the field or parameter and start nothing.
	for _, tc := range []struct {
		req   api.TriggerRequest
		field string
		is    error
	}{
		{api.TriggerRequest{Playbook: "nope"}, "", api.ErrNotFound},
		{api.TriggerRequest{Playbook: "hello", Params: map[string]json.RawMessage{"n": json.RawMessage(`"five"`), "token": json.RawMessage(`"x"`)}}, "params.n", nil},
		{api.TriggerRequest{Playbook: "hello", Params: map[string]json.RawMessage{"token": json.RawMessage(`17`)}}, "params.token", nil},
		{api.TriggerRequest{Playbook: "hello"}, "params.token", nil},
		{api.TriggerRequest{Playbook: "hello", Params: map[string]json.RawMessage{"token": json.RawMessage(`"x"`), "zzz": json.RawMessage(`1`)}}, "params.zzz", nil},
	} {
		_, err := ta.client.Trigger(ctx, tc.req)
		var ae *api.Error
		switch {
		case !errors.As(err, &ae):
			t.Errorf("Trigger(%+v) err = %v; want an API error", tc.req, err)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("Trigger(%+v) err = %v; want %v", tc.req, err, tc.is)
		case tc.is == nil && (ae.Status != 400 || ae.Field != tc.field):
			t.Errorf("Trigger(%+v) = %d field %q (%v); want 400 field %q", tc.req, ae.Status, ae.Field, err, tc.field)
		case strings.Contains(err.Error(), "five"):
			t.Errorf("refusal %q quotes the value", err)
		}
	}
	if all, _ := ta.client.Runs(ctx, api.ListFilter{}); len(all) != 2 {
		t.Errorf("%d runs recorded; want 2 (refusals start nothing)", len(all))
	}
}

func TestAgentCancelAndFollow(t *testing.T) {
	ta := startAgent(t, map[string]string{
		"slow.star": agentPlaybook("slow", `    log.info("waiting")
    test.block()`, ""),
	}, nil)
	started := ta.sig.Arm()
	run := ta.start("slow", nil)
	<-started

	// A follower sees the lines logged so far, then the end.
	type followed struct {
		run   api.Run
		lines []api.LogLine
	}
	got := make(chan followed, 1)
	go func() {
		r, l := ta.wait(run.ID)
		got <- followed{r, l}
	}()
	if _, err := ta.client.Cancel(context.Background(), run.ID); err != nil {
		t.Fatal(err)
	}
	f := <-got
	if f.run.Status != "cancelled" || !strings.Contains(f.run.Error, errCancelledByAPI.Error()) {
		t.Errorf("cancelled run = %+v", f.run)
	}
	if m := msgs(f.lines); !slices.Contains(m, "waiting") || !slices.Contains(m, "run finished") || m[len(m)-1] != "run stopped here" {
		t.Errorf("followed log = %q", m)
	}
}

func TestAgentShutdownGrace(t *testing.T) {
	files := map[string]string{"slow.star": agentPlaybook("slow", `    test.block()
    return "done"`, "")}

	t.Run("finishes within grace", func(t *testing.T) {
		ta := startAgent(t, files, func(c *Config) { c.ShutdownGrace = time.Hour })
		ta.hooks.draining = func() {
			// New runs are refused from here on...
			if _, err := (localAPI{ta.Agent}).Start(context.Background(), api.TriggerRequest{Playbook: "slow"}); !errors.Is(err, api.ErrConflict) {
				t.Errorf("Start while draining err = %v; want conflict", err)
			}
			close(ta.sig.Release) // ...and the one in flight may finish.
		}
		started := ta.sig.Arm()
		run := ta.start("slow", nil)
		<-started
		if err := ta.stop(); err != nil {
			t.Fatal(err)
		}
		r, err := openStore(t, ta.state).Get(context.Background(), run.ID)
		if err != nil || r.Status != runstate.Succeeded || string(r.Result) != `"done"` {
			t.Errorf("run after a graceful stop = %+v, %v; want succeeded", r, err)
		}
	})

	t.Run("interrupted after grace", func(t *testing.T) {
		ta := startAgent(t, files, func(c *Config) { c.ShutdownGrace = -1 })
		started := ta.sig.Arm()
		run := ta.start("slow", nil)
		<-started
		if err := ta.stop(); err != nil {
			t.Fatal(err)
		}
		st := openStore(t, ta.state)
		r, err := st.Get(context.Background(), run.ID)
		// A stop past the grace period interrupts (never undoes): the
		// run waits for the next start to resume or undo it.
		if err != nil || r.Status != runstate.Interrupted || !strings.Contains(r.Error, errShutdown.Error()) || !r.Ended.IsZero() {
			t.Errorf("run cut by the shutdown = %+v, %v; want interrupted, naming the stop, not ended", r, err)
		}
		lines, _ := st.Logs(context.Background(), run.ID, 0, 0)
		if len(lines) < 2 || lines[len(lines)-2].Msg != "run finished" || !strings.Contains(string(lines[len(lines)-1].Attrs), "slow.star:2:") {
			t.Errorf("log of the cancelled run: %d lines; want every line, the backtrace last, flushed before the end", len(lines))
		}
	})
}

// fakePVE is a Proxmox client whose Version fails with the error the test
// sets; other methods are not called by these tests.
type fakePVE struct {
	ProxmoxAPI
	mu  sync.Mutex
	err error
}

func (f *fakePVE) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakePVE) Version(context.Context) (proxmox.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proxmox.Version{Version: "8.2.4"}, f.err
}

func TestAgentHealthz(t *testing.T) {
	pve := &fakePVE{}
	pve.setErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	probed := make(chan struct{}, 10)
	ta := startAgent(t, map[string]string{"a.star": agentPlaybook("a", "    pass", "")},
		func(c *Config) { c.Proxmox = pve },
		func(a *Agent) { a.hooks.probed = func() { probed <- struct{}{} } })
	<-probed // the probe at start

	code, body := ta.get("/healthz")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || h.Proxmox.OK || h.Proxmox.Error != "the Proxmox API refused the connection (unreachable)" ||
		h.Proxmox.Checked == nil || h.Playbooks != 1 {
		t.Errorf("/healthz with Proxmox down = %d %+v", code, h)
	}
	if _, metrics := ta.get("/metrics"); !strings.Contains(metrics, "felhom_proxmox_up 0") {
		t.Error("/metrics: want felhom_proxmox_up 0 while Proxmox is down")
	}

	pve.setErr(nil) // Proxmox is back; the next probe (here: at once) sees it
	ta.probe(context.Background())
	code, body = ta.get("/healthz")
	h = Health{}
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != http.StatusOK || h.Status != "ok" || !h.Proxmox.OK || h.Proxmox.Error != "" {
		t.Errorf("/healthz with Proxmox up = %d %s", code, body)
	}
	if _, metrics := ta.get("/metrics"); !strings.Contains(metrics, "felhom_proxmox_up 1") {
		t.Error("/metrics: want felhom_proxmox_up 1 once Proxmox answers")
	}

	// A refused playbook makes the agent degraded too, while it serves.
	enginetest.WriteFile(t, ta.dir, "a.star", "def run(ctx)\n")
	ta.waitReload(func(ch engine.Change) bool { return len(ch.Failed) > 0 })
	if code, body := ta.get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, `"load_errors":1`) {
		t.Errorf("/healthz with a refused playbook = %d %s", code, body)
	}
}

func TestAgentTCPServesOnlyHubMetricsHealth(t *testing.T) {
	ta := startAgent(t, map[string]string{"a.star": agentPlaybook("a", "    pass", "")}, nil)
	for _, path := range []string{"/v1/playbooks", "/v1/runs", "/", "/debug/pprof/"} {
		if code, _ := ta.get(path); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("GET %s on TCP = %d; want 404 (run control is on the socket only)", path, code)
		}
	}
	resp, err := http.Post("http://"+ta.Addr().String()+"/v1/runs", "application/json", strings.NewReader(`{"playbook":"a"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/runs on TCP = %d; want it refused", resp.StatusCode)
	}
}

func TestAgentRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{StateDir: dir}, "playbooks directory"},
		{Config{PlaybooksDir: dir}, "state directory"},
		{Config{PlaybooksDir: filepath.Join(dir, "missing"), StateDir: dir}, "playbooks root"},
		{Config{PlaybooksDir: dir, StateDir: t.TempDir(), Listen: "256.0.0.1:1"}, "listen"},
	} {
		a, err := New(tc.cfg)
		if err == nil {
			a.Close()
			t.Errorf("New(%+v) = nil error; want one about %s", tc.cfg, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want it to mention %s", tc.cfg, err, tc.want)
		}
	}
}
