package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// simClient serves sim over TLS on loopback for the test (pvetest.Serve)
// and returns a client pinned to its certificate, logging as the agent's
// tests do.
func simClient(t testing.TB, sim *pvesim.Sim) *proxmox.Client {
	t.Helper()
	_, c := pvetest.Serve(t, sim, proxmox.WithLogger(enginetest.Logger()))
	return c
}

// simHost is the rig of the tests that run agents on a simulated host:
// sim served over TLS for the test, with one client pinned to it that
// every agent started on it uses (engine and daemon alike) — several, one
// after another on one state directory, for the restart tests.
type simHost struct {
	t      testing.TB
	sim    *pvesim.Sim
	client *proxmox.Client
}

func newSimHost(t testing.TB, sim *pvesim.Sim) *simHost {
	return &simHost{t: t, sim: sim, client: simClient(t, sim)}
}

// agent starts an agent (startAgent) on files and the host; each mod
// adjusts its configuration in turn.
func (h *simHost) agent(files map[string]string, mods ...func(*Config)) *testAgent {
	h.t.Helper()
	return startAgent(h.t, files, func(c *Config) {
		c.Engine.Env.Proxmox, c.Proxmox = h.client, h.client
		for _, m := range mods {
			m(c)
		}
	})
}

// guestAPI serves the guest API on a loopback port, attaching bootstrap
// directories through the simulator's root tools; more, if any, adjusts
// it.
func (h *simHost) guestAPI(more ...func(*GuestAPIConfig)) func(*Config) {
	return func(c *Config) {
		c.GuestAPI = &GuestAPIConfig{Listen: []string{"127.0.0.1:0"}, Proxmox: h.client, Attach: attachRecorder{h.sim}}
		for _, m := range more {
			m(c.GuestAPI)
		}
	}
}

// waitMutations waits until guest vmid has seen n mutations.
func (h *simHost) waitMutations(vmid, n int) {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); h.sim.Mutations(vmid) < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("guest %d saw %d mutations; want %d", vmid, h.sim.Mutations(vmid), n)
		}
	}
}

// expectGuest checks that guest vmid saw n mutations (why says which)
// and has no snapshot left, as a finished or undone run leaves it.
func (h *simHost) expectGuest(vmid, n int, why string) {
	h.t.Helper()
	if got := h.sim.Mutations(vmid); got != n {
		h.t.Errorf("guest %d saw %d mutations; want %d (%s)", vmid, got, n, why)
	}
	if g, _ := h.sim.Guest(vmid); len(g.Snapshots) != 0 {
		h.t.Errorf("guest %d has snapshots %v; want none, as a finished or undone run leaves it", vmid, g.Snapshots)
	}
}

// inState runs the agent on an existing state directory (a restart).
func inState(state string) func(*Config) { return func(c *Config) { c.StateDir = state } }

// pastGrace makes the agent's stop interrupt its runs at once.
func pastGrace(c *Config) { c.ShutdownGrace = -1 }

// noListen serves no TCP listener (benchmarks).
func noListen(c *Config) { c.Listen = "" }

func TestRecoveryInterruptsAndFollowsTasks(t *testing.T) {
	saved := followWait
	followWait = proxmox.WaitOptions{MinInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond}
	defer func() { followWait = saved }()

	sim := pvesim.New()
	sim.TaskDuration = 150 * time.Millisecond
	client := simClient(t, sim)
	ctx := context.Background()

	// A previous agent started a snapshot for a run and was killed while
	// waiting for it; another run was queued and never started.
	upid, err := client.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "before-upgrade", Description: ""})
	if err != nil {
		t.Fatal(err)
	}
	gone := "UPID:" + pvesim.DefaultNode + ":0000BEEF:00ABCDEF:65F0A1B2:vzsnapshot:102:root@pam:"
	state := t.TempDir()
	st, err := store.Open(state+"/"+StoreFile, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := st.CreateRuns(ctx, store.Trigger{Source: store.SourceHub, Key: "t-1"},
		[]store.NewRun{{Playbook: "snap"}, {Playbook: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	running, queued := runs[0].ID, runs[1].ID
	for _, err := range []error{
		st.MarkStarted(ctx, running, "v1", "", time.Time{}),
		st.TaskStarted(ctx, running, 0, upid.String(), time.Time{}),
		st.TaskStarted(ctx, running, 0, gone, time.Time{}),
		st.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	followed := make(chan string, 2)
	ta := startAgent(t, map[string]string{"snap.star": agentPlaybook("snap", "    return None", ""),
		"other.star": agentPlaybook("other", "    return 42", "")},
		func(c *Config) { c.StateDir, c.Engine.Env.Proxmox, c.Proxmox = state, client, client },
		func(a *Agent) { a.hooks.followed = func(u string) { followed <- u } })
	got := map[string]bool{<-followed: true, <-followed: true}
	if !got[upid.String()] || !got[gone] {
		t.Fatalf("followed %v; want both recorded tasks", got)
	}

	// The run left queued never started: it runs now, once.
	if q, _ := ta.wait(queued); q.Status != "succeeded" || string(q.Result) != "42" {
		t.Errorf("run left queued = %s %q %s; want run after the restart, succeeded", q.Status, q.Error, q.Result)
	}
	r, err := ta.store.Get(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	// Its version (v1) was never saved, so it can be neither resumed nor
	// replayed into its undo: it fails, saying so.
	if r.Status != runstate.Failed || r.ErrorKind != engine.KindInterrupt || !strings.Contains(r.Error, "the agent stopped while the run was running; it cannot be resumed or undone: version v1") {
		t.Errorf("run left running = %s %s %q; want failed, saying it cannot be resumed", r.Status, r.ErrorKind, r.Error)
	}
	exits := map[string]string{}
	for _, tk := range r.Tasks {
		if !tk.Done() {
			t.Errorf("task %s not recorded as ended", tk.UPID)
		}
		exits[tk.UPID] = tk.ExitStatus
	}
	if exits[upid.String()] != "OK" || !strings.HasPrefix(exits[gone], "unknown:") {
		t.Errorf("task exits %v; want the snapshot OK and the vanished task unknown", exits)
	}
	if open, _ := ta.store.OpenTasks(ctx); len(open) != 0 {
		t.Errorf("open tasks after recovery: %v", open)
	}
	// Followed, never re-run: one snapshot request reached the host.
	if n := sim.Mutations(101); n != 1 {
		t.Errorf("guest 101 saw %d mutations; want 1 (the interrupted run's, not repeated)", n)
	}
	lines, _ := ta.store.Logs(ctx, running, 0, 0)
	if len(lines) != 2 || lines[0].Msg != "followed task ended" {
		t.Errorf("run log %v; want a line per followed task", lines)
	}
}

func TestRunRecordsTasksAndMetrics(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 20 * time.Millisecond
	ta := newSimHost(t, sim).agent(map[string]string{
		"snap.star": agentPlaybook("snap", `    t = proxmox.snapshot(101, "nightly")
    monitor.gauge("snapshots_taken", 1, labels = {"vmid": "101"})
    monitor.gauge("snapshots_taken", 1, labels = {"guest": "101"})
    return t.exitstatus`, ""),
	})

	run, _ := ta.wait(ta.start("snap", nil).ID)
	if run.Status != "succeeded" || len(run.Tasks) != 1 || run.Tasks[0].Status != "stopped" || run.Tasks[0].ExitStatus != "OK" ||
		!strings.Contains(run.Tasks[0].UPID, ":vzsnapshot:101:") {
		t.Fatalf("run = %+v; want succeeded with its snapshot task recorded and ended", run)
	}
	_, metrics := ta.get("/metrics")
	for _, want := range []string{
		`felhom_runs_total{playbook="snap",status="succeeded"} 1`,
		`felhom_run_duration_seconds_count{playbook="snap"} 1`,
		`felhom_task_wait_seconds_count 1`,
		`felhom_proxmox_requests_total{method="POST",status="200"} 1`,
		`felhom_proxmox_requests_total{method="GET",status="200"}`,
		`felhom_playbooks_loaded 1`,
		`felhom_reload_errors_total 0`,
		`felhom_runs_in_flight 0`,
		`felhom_playbook_snapshots_taken{vmid="101"} 1`,
		`felhom_playbook_gauges_dropped_total 1`, // the second label set differs from the first
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestTaskHistoryFromTheStore: the tasks a run waited for are the history
// of the next wait on a task of their kind (worker type, guest, node): the
// median of the last five that succeeded.
func TestTaskHistoryFromTheStore(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 150 * time.Millisecond
	ta := newSimHost(t, sim).agent(map[string]string{"snap.star": agentPlaybook("snap",
		"    proxmox.snapshot(101, \"hist\")\n    proxmox.delete_snapshot(101, \"hist\")", "")})
	h := ta.cfg.Engine.Env.History
	if h == nil {
		t.Fatal("the agent gives its runs no task history")
	}
	next := proxmox.UPID{Node: pvesim.DefaultNode, Type: "vzsnapshot", ID: "101", User: "root@pam", PID: 1, PStart: 1, StartTime: time.Now()}
	if d := h.ExpectedDuration(t.Context(), next); d != 0 {
		t.Errorf("expected %v before any task; want 0", d)
	}
	began := time.Now()
	for range 2 {
		if r, _ := ta.wait(ta.start("snap", nil).ID); r.Status != "succeeded" {
			t.Fatalf("run %s: %s %s", r.ID, r.Status, r.Error)
		}
	}
	took := time.Since(began)
	// A task's recorded start is stamped when the store writes it, which
	// under load can be late, so the estimate may be below the simulated
	// duration; it is never zero and never longer than both runs took.
	if d := h.ExpectedDuration(t.Context(), next); d <= 0 || d > took {
		t.Errorf("expected a snapshot of 101 to run %v after two runs that took %v in all; want more than 0 and at most that", d, took)
	}
	other := next
	other.ID = "102"
	if d := h.ExpectedDuration(t.Context(), other); d != 0 {
		t.Errorf("expected a snapshot of 102 to run %v; want 0 (no history)", d)
	}
}

func TestMedianDuration(t *testing.T) {
	s := time.Second
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{9 * s, 3 * s}, 3 * s},
		{[]time.Duration{9 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{60 * s, 10 * s, 11 * s, 12 * s, 1 * s}, 11 * s},
	}
	for _, tt := range tests {
		if got := medianDuration(tt.in); got != tt.want {
			t.Errorf("medianDuration(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// TestLogReadsOnlyForFollowers: a run nobody follows reads no task log
// (the simulator counts none); a run someone follows through the local
// API gets its vzdump's lines, at most one log read per status poll.
func TestLogReadsOnlyForFollowers(t *testing.T) {
	const logRoute, statusRoute, listRoute = "GET /nodes/{node}/tasks/{upid}/log", "GET /nodes/{node}/tasks/{upid}/status", "GET /nodes/{node}/tasks"
	sim := pvesim.New()
	sim.TaskDuration = 3 * time.Second
	client := simClient(t, sim)
	ta := startAgent(t, map[string]string{"dump.star": agentPlaybook("dump", `    proxmox.vzdump(200, storage = "usb-backup")`, "")},
		func(c *Config) { c.Engine.Env.Proxmox, c.Proxmox = client, client })
	ctx := t.Context()

	run := ta.start("dump", nil)
	if lr := ta.liveRun(run.ID); lr != nil {
		<-lr.done
	}
	if r, err := ta.client.Run(ctx, run.ID); err != nil || r.Status != "succeeded" {
		t.Fatalf("unfollowed run: %+v, %v", r, err)
	}
	if n := sim.RouteRequests(logRoute); n != 0 {
		t.Errorf("%d task-log reads for a run nobody followed; want 0", n)
	}

	polls := sim.RouteRequests(statusRoute) + sim.RouteRequests(listRoute)
	r, lines := ta.wait(ta.start("dump", nil).ID)
	if r.Status != "succeeded" {
		t.Fatalf("followed run: %s %s", r.Status, r.Error)
	}
	polls = sim.RouteRequests(statusRoute) + sim.RouteRequests(listRoute) - polls
	reads := sim.RouteRequests(logRoute)
	if reads == 0 || reads > polls {
		t.Errorf("%d task-log reads for a followed run whose wait polled %d times; want at least one, at most one per poll", reads, polls)
	}
	taskLines := 0
	for _, l := range lines {
		if strings.Contains(string(l.Attrs), `"task_line"`) {
			taskLines++
		}
	}
	if taskLines == 0 {
		t.Error("the followed run's log has no line of its vzdump")
	}
}
