package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretParamNeverInClear (issue 12, "Secrets and configuration"): a
// playbook that echoes its param.secret value in every way — print, log
// messages and attributes, a caught error, fail(), its result — run from
// the hub, the local API and `run`: the value is in no process output, no
// HTTP answer (the hub's run status included) and no byte of the state
// directory (the secret scan checks all of them; paramSecret is
// registered), and [redacted] shows where it was.
func TestSecretParamNeverInClear(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "50ms")
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "secrets", "leak.star"), filepath.Join(dir, "leak.star"))
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: dir})
	var ids []string
	for _, fail := range []bool{false, true} {
		code, ans := a.trigger(t, fmt.Sprintf("leak-%v", fail), "leak", map[string]any{"token": paramSecret, "fail": fail})
		if code != http.StatusAccepted || len(ans.Runs) != 1 {
			t.Fatalf("trigger: HTTP %d %+v", code, ans)
		}
		ids = append(ids, ans.Runs[0].ID)
		ids = append(ids, a.startRun(t, "leak", map[string]any{"token": paramSecret, "fail": fail}).ID)
	}
	redacted := 0
	for _, id := range ids {
		r := a.waitRun(t, id, time.Minute, "to finish", finished)
		want := "succeeded"
		if strings.Contains(r.Error, "fail:") {
			want = "failed"
		}
		if r.Status != want {
			t.Errorf("run %s: %s (%s)", id, r.Status, r.Error)
		}
		_, st := a.hubRun(t, id) // captured and scanned
		_, logs := a.local(t, "GET", "/v1/runs/"+url.PathEscape(id)+"/logs", nil)
		redacted += strings.Count(string(logs), "[redacted]") + strings.Count(st.Error, "[redacted]") + strings.Count(string(st.Result), "[redacted]")
	}
	for _, fail := range []string{"false", "true"} {
		out := runPlaybook(t, sim.env(), dir, "leak.star", params("token="+paramSecret, "fail="+fail)...)
		s := out.mustSummary(t)
		redacted += strings.Count(out.Stdout+out.Stderr, "[redacted]")
		if fail == "true" && !strings.Contains(s.Error, "fail: [redacted]") {
			t.Errorf("run --json error = %q; want the fail() message with [redacted]", s.Error)
		}
	}
	if redacted == 0 {
		t.Error("nothing shows [redacted]: did the playbook run?")
	}
	// The scan of every capture and of the state directory runs in the
	// cleanups (startProc, startAgent) and fails the test on a hit.
	record(t, "secret echoed 10 ways by 6 runs (hub, local API, run): places shown [redacted]", "%d", redacted)
}

// copyFile copies src to dst (mode 0644).
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
