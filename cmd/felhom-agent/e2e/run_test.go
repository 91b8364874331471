package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runSummary is what `felhom-agent run --json` prints on stdout.
type runSummary struct {
	Run         string          `json:"run"`
	Playbook    string          `json:"playbook"`
	Version     string          `json:"version"`
	Status      string          `json:"status"`
	Kind        string          `json:"kind"`
	Error       string          `json:"error"`
	Backtrace   string          `json:"backtrace"`
	Duration    string          `json:"duration"`
	Result      json.RawMessage `json:"result"`
	Requests    int             `json:"api_requests"`
	Retries     int             `json:"api_retries"`
	Tasks       []string        `json:"tasks"`
	TaskWaiting string          `json:"task_waiting"`
}

// runOut is a finished `run`: the process's result and, when it printed
// one, the summary.
type runOut struct {
	result
	Summary *runSummary
}

// runTimeout bounds every `run` of the suite.
const runTimeout = 2 * time.Minute

// runPlaybook runs `felhom-agent --playbooks DIR run FILE --json ARGS...`
// with env. file is relative to dir.
func runPlaybook(t testing.TB, env []string, dir, file string, args ...string) runOut {
	t.Helper()
	full := append([]string{"--playbooks", dir, "run", filepath.Join(dir, file), "--json"}, args...)
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "FELHOM_AGENT_SOCKET=") }) {
		// A runtime directory of the run's own: no agent there, and the
		// guest locks not in the host's /run/felhom-agent.
		rt, err := os.MkdirTemp("", "far")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(rt) })
		env = append(slices.Clip(env), "FELHOM_AGENT_SOCKET="+filepath.Join(rt, "agent.sock"))
	}
	r := runCmd(t, runTimeout, env, full...)
	out := runOut{result: r}
	if strings.HasPrefix(strings.TrimSpace(r.Stdout), "{") {
		var s runSummary
		if err := json.Unmarshal([]byte(r.Stdout), &s); err != nil {
			t.Fatalf("run summary: %v\n%s", err, tail(r.Stdout, 2000))
		}
		out.Summary = &s
	}
	return out
}

// mustSummary returns the summary or fails, showing the output.
func (o runOut) mustSummary(t testing.TB) *runSummary {
	t.Helper()
	if o.Summary == nil {
		t.Fatalf("run printed no summary (exit %d)\nstdout: %s\nstderr: %s", o.Code, tail(o.Stdout, 2000), tail(o.Stderr, 2000))
	}
	return o.Summary
}

// shipped runs a shipped playbook against sim.
func shipped(t testing.TB, s *simProc, file string, args ...string) runOut {
	t.Helper()
	return runPlaybook(t, s.env(), playbooksDir, file, args...)
}

// tasksOf returns the UPIDs in upids of worker type typ for guest id
// ("" for any): UPID:node:pid:pstart:starttime:TYPE:ID:user:.
func tasksOf(upids []string, typ, id string) []string {
	var out []string
	for _, u := range upids {
		f := strings.Split(u, ":")
		if len(f) < 8 {
			continue
		}
		if f[5] == typ && (id == "" || f[6] == id) {
			out = append(out, u)
		}
	}
	return out
}

// param is "--param" "k=v".
func param(kv string) []string { return []string{"--param", kv} }

// params flattens several --param pairs.
func params(kvs ...string) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, param(kv)...)
	}
	return out
}

// refusedWith reports how a run that must not get going was stopped: its
// exit code and message (standard error, or the summary's error when a run
// started), and whether a run started at all.
func (o runOut) refusedWith() (code int, msg string, started bool) {
	if o.Summary != nil {
		return o.Code, o.Summary.Error, true
	}
	return o.Code, strings.TrimSpace(o.Stderr), false
}
