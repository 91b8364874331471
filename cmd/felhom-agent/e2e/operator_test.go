package e2e

import (
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
// stop and the second cancels the runs still going at once, instead of
// after the hour of grace.
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
	record(t, "second Ctrl-C on serve with 1h grace", "stopped in %s, the run cancelled", took.Round(time.Millisecond))

	a.restart(t)
	r := a.run(t, run.ID)
	if r.Status != "cancelled" || !strings.Contains(r.Error, "shutting down") {
		t.Errorf("the run after a hurried stop: %s %q; want cancelled by the shutdown", r.Status, r.Error)
	}
	a.stop(t)
}
