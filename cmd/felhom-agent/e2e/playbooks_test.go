package e2e

import (
	"bufio"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bad playbooks: each file of testdata/bad states, in "###" header lines,
// what `check` and `run` must say of it:
//
//	### CMD EXIT "REGEXP"
//
// CMD is check or run; EXIT the exit code; REGEXP (the raw text between the
// first and the last double quote) must match what the command reported:
// for check its output, for a run that printed a summary the summary's
// error, otherwise its standard error. Every expectation of a broken file
// names the file, line and column.

// badSteps is the step budget the suite gives runs of bad playbooks, so an
// endless loop ends in milliseconds.
const badSteps = "1000000"

type expectation struct {
	cmd  string
	code int
	re   *regexp.Regexp
}

var headerRe = regexp.MustCompile(`^### (check|run) (\d+) "(.*)"$`)

// expectations reads the ### header of path.
func expectations(t testing.TB, path string) []expectation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []expectation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "###") {
			break
		}
		m := headerRe.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("%s: malformed header %q", path, line)
		}
		code, _ := strconv.Atoi(m[2])
		re, err := regexp.Compile(m[3])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, expectation{m[1], code, re})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no ### expectations", path)
	}
	return out
}

// badTree copies testdata/bad to DIR/playbooks, puts testdata/outside.star
// at DIR/outside.star (so that a load escaping the root would find a file)
// and links playbooks/lib/escape_link.star to it. It returns the root.
func badTree(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "playbooks")
	if err := os.CopyFS(root, os.DirFS(filepath.Join("testdata", "bad"))); err != nil {
		t.Fatal(err)
	}
	outside, err := os.ReadFile(filepath.Join("testdata", "outside.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "outside.star"), outside, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "outside.star"), filepath.Join(root, "lib", "escape_link.star")); err != nil {
		t.Fatal(err)
	}
	return root
}

// positionRe is what "reported with its position" means.
var positionRe = regexp.MustCompile(`\.star:\d+:\d+: `)

func TestBadPlaybooks(t *testing.T) {
	t.Parallel()
	root := badTree(t)
	files, err := fs.Glob(os.DirFS(root), "*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad playbooks: %v", err)
	}
	env := []string{"FELHOM_AGENT_RUNTIME_MAX_STEPS=" + badSteps}
	seen := newTally(t, "bad playbooks: files / reports as expected (check, run) / peak RSS MiB", "files", "reports", "peak RSS MiB")
	for _, name := range files {
		t.Run(strings.TrimSuffix(name, ".star"), func(t *testing.T) {
			t.Parallel()
			seen.add("files")
			path := filepath.Join(root, name)
			for _, want := range expectations(t, path) {
				var r result
				var text string
				switch want.cmd {
				case "check":
					r = runCmd(t, runTimeout, env, "--playbooks", root, "check", path)
					text = r.Stdout + r.Stderr
				case "run":
					out := runPlaybook(t, env, root, name, "--sim")
					r = out.result
					text = r.Stderr
					if out.Summary != nil {
						text = out.Summary.Error
						if len(out.Summary.Backtrace) > 64<<10 {
							t.Errorf("%s: the run's backtrace is %d bytes (peak RSS %d MiB); it goes to the run summary and the run record",
								name, len(out.Summary.Backtrace), r.MaxRSSKB>>10)
						}
					}
				}
				if r.Code != want.code {
					t.Errorf("%s: exit %d; want %d\nstdout: %s\nstderr: %s", want.cmd, r.Code, want.code, tail(r.Stdout, 1500), tail(r.Stderr, 1500))
				}
				m := want.re.FindString(text)
				if m == "" {
					t.Errorf("%s: output does not match %q:\n%s", want.cmd, want.re, tail(text, 2000))
					continue
				}
				if want.code != 0 && !positionRe.MatchString(m) {
					t.Errorf("%s: report %q has no file:line:col", want.cmd, m)
				}
				if r.Code == want.code {
					seen.add("reports")
				}
				seen.peak("peak RSS MiB", r.MaxRSSKB>>10)
				t.Logf("%s: exit %d, peak RSS %d MiB: %s", want.cmd, r.Code, r.MaxRSSKB>>10, clipLine(m))
			}
		})
	}
}

// TestPlaybookMemoryBound: a playbook that grows its heap in few steps.
// Issue #6 asks that a huge allocation within the step budget be reported
// with its position; the agent has no memory budget for runs, so this test
// measures what such a run costs and reports it as a finding when nothing
// stops it. (The growth is kept to 256 MiB to spare the shared machine: a
// loop of a few hundred thousand steps could as well take 100 GiB.)
func TestPlaybookMemoryBound(t *testing.T) {
	t.Parallel()
	root := filepath.Join("testdata", "limits")
	const mib, limit = 256, 128
	env := []string{fmt.Sprintf("FELHOM_AGENT_RUNTIME_MAX_MEMORY_MIB=%d", limit)}
	out := runPlaybook(t, env, root, "memory_growth.star", "--sim", "--param", fmt.Sprintf("mib=%d", mib))
	s := out.mustSummary(t)
	record(t, "status / peak RSS of a run growing 256 MiB under a 128 MiB limit", "%s / %d MiB", s.Status, out.MaxRSSKB>>10)
	switch {
	case s.Status != "failed" || s.Kind != "memory":
		t.Errorf("a run growing %d MiB under a %d MiB limit: status %s kind %q; want failed, memory", mib, limit, s.Status, s.Kind)
	case !positionRe.MatchString(s.Error) || !strings.Contains(s.Error, "memory limit exceeded"):
		t.Errorf("stopped without a position or reason: %q", s.Error)
	}
	if out.Code != 1 {
		t.Errorf("exit %d; want 1", out.Code)
	}
}

// TestServeSurvivesBadRuns: the playbooks that fail at run time (endless
// loop, deep recursion, huge allocations, a runtime error) run in serve:
// each run fails with its position, and the agent keeps serving — a good
// run succeeds afterwards.
func TestServeSurvivesBadRuns(t *testing.T) {
	t.Parallel()
	requireServe(t)
	dir := servePlaybooks(t)
	runtimeBad := []string{"runtime_error", "infinite_loop", "deep_recursion", "huge_repeat", "huge_list"}
	for _, name := range runtimeBad {
		b, err := os.ReadFile(filepath.Join("testdata", "bad", name+".star"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".star"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: append(sim.env(), "FELHOM_AGENT_RUNTIME_MAX_STEPS="+badSteps), playbooks: dir})

	largest := 0
	for _, name := range runtimeBad {
		var want *regexp.Regexp
		for _, e := range expectations(t, filepath.Join(dir, name+".star")) {
			if e.cmd == "run" {
				want = e.re
			}
		}
		r := a.startRun(t, strings.ReplaceAll(name, "_", "-"), nil)
		r = a.waitRun(t, r.ID, time.Minute, "to finish", finished)
		if r.Status != "failed" || !want.MatchString(r.Error) {
			t.Errorf("%s: %s, error %q; want failed matching %q", name, r.Status, clipLine(r.Error), want)
		}
		_, rec := a.local(t, "GET", "/v1/runs/"+r.ID, nil)
		_, logs := a.local(t, "GET", "/v1/runs/"+r.ID+"/logs", nil)
		size := len(rec) + len(logs)
		largest = max(largest, size)
		if size > 1<<20 {
			t.Errorf("%s: one failed run is %d bytes in serve's run store and log (GET /v1/runs/{id} %d + /logs %d)", name, size, len(rec), len(logs))
		}
	}
	checkResult(t, a, "burst", "")
	if code, body := a.healthz(t); code != http.StatusOK {
		t.Errorf("/healthz after the bad runs: HTTP %d %s", code, body)
	}
	record(t, "bad runs in serve: failed with position / largest run record with its log / agent peak RSS", "%d / %d KiB / %d MiB",
		len(runtimeBad), largest>>10, vmHWM(t, a.proc)>>10)
}
