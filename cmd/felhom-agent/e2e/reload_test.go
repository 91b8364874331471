package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestHotReloadKeepsLastGood: serve loads reload.star (v1); each broken
// version saved over it (testdata/reload, first line "### REGEXP" of the
// diagnostic) is refused with its file:line:col while v1 keeps serving new
// runs; a good v2 then replaces it. Saves are editors' write-then-rename.
func TestHotReloadKeepsLastGood(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "playbooks")
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "reload"))); err != nil {
		t.Fatal(err)
	}
	// Only reload.star is a playbook in the served root.
	variants, err := filepath.Glob(filepath.Join(root, "*.star"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string][]byte{}
	for _, v := range variants {
		b, err := os.ReadFile(v)
		if err != nil {
			t.Fatal(err)
		}
		sources[strings.TrimSuffix(filepath.Base(v), ".star")] = b
		os.Remove(v)
	}
	outside, _ := os.ReadFile(filepath.Join("testdata", "outside.star"))
	if err := os.WriteFile(filepath.Join(dir, "outside.star"), outside, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "reload.star")
	if err := os.WriteFile(target, sources["good_v1"], 0o644); err != nil {
		t.Fatal(err)
	}

	a := startAgent(t, agentOpts{env: sim.env(), playbooks: root})
	pb := waitPlaybook(t, a, "reload", "v1 to load", func(p api.Playbook) bool { return p.Version != "" && p.LoadError == "" })
	v1 := pb.Version
	checkResult(t, a, "reload", `"v1"`)

	var latencies []time.Duration
	refused := 0
	for name, src := range sources {
		if strings.HasPrefix(name, "good_") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			first, _, _ := strings.Cut(string(src), "\n")
			re := regexp.MustCompile(strings.TrimPrefix(first, "### "))
			saved := time.Now()
			saveAtomic(t, target, src)
			p := waitPlaybook(t, a, "reload", "the broken save to be refused", func(p api.Playbook) bool { return re.MatchString(p.LoadError) })
			latencies = append(latencies, time.Since(saved))
			if !positionRe.MatchString(p.LoadError) {
				t.Errorf("load error %q has no file:line:col", p.LoadError)
			}
			if p.Version != v1 {
				t.Errorf("serving version %s; want the last good %s", p.Version, v1)
			}
			checkResult(t, a, "reload", `"v1"`)
			// The operator who triggers it is told the edit is not what runs.
			tr := runCmd(t, time.Minute, nil, "trigger", "reload", "--socket", a.socket)
			if tr.Code != 0 || !strings.Contains(tr.Stderr, "warning: reload.star does not load, so run r-") ||
				!strings.Contains(tr.Stderr, "runs its last good version "+v1) {
				t.Errorf("trigger of a playbook whose file does not load: exit %d\n%s%s; want a warning naming the last good version", tr.Code, tr.Stdout, tr.Stderr)
			}
			code, body := a.healthz(t)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, `"load_errors":1`) {
				t.Errorf("/healthz with a refused file: HTTP %d %s; want 503 counting 1 load error", code, body)
			}
			refused++
			// Put v1 back, so each broken version is a change from good.
			saveAtomic(t, target, sources["good_v1"])
			waitPlaybook(t, a, "reload", "v1 to be back", func(p api.Playbook) bool { return p.LoadError == "" })
		})
	}

	saved := time.Now()
	saveAtomic(t, target, sources["good_v2"])
	p := waitPlaybook(t, a, "reload", "v2 to replace v1", func(p api.Playbook) bool { return p.LoadError == "" && p.Version != v1 })
	took := time.Since(saved)
	checkResult(t, a, "reload", `"v2"`)
	if code, body := a.healthz(t); code != http.StatusOK {
		t.Errorf("/healthz after the good save: HTTP %d %s", code, body)
	}
	record(t, "broken saves refused with file:line:col, last good kept / max save-to-refusal / good save-to-active",
		"%d / %v / %v (version %s)", refused, maxDuration(latencies).Round(time.Millisecond), took.Round(time.Millisecond), short(p.Version))
}

// waitPlaybook polls the local API's playbook list until name's entry
// satisfies cond.
func waitPlaybook(t testing.TB, a *agent, name, what string, cond func(api.Playbook) bool) api.Playbook {
	t.Helper()
	var last api.Playbook
	eventually(t, time.Minute, what, func() (bool, string) {
		code, b := a.local(t, "GET", "/v1/playbooks", nil)
		if code != http.StatusOK {
			return false, fmt.Sprintf("HTTP %d", code)
		}
		var out struct {
			Playbooks []api.Playbook `json:"playbooks"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		for _, p := range out.Playbooks {
			if p.Name == name {
				last = p
				return cond(p), fmt.Sprintf("version %q, load error %q", p.Version, p.LoadError)
			}
		}
		return false, "not listed"
	})
	return last
}

// checkResult runs playbook through the local API and compares its result
// ("" accepts any result).
func checkResult(t testing.TB, a *agent, playbook, want string) {
	t.Helper()
	r := a.startRun(t, playbook, nil)
	r = a.waitRun(t, r.ID, time.Minute, "to finish", finished)
	if r.Status != "succeeded" || (want != "" && string(r.Result) != want) {
		t.Errorf("run of %s: %s, result %s (%s); want succeeded with %s", playbook, r.Status, r.Result, r.Error, want)
	}
}

// saveAtomic saves data the way editors do: a temporary file renamed over
// the target.
func saveAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
