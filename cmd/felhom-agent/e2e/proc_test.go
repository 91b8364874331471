package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stream is a process's standard output or error: kept whole for the
// secret scan, readable while the process runs, and waitable (a write
// wakes whoever waits for a line or a pattern — no polling sleeps).
type stream struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// String returns everything written so far.
func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// snapshot returns the text and the channel closed on the next write.
func (s *stream) snapshot() (string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String(), s.changed
}

// waitFor waits until match finds what it wants in the text written so
// far, the process ends (done closes), or timeout passes.
func (s *stream) waitFor(done <-chan struct{}, timeout time.Duration, match func(string) (string, bool)) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		text, changed := s.snapshot()
		if got, ok := match(text); ok {
			return got, nil
		}
		select {
		case <-changed:
		case <-done:
			text, _ := s.snapshot()
			if got, ok := match(text); ok {
				return got, nil
			}
			return "", errors.New("the process ended")
		case <-deadline.C:
			return "", fmt.Errorf("nothing after %v", timeout)
		}
	}
}

// firstLine matches the first complete line.
func firstLine(text string) (string, bool) {
	line, _, ok := strings.Cut(text, "\n")
	return line, ok
}

// proc is one felhom-agent process started by a test. Its process group is
// killed when the test ends, whatever state it is in.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *stream
	stderr *stream
	done   chan struct{} // closed once Wait returned
	err    error         // Wait's error, set before done closes
	cancel context.CancelFunc
	outCap *capture // for the secret scan
	errCap *capture
}

// cleanEnv is the environment without any FELHOM_AGENT_* variable of the
// caller, so the suite sees only the configuration it sets.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FELHOM_AGENT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startProc starts the agent binary with args and env (added to a clean
// environment), capturing its output for the test and the secret scan.
func startProc(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = cleanEnv(env...)
	// Own process group (killed whole on cleanup); killed too if the test
	// process dies first, so a timed-out suite leaves no agent behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Cancel kills the whole group: the agent and anything it started.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	p := &proc{name: name, cmd: cmd, stdout: newStream(), stderr: newStream(), done: make(chan struct{}), cancel: cancel}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	p.outCap = captureStream(t, name+" stdout", p.stdout)
	p.errCap = captureStream(t, name+" stderr", p.stderr)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cancel()
		<-p.done
		scanOwned(t, p)
	})
	return p
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process (only it, not its group: the agent
// decides what its children get).
func (p *proc) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// kill9 kills the process group with SIGKILL and waits for the end.
func (p *proc) kill9(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.done
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\nstderr: %s", p.name, timeout, tail(p.stderr.String(), 2000))
	}
	return exitCode(p.err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// result is a finished command: its output, exit code and peak memory.
type result struct {
	Stdout, Stderr string
	Code           int
	Took           time.Duration
	MaxRSSKB       int64
}

// runCmd runs the agent with args to completion (at most timeout).
func runCmd(t testing.TB, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	start := time.Now()
	p := startProc(t, "felhom-agent "+command(args), env, args...)
	code := p.wait(t, timeout)
	r := result{Stdout: p.stdout.String(), Stderr: p.stderr.String(), Code: code, Took: time.Since(start)}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKB = ru.Maxrss
	}
	return r
}

// command names the subcommand in args (the first word that is neither a
// flag nor a global flag's value), for labels.
func command(args []string) string {
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--playbooks" || args[i] == "--config":
			i++
		case !strings.HasPrefix(args[i], "-"):
			return args[i]
		}
	}
	return "(no command)"
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
