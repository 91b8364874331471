package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestSecondAgentSameStateDir (issue 12, one agent per state directory):
// a second serve on the same state directory, with its own socket and
// port, is refused at start naming the first agent's pid, and the first
// agent's run in flight is untouched: it finishes succeeded, never
// interrupted.
func TestSecondAgentSameStateDir(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "2s")
	a := startAgent(t, agentOpts{env: sim.env()})
	r := a.startRun(t, "hold", map[string]any{"vmid": 101})
	a.waitRun(t, r.ID, 30*time.Second, "to start its task", func(r api.Run) bool { return len(r.Tasks) == 1 })

	sock := filepath.Join(t.TempDir(), "b.sock")
	second := runCmd(t, 30*time.Second, append(sim.env(), a.env...), "--playbooks", a.playbooks, "serve",
		"--listen", freeAddr(t), "--socket", sock, "--state-dir", a.stateDir)
	pid := fmt.Sprintf("pid %d", a.proc.cmd.Process.Pid)
	if second.Code != 2 || !strings.Contains(second.Stderr, pid) || !strings.Contains(second.Stderr, a.stateDir) {
		t.Errorf("second serve on %s: exit %d, stderr %s; want exit 2 naming the directory and %s",
			a.stateDir, second.Code, tail(second.Stderr, 1500), pid)
	}
	done := a.waitRun(t, r.ID, 60*time.Second, "to finish", finished)
	if done.Status != "succeeded" {
		t.Errorf("the first agent's run ended %s (%s); want succeeded", done.Status, done.Error)
	}
	record(t, "second serve on a live state directory", "refused (exit %d) naming the holder's pid; the first agent's run %s",
		second.Code, done.Status)
}

// TestStateExportImport (issue 12, the agent's own state): state export
// of a serving agent's directory is consistent while it runs; state
// import refuses the live directory (naming the holder) and restores into
// an empty one, where a new agent serves the old runs and answers a
// replayed trigger with its old run.
func TestStateExportImport(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: sim.env()})
	code, ans := a.trigger(t, "exp-1", "hold", map[string]any{"vmid": 101})
	if code != 202 {
		t.Fatalf("trigger: HTTP %d", code)
	}
	id := ans.Runs[0].ID
	a.waitRun(t, id, time.Minute, "to finish", finished)
	for range 20 {
		a.startRun(t, "selftest", nil) // the store is written while it is exported
	}

	file := filepath.Join(t.TempDir(), "state.tar.gz")
	exp := runCmd(t, time.Minute, nil, "state", "export", "--state-dir", a.stateDir, file)
	if exp.Code != 0 || !strings.Contains(exp.Stdout, "runs.db") {
		t.Fatalf("state export of a live agent: exit %d\n%s%s", exp.Code, exp.Stdout, exp.Stderr)
	}
	imp := runCmd(t, time.Minute, nil, "state", "import", "--state-dir", a.stateDir, file)
	if imp.Code == 0 || !strings.Contains(imp.Stderr, fmt.Sprintf("pid %d", a.proc.cmd.Process.Pid)) {
		t.Errorf("state import into the live directory: exit %d %s; want refused naming the agent's pid", imp.Code, imp.Stderr)
	}

	b := startAgent(t, agentOpts{env: sim.env(), stateDir: filepath.Join(t.TempDir(), "new-host")})
	b.stop(t) // made its own store: import must refuse it
	imp = runCmd(t, time.Minute, nil, "state", "import", "--state-dir", b.stateDir, file)
	if imp.Code == 0 || !strings.Contains(imp.Stderr, "already holds a run store") {
		t.Errorf("state import over a store: exit %d %s; want refused", imp.Code, imp.Stderr)
	}
	fresh := filepath.Join(t.TempDir(), "fresh")
	imp = runCmd(t, time.Minute, nil, "state", "import", "--state-dir", fresh, file)
	if imp.Code != 0 {
		t.Fatalf("state import into an empty directory: exit %d %s", imp.Code, imp.Stderr)
	}
	c := startAgent(t, agentOpts{env: sim.env(), stateDir: fresh})
	if hc, st := c.hubRun(t, id); hc != 200 || st.Status != "succeeded" {
		t.Errorf("GET /v1/runs/%s on the restored host = %d %s; want the exported run, succeeded", id, hc, st.Status)
	}
	if code, again := c.trigger(t, "exp-1", "hold", map[string]any{"vmid": 101}); code != 200 || len(again.Runs) != 1 || again.Runs[0].ID != id {
		t.Errorf("replayed trigger on the restored host = %d %+v; want 200 with run %s (the idempotency keys came along)", code, again.Runs, id)
	}
	if n := len(c.runs(t)); n != 21 {
		t.Errorf("the restored host lists %d runs; want 21", n)
	}
	record(t, "state export of a serving agent, import on a new host", "export took %v; import refused on the live dir (pid named) and over a store; restored host has the runs and their idempotency keys",
		exp.Took.Round(time.Millisecond))
}
