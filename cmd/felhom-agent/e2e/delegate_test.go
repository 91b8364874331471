package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// cycleStar takes snapshot `name` of guest `vmid` and deletes it again:
// two tasks, between which another process's mutation of the guest would
// collide with it (the simulator refuses a locked guest, as PVE does).
const cycleStar = `"""Snapshot and delete it again."""

def run(ctx):
    proxmox.snapshot(vmid = ctx.params.vmid, name = ctx.params.name)
    proxmox.delete_snapshot(vmid = ctx.params.vmid, name = ctx.params.name)
    return {"vmid": ctx.params.vmid}

playbook(
    name = "cycle",
    params = {"vmid": param.int(), "name": param.string()},
    concurrent = True,
    run = run,
)
`

// cliSummary is what this file reads of run --json's summary.
type cliSummary struct {
	Run      string   `json:"run"`
	Status   string   `json:"status"`
	Error    string   `json:"error"`
	Agent    string   `json:"agent"`
	Requests *int     `json:"api_requests"`
	Tasks    []string `json:"tasks"`
}

func parseSummary(t *testing.T, r result) cliSummary {
	t.Helper()
	var s cliSummary
	if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
		t.Fatalf("run summary: %v (exit %d)\nstdout: %s\nstderr: %s", err, r.Code, tail(r.Stdout, 2000), tail(r.Stderr, 2000))
	}
	return s
}

// TestRunThroughAgent (issue 19, one view of every run): `felhom-agent
// run` against the real host goes through the agent serving on its
// socket — recorded there with source cli, the same recap, the same exit
// code; a file the agent does not serve at that version is refused with
// nothing started; --sim is never delegated.
func TestRunThroughAgent(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	pbs := servePlaybooks(t)
	cycle := filepath.Join(pbs, "cycle.star")
	if err := os.WriteFile(cycle, []byte(cycleStar), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: pbs})

	r := runCmd(t, runTimeout, sim.env(), "--playbooks", pbs, "run", cycle, "-p", "vmid=101", "-p", "name=cli1", "--socket", a.socket, "--json")
	s := parseSummary(t, r)
	if r.Code != 0 || s.Status != "succeeded" || s.Agent != a.socket || s.Requests != nil || len(s.Tasks) != 2 {
		t.Errorf("run through the agent: exit %d, summary %+v; want succeeded through %s, requests null, 2 tasks\n%s", r.Code, s, a.socket, tail(r.Stderr, 2000))
	}
	if !strings.Contains(r.Stderr, "goes through the agent serving at "+a.socket) || !strings.Contains(r.Stderr, `"msg":"task finished"`) {
		t.Errorf("run's stderr does not say it went through the agent, or lacks the run's JSON log:\n%s", tail(r.Stderr, 2000))
	}
	rec := a.run(t, s.Run)
	if rec.Source != "cli" || rec.Status != "succeeded" {
		t.Errorf("the agent's record of the console run: source %q, status %q; want cli, succeeded", rec.Source, rec.Status)
	}
	// trigger from the console is recorded as the console's too.
	tr := runCmd(t, runTimeout, nil, "trigger", "cycle", "-p", "vmid=102", "-p", "name=trig", "--socket", a.socket, "--json")
	var trun api.Run
	if err := json.Unmarshal([]byte(tr.Stdout), &trun); err != nil || tr.Code != 0 {
		t.Fatalf("trigger: exit %d %v\n%s%s", tr.Code, err, tr.Stdout, tr.Stderr)
	}
	if got := a.waitRun(t, trun.ID, time.Minute, "to finish", finished); got.Source != "cli" || got.Status != "succeeded" {
		t.Errorf("a console trigger's run: source %q, status %q; want cli, succeeded", got.Source, got.Status)
	}
	before := len(a.runs(t))

	// Another file of that name, at another version: refused, nothing
	// started.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "cycle.star"), []byte("# an edit the agent does not serve\n"+cycleStar), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, runTimeout, sim.env(), "--playbooks", other, "run", filepath.Join(other, "cycle.star"), "-p", "vmid=101", "-p", "name=x", "--socket", a.socket)
	if r.Code != 2 || !strings.Contains(r.Stderr, "runs playbook cycle at version") {
		t.Errorf("a version the agent does not serve: exit %d\n%s; want 2 naming the versions", r.Code, tail(r.Stderr, 2000))
	}
	// A playbook the agent does not have at all.
	if err := os.WriteFile(filepath.Join(other, "lonely.star"), []byte(strings.ReplaceAll(cycleStar, `"cycle"`, `"lonely"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, runTimeout, sim.env(), "--playbooks", other, "run", filepath.Join(other, "lonely.star"), "-p", "vmid=101", "-p", "name=x", "--socket", a.socket)
	if r.Code != 2 || !strings.Contains(r.Stderr, "has no playbook lonely") {
		t.Errorf("a playbook the agent does not serve: exit %d\n%s; want 2 saying so", r.Code, tail(r.Stderr, 2000))
	}
	// A refused parameter names the flag, through the agent as in-process.
	r = runCmd(t, runTimeout, sim.env(), "--playbooks", pbs, "run", cycle, "-p", "name=x", "--socket", a.socket)
	if r.Code != 2 || !strings.Contains(r.Stderr, "vmid") {
		t.Errorf("a missing parameter: exit %d\n%s; want 2 naming vmid", r.Code, tail(r.Stderr, 2000))
	}
	if n := len(a.runs(t)); n != before {
		t.Errorf("the refused console runs recorded %d runs", n-before)
	}
	// --sim is never delegated.
	r = runCmd(t, runTimeout, nil, "--playbooks", pbs, "run", cycle, "-p", "vmid=101", "-p", "name=simrun", "--sim", "--socket", a.socket, "--json")
	if s := parseSummary(t, r); r.Code != 0 || s.Agent != "" || s.Requests == nil {
		t.Errorf("run --sim beside an agent: exit %d, summary %+v; want in-process", r.Code, s)
	}
	if n := len(a.runs(t)); n != before {
		t.Errorf("run --sim was recorded by the agent")
	}
	record(t, "console run through the serving agent", "recorded source %s, %d tasks, exit %d", rec.Source, len(rec.Tasks), 0)
}

// TestConsoleRunBesideAgentLocks (issue 19, host-wide guest locks): a
// console run that found no agent on its socket (say, the agent started
// just after) and the agent's own run mutate one guest; the flock guest
// locks beside the socket make them take turns, and both succeed — where
// per-process locks let the second snapshot hit the guest the first one
// holds.
func TestConsoleRunBesideAgentLocks(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "1s")
	pbs := servePlaybooks(t)
	cycle := filepath.Join(pbs, "cycle.star")
	if err := os.WriteFile(cycle, []byte(cycleStar), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: pbs})
	daemon := a.startRun(t, "cycle", map[string]any{"vmid": 101, "name": "daemon"})
	a.waitRun(t, daemon.ID, time.Minute, "to start its first task", func(r api.Run) bool { return len(r.Tasks) >= 1 })

	// No agent at this socket, but its guest locks are the agent's (the
	// same directory): the run is in-process and waits its turn.
	lonely := filepath.Join(filepath.Dir(a.socket), "nobody.sock")
	r := runCmd(t, runTimeout, sim.env(), "--playbooks", pbs, "run", cycle, "-p", "vmid=101", "-p", "name=console", "--socket", lonely, "--json")
	s := parseSummary(t, r)
	done := a.waitRun(t, daemon.ID, time.Minute, "to finish", finished)
	if r.Code != 0 || s.Status != "succeeded" || s.Agent != "" {
		t.Errorf("the console run: exit %d, %+v; want succeeded in-process\n%s", r.Code, s, tail(r.Stderr, 2000))
	}
	if done.Status != "succeeded" {
		t.Errorf("the agent's run: %s (%s); want succeeded", done.Status, done.Error)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(a.socket), "guests", "101.lock")); err != nil {
		t.Errorf("no lock file beside the socket: %v", err)
	}
	record(t, "console run and agent run on one guest", "console %s, agent %s", s.Status, done.Status)
}

// TestRunThroughAgentInterrupt (issue 19): Ctrl-C on a console run that
// goes through the agent cancels the run there, as in-process, and exits
// 1 with the run recorded cancelled.
func TestRunThroughAgentInterrupt(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "20s")
	pbs := servePlaybooks(t)
	cycle := filepath.Join(pbs, "cycle.star")
	if err := os.WriteFile(cycle, []byte(cycleStar), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: pbs})
	p := startProc(t, "run (interrupted)", sim.env(), "--playbooks", pbs, "run", cycle, "-p", "vmid=101", "-p", "name=int", "--socket", a.socket)
	line, err := p.stderr.waitFor(p.done, time.Minute, func(s string) (string, bool) {
		return s, strings.Contains(s, "task started") || strings.Contains(s, "upid")
	})
	if err != nil {
		t.Fatalf("the run did not start a task: %v\n%s", err, tail(line, 2000))
	}
	if err := p.signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := p.wait(t, time.Minute)
	out := p.stdout.String()
	if code != 1 || !strings.Contains(p.stderr.String(), "cancelling run") || !strings.Contains(out, "CANCELLED") {
		t.Errorf("interrupted console run: exit %d\nstdout: %s\nstderr: %s; want 1, cancelling, CANCELLED", code, out, tail(p.stderr.String(), 2000))
	}
	runs := a.runs(t)
	if len(runs) != 1 || runs[0].Status != "cancelled" || runs[0].Source != "cli" {
		t.Errorf("the agent's record: %+v; want one cancelled cli run", runs)
	}
}
