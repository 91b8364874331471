package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestLastGoodVersionAfterRestart (issue 12, the last good version
// survives a restart): a broken save followed by a restart no longer makes
// the playbook disappear (404) with its timer: it serves its last good
// version from the version store, runs, keeps its schedule, and shows the
// load error in `felhom-agent playbooks`, /healthz and /metrics.
func TestLastGoodVersionAfterRestart(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	dir := servePlaybooks(t)
	const good = `def run(ctx):
    return "nightly v1"

playbook(name = "nightly", schedule = "0 3 * * *", triggers = ["nightly"], run = run)
`
	file := filepath.Join(dir, "nightly.star")
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: dir})
	checkResult(t, a, "nightly", `"nightly v1"`)
	if code := a.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}

	// A typo saved while the agent was down (or just before a reboot).
	if err := os.WriteFile(file, []byte(strings.Replace(good, "def run(ctx):", "def run(ctx)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	a.restart(t)
	checkResult(t, a, "nightly", `"nightly v1"`)
	out := runCmd(t, 30*time.Second, nil, "playbooks", "--socket", a.socket)
	line := ""
	for _, l := range strings.Split(out.Stdout, "\n") {
		if strings.HasPrefix(l, "nightly ") {
			line = l
		}
	}
	if !strings.Contains(line, "last good, saved") || !strings.Contains(line, "nightly.star:2:1") || !strings.Contains(line, "0 3 * * *") {
		t.Errorf("felhom-agent playbooks shows nightly as %q; want the saved version, its schedule and the load error\n%s", line, out.Stdout)
	}
	code, h := a.health(t)
	found := false
	for _, pe := range h.PlaybookErrors {
		found = found || (pe.File == "nightly.star" && pe.Saved && pe.Serving != "" && strings.Contains(pe.Error, "nightly.star:2:1"))
	}
	if code != 503 || h.LoadErrors != 1 || !found {
		t.Errorf("/healthz = %d %+v; want degraded naming nightly.star, its error and the saved version", code, h)
	}
	if v := metricValue(t, a.metrics(t), "felhom_playbooks_load_errors"); v != 1 {
		t.Errorf("felhom_playbooks_load_errors = %v; want 1", v)
	}
	// Fixing the file takes over from the saved version.
	saveAtomic(t, file, []byte(strings.Replace(good, "v1", "v2", 1)))
	waitPlaybook(t, a, "nightly", "to load the fixed file", func(p api.Playbook) bool { return p.LoadError == "" && !p.Saved })
	checkResult(t, a, "nightly", `"nightly v2"`)
	record(t, "broken save, then restart", "the last good version serves (runs, timer kept); load error on playbooks, /healthz and felhom_playbooks_load_errors; a fixed save takes over")
}
