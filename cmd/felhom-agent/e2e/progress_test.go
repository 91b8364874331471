package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// progressPlaybook backs up the simulator's VM, whose vzdump log prints
// progress lines while it runs.
const progressPlaybook = `
def run(ctx):
    b = proxmox.vzdump(200, storage = "usb-backup")
    return {"volid": b.volid}

playbook(name = "progress", run = run)
`

// TestRunTaskProgress: while `run` waits for an 8-second vzdump, the
// task's log reaches the run's log line by line (read incrementally) with
// the percentage of qemu-server's progress lines — as JSON events with
// --json, and on a terminal as one live status line, rewritten in place and
// gone when the task has finished.
func TestRunTaskProgress(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "8s")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "progress.star"), []byte(progressPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}

	out := runPlaybook(t, sim.env(), dir, "progress.star")
	if s := out.mustSummary(t); s.Status != "succeeded" {
		t.Fatalf("run: %s %s\n%s", s.Status, s.Error, tail(out.Stderr, 3000))
	}
	var lines []string
	var pcts []int
	for _, l := range strings.Split(out.Stderr, "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			UPID     string `json:"upid"`
			Line     *int   `json:"task_line"`
			Progress *int   `json:"progress"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil || rec.Line == nil {
			continue
		}
		if *rec.Line != len(lines)+1 || !strings.Contains(rec.UPID, ":vzdump:200:") {
			t.Errorf("task line %q: number %d, upid %s; want %d of the vzdump of 200", rec.Msg, *rec.Line, rec.UPID, len(lines)+1)
		}
		lines = append(lines, rec.Msg)
		if rec.Progress != nil {
			pcts = append(pcts, *rec.Progress)
		}
	}
	if len(lines) < 10 || !strings.HasPrefix(lines[0], "INFO: starting new backup job: vzdump 200") || lines[len(lines)-1] != "TASK OK" {
		t.Errorf("task lines in the run's log:\n%s\nwant the whole vzdump log", strings.Join(lines, "\n"))
	}
	if len(pcts) < 2 || pcts[0] <= 0 || pcts[0] >= 100 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress %v; want a part-way percentage, then 100", pcts)
	}

	// On a terminal.
	term := runOnTerminal(t, sim.env(), "--playbooks", dir, "run", filepath.Join(dir, "progress.star"))
	if term.code != 0 {
		t.Fatalf("run on a terminal: exit %d\n%q", term.code, term.out)
	}
	if !strings.Contains(term.out, "» vzdump of 200") || !regexp.MustCompile(`» vzdump of 200 +\d{1,2}% `).MatchString(term.out) ||
		!strings.Contains(term.out, "\x1b[1F\x1b[J") {
		t.Errorf("terminal output has no live status line rewritten with a percentage:\n%q", term.out)
	}
	final := playScreen(t, term.out)
	for _, l := range final {
		if strings.HasPrefix(l, "» ") || strings.Contains(l, "INFO: Starting Backup of VM 200") {
			t.Errorf("screen after the run keeps %q; want task lines only in the status line, gone at the end", l)
		}
	}
	if !strings.Contains(strings.Join(final, "\n"), `msg="task finished"`) {
		t.Errorf("screen after the run:\n%s\nwant the task finished line", strings.Join(final, "\n"))
	}
}

// TestFollowTaskProgress: `trigger --follow` (runs follow) of a serving
// agent's run shows the same live status line on a terminal while the run
// waits for its vzdump, from the run log the agent stored, and leaves the
// screen with the plain lines and the run's end.
func TestFollowTaskProgress(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "8s")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "progress.star"), []byte(progressPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: dir})
	term := runOnTerminal(t, nil, "trigger", "progress", "--follow", "--socket", a.socket)
	if term.code != 0 {
		t.Fatalf("trigger --follow on a terminal: exit %d\n%q", term.code, term.out)
	}
	if !regexp.MustCompile(`» vzdump of 200 +\d{1,2}% `).MatchString(term.out) || !strings.Contains(term.out, "\x1b[1F\x1b[J") {
		t.Errorf("follow on a terminal has no live status line with a percentage:\n%q", term.out)
	}
	final := strings.Join(playScreen(t, term.out), "\n")
	if strings.Contains(final, "» ") || strings.Contains(final, "INFO: Starting Backup of VM 200") ||
		!strings.Contains(final, "task finished") || !strings.Contains(final, "SUCCEEDED") {
		t.Errorf("screen after following:\n%s\nwant the plain lines and the run's end, no task lines", final)
	}
}

// termResult is a command run with its standard error on a terminal.
type termResult struct {
	out  string // what the terminal received
	code int
}

// runOnTerminal runs the agent with standard output and error on a new
// pseudo terminal (/dev/ptmx).
func runOnTerminal(t *testing.T, env []string, args ...string) termResult {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo terminal: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = cleanEnv(append(env, "TERM=xterm")...)
	cmd.Stdout, cmd.Stderr = slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var got bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&got, master) // ends with EIO once the child has closed the terminal
		close(copied)
	}()
	err = cmd.Wait()
	<-copied
	captureBytes(t, "on a terminal: "+command(args), got.Bytes())
	code := 0
	if err != nil {
		code = exitCode(err)
	}
	return termResult{out: got.String(), code: code}
}

// playScreen plays terminal output (text, CR LF, CSI n F, CSI J, colour)
// and returns the lines left on the screen.
func playScreen(t *testing.T, out string) []string {
	t.Helper()
	lines := []string{""}
	row := 0
	csi := regexp.MustCompile(`^\x1b\[(\d*)([A-Za-z])`)
	for len(out) > 0 {
		if m := csi.FindStringSubmatch(out); m != nil {
			k, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "F":
				row = max(row-k, 0)
			case "J":
				lines = lines[:row+1]
				lines[row] = ""
			case "m": // colour
			default:
				t.Fatalf("unexpected escape %q", m[0])
			}
			out = out[len(m[0]):]
			continue
		}
		r, size := utf8.DecodeRuneInString(out)
		out = out[size:]
		switch r {
		case '\r':
		case '\n':
			row++
			if row == len(lines) {
				lines = append(lines, "")
			}
		default:
			lines[row] += string(r)
		}
	}
	return lines
}
