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
