package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spinPlaybooks is a playbooks directory with one playbook that runs
// until it is cancelled.
func spinPlaybooks(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := "def run(ctx):\n    while True:\n        pass\n\nplaybook(name = \"spin\", run = run)\n"
	if err := os.WriteFile(filepath.Join(dir, "spin.star"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestInterrupts: Ctrl-C on `runs follow` detaches (exit 0, the run goes
// on, and it says so); on `serve`, the first Ctrl-C starts the graceful
// stop and the second interrupts the runs still going at once, instead of
// after the hour of grace (never undoing them): at the next start a run
// that does not resume and made no call ends failed, interrupted.
func TestInterrupts(t *testing.T) {
	a := startAgent(t, agentOpts{playbooks: spinPlaybooks(t), args: []string{"--sim", "--shutdown-grace", "1h"}})
	run := a.startRun(t, "spin", nil)

	follow := startProc(t, "runs follow", nil, "runs", "follow", "--socket", a.socket, run.ID)
	if _, err := follow.stdout.waitFor(follow.done, 30*time.Second, func(s string) (string, bool) {
		return s, strings.Contains(s, "run triggered")
	}); err != nil {
		t.Fatalf("runs follow printed no log: %v", err)
	}
	if err := follow.signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := follow.wait(t, 30*time.Second); code != 0 || !strings.Contains(follow.stderr.String(), "detached; run "+run.ID+" goes on") {
		t.Errorf("runs follow after Ctrl-C: exit %d, stderr %q; want 0 and the run named", code, follow.stderr.String())
	}
	if r := a.run(t, run.ID); r.Status != "running" {
		t.Errorf("after detaching, the run is %s; want running", r.Status)
	}

	began := time.Now()
	if err := a.proc.signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if _, err := a.proc.stderr.waitFor(a.proc.done, 30*time.Second, func(s string) (string, bool) {
		return s, strings.Contains(s, "interrupt again")
	}); err != nil {
		t.Fatalf("serve did not say how to hurry: %v", err)
	}
	if err := a.proc.signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := a.proc.wait(t, 60*time.Second); code != 0 {
		t.Errorf("serve after two Ctrl-C: exit %d; want 0\n%s", code, tail(a.proc.stderr.String(), 2000))
	}
	took := time.Since(began)
	record(t, "second Ctrl-C on serve with 1h grace", "stopped in %s, the run interrupted", took.Round(time.Millisecond))

	a.restart(t)
	r := a.run(t, run.ID)
	r = a.waitRun(t, run.ID, 30*time.Second, "to end after the restart", finished)
	if r.Status != "failed" || r.ErrorKind != "interrupted" || !strings.Contains(r.Error, "the agent stopped while the run was running") {
		t.Errorf("the run after a hurried stop and a restart: %s %s %q; want failed, interrupted by the stop", r.Status, r.ErrorKind, r.Error)
	}
	a.stop(t)
}

// TestLastOutcomeMetrics: felhom_run_last_success_timestamp_seconds and
// felhom_run_last_status say how each playbook's runs last ended, and say
// it again after a restart, from the run store.
func TestLastOutcomeMetrics(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"ok.star":    "def run(ctx):\n    return 1\n\nplaybook(name = \"ok\", run = run)\n",
		"fails.star": "def run(ctx):\n    fail(\"disk on fire\")\n\nplaybook(name = \"fails\", run = run)\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, agentOpts{playbooks: dir, args: []string{"--sim"}})
	before := time.Now()
	for _, pb := range []string{"ok", "fails"} {
		r := a.startRun(t, pb, nil)
		a.waitRun(t, r.ID, 30*time.Second, "to finish", finished)
	}
	check := func(when string) {
		m := a.metrics(t)
		for _, want := range []string{
			`felhom_run_last_status{playbook="ok",status="succeeded"} 1`,
			`felhom_run_last_status{playbook="ok",status="failed"} 0`,
			`felhom_run_last_status{playbook="fails",status="failed"} 1`,
			`felhom_run_last_status{playbook="fails",status="succeeded"} 0`,
			`felhom_run_last_success_timestamp_seconds{playbook="ok"} `,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("%s: /metrics lacks %s", when, want)
			}
		}
		if strings.Contains(m, `felhom_run_last_success_timestamp_seconds{playbook="fails"}`) {
			t.Errorf("%s: a playbook that never succeeded has a last success", when)
		}
		for _, line := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(line, `felhom_run_last_success_timestamp_seconds{playbook="ok"} `); ok {
				var ts float64
				if _, err := fmt.Sscan(v, &ts); err != nil || ts < float64(before.Unix()) || ts > float64(time.Now().Unix()+1) {
					t.Errorf("%s: last success of ok = %s; want between the start of the test and now", when, v)
				}
			}
		}
	}
	check("after the runs")
	if code := a.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	a.restart(t)
	check("after a restart")
	a.stop(t)
}
