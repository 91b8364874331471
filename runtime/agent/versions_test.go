package agent

import (
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// TestLastGoodVersionSurvivesRestart: a playbook whose file is broken
// when the agent starts serves its last good version from the version
// store, runs on it, and shows its load error in health, metrics and the
// playbooks list.
func TestLastGoodVersionSurvivesRestart(t *testing.T) {
	state := t.TempDir()
	good := agentPlaybook("nightly", `    return "v1"`, `schedule = "0 3 * * *"`)
	first := startAgent(t, map[string]string{"nightly.star": good}, func(c *Config) { c.StateDir = state })
	version := first.registry.Get("nightly").Version
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	ta := startAgent(t, map[string]string{"nightly.star": "def run(ctx)\n"}, func(c *Config) { c.StateDir = state })
	ta.waitReload(func(ch engine.Change) bool { return len(ch.Loaded) == 1 }) // the saved version
	pb := ta.registry.Get("nightly")
	if pb == nil || !pb.Saved || pb.Version != version {
		t.Fatalf("after a restart with the file broken, nightly = %+v; want the saved version %s", pb, version)
	}
	if _, ok := ta.sched.NextRuns()["nightly"]; !ok {
		t.Error("the saved version's timer is not set")
	}
	r, _ := ta.wait(ta.start("nightly", nil).ID)
	if r.Status != "succeeded" || string(r.Result) != `"v1"` || r.Version != version {
		t.Errorf("run on the saved version = %s %s version %s", r.Status, r.Result, r.Version)
	}
	h := ta.Health()
	if h.LoadErrors != 1 || len(h.PlaybookErrors) != 1 || !h.PlaybookErrors[0].Saved || !strings.Contains(h.PlaybookErrors[0].Error, "nightly.star:2:1") {
		t.Errorf("health = %+v; want the load error with the saved version serving", h)
	}
	_, metrics := ta.get("/metrics")
	if !strings.Contains(metrics, "felhom_playbooks_load_errors 1") {
		t.Error("/metrics lacks felhom_playbooks_load_errors 1")
	}
	pbs, err := localAPI{ta.Agent}.Playbooks(t.Context())
	if err != nil || len(pbs) != 1 || !pbs[0].Saved || pbs[0].LoadError == "" {
		t.Errorf("playbooks = %+v, %v; want nightly saved with its load error", pbs, err)
	}
}
