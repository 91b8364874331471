package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestRunWritesBounded (issue 12, limits on what a run writes): a run
// logging 200 one-MiB lines has each line cut with a marker and its log
// stopped at runs.log_max_mib with a line saying so; a run returning
// 20 MiB fails with kind limit and records no result; a list of ten such
// runs stays small and pages.
func TestRunWritesBounded(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: append(sim.env(), "FELHOM_AGENT_RUNS_LOG_MAX_MIB=1"),
		playbooks: filepath.Join(mustAbs(t, "testdata"), "writes")})

	noisy := a.waitRun(t, a.startRun(t, "noisy", nil).ID, 2*time.Minute, "to finish", finished)
	if noisy.Status != "succeeded" {
		t.Fatalf("noisy run: %s %s", noisy.Status, noisy.Error)
	}
	var logBytes, cut int
	var limitLine bool
	after := int64(0)
	for {
		code, b := a.local(t, "GET", "/v1/runs/"+noisy.ID+"/logs?after="+itoa(after), nil)
		if code != 200 {
			t.Fatalf("logs: HTTP %d", code)
		}
		lines := decodeLines(t, b)
		if len(lines) == 0 {
			break
		}
		for _, l := range lines {
			logBytes += len(l.Msg) + len(l.Attrs)
			if strings.Contains(l.Msg, "[cut: ") {
				cut++
			}
			limitLine = limitLine || strings.Contains(l.Msg, "log limit reached")
			after = l.Seq
		}
	}
	storeBytes := dirSize(t, a.stateDir)
	if cut == 0 || !limitLine || logBytes > 2<<20 {
		t.Errorf("noisy run's log: %d bytes, %d lines cut, limit line %v; want lines cut with a marker and the log stopped near 1 MiB",
			logBytes, cut, limitLine)
	}
	if storeBytes > 32<<20 {
		t.Errorf("the state directory is %d bytes after 200 MiB of log; want it bounded", storeBytes)
	}

	var ids []string
	for range 10 {
		ids = append(ids, a.startRun(t, "bigresult", nil).ID)
	}
	for _, id := range ids {
		r := a.waitRun(t, id, 2*time.Minute, "to finish", finished)
		if r.Status != "failed" || r.ErrorKind != "limit" || len(r.Result) != 0 {
			t.Errorf("run returning 20 MiB: %s [%s] %q, result %d bytes; want failed, kind limit, no result", r.Status, r.ErrorKind, r.Error, len(r.Result))
		}
	}
	code, list := a.local(t, "GET", "/v1/runs?limit=10", nil)
	if code != 200 || len(list) > 64<<10 || !strings.Contains(string(list), `"next":`) {
		t.Errorf("a list of 10 runs: HTTP %d, %d bytes; want a small answer with a next-page cursor", code, len(list))
	}
	rss := vmHWM(t, a.proc)
	record(t, "200 one-MiB log lines (runs.log_max_mib=1); 10 runs returning 20 MiB",
		"log recorded %d bytes (%d lines cut, limit line), state dir %.1f MiB; results refused (kind limit), 10-run list %d bytes; agent peak RSS %d MiB",
		logBytes, cut, float64(storeBytes)/(1<<20), len(list), rss>>10)
}

func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func decodeLines(t testing.TB, b []byte) []api.LogLine {
	t.Helper()
	var out struct {
		Lines []api.LogLine `json:"lines"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.Lines
}
