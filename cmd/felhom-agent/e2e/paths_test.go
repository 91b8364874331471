package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFile waits for path to exist, or fails naming what the process said.
func waitFile(t *testing.T, path string, p *proc, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if !p.running() || time.Now().After(deadline) {
			t.Fatalf("%s did not appear (running %v)\nstderr: %s", path, p.running(), tail(p.stderr.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSystemdDirectories (issue 19, paths): with no state_dir and no
// socket set, serve keeps its state in $STATE_DIRECTORY and its socket in
// $RUNTIME_DIRECTORY, as systemd's StateDirectory= and RuntimeDirectory=
// give them, and the CLI finds the agent through the same variable. The
// host is a simulator served over TLS, configured as a real one (serve
// --sim keeps apart from these directories: TestSimDirectories).
func TestSystemdDirectories(t *testing.T) {
	t.Parallel()
	requireServe(t)
	_, srv, _ := inProcSim(t, 0, 0, 0)
	base := t.TempDir()
	st, rt := filepath.Join(base, "state"), filepath.Join(base, "run")
	if err := os.Mkdir(rt, 0o750); err != nil {
		t.Fatal(err)
	}
	env := []string{"STATE_DIRECTORY=" + st, "RUNTIME_DIRECTORY=" + rt}
	p := startProc(t, "serve (systemd)", serverEnv(srv, env...), "--playbooks", playbooksDir, "serve", "--listen", "")
	waitFile(t, filepath.Join(rt, "agent.sock"), p, time.Minute)
	if _, err := os.Stat(filepath.Join(st, "runs.db")); err != nil {
		t.Errorf("the run store is not in $STATE_DIRECTORY: %v", err)
	}
	ls := runCmd(t, time.Minute, env, "playbooks")
	if ls.Code != 0 || !strings.Contains(ls.Stdout, "selftest") {
		t.Errorf("playbooks with RUNTIME_DIRECTORY set: exit %d\n%s%s", ls.Code, ls.Stdout, ls.Stderr)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("serve exit %d\n%s", code, tail(p.stderr.String(), 2000))
	}
}

// TestUserDirectories (issue 19, paths): a user who cannot write
// /var/lib/felhom-agent and /run/felhom-agent gets `serve` going in
// $XDG_STATE_HOME and $XDG_RUNTIME_DIR, and is told where; the user's CLI
// finds that agent. The host is a simulator served over TLS, configured
// as a real one. Needs root (to run the binary as nobody).
func TestUserDirectories(t *testing.T) {
	t.Parallel()
	requireServe(t)
	if os.Geteuid() != 0 {
		skip(t, "needs root to run the agent as another user")
	}
	_, srv, _ := inProcSim(t, 0, 0, 0)
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // t.TempDir's are private
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The binary where nobody may run it (the built one's directory is
	// private).
	bin := filepath.Join(base, "felhom-agent")
	copyFile(t, agentBin, bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	xrt := filepath.Join(base, "xdg-run")
	for _, d := range []string{home, xrt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	env := serverEnv(srv, "HOME="+home, "XDG_RUNTIME_DIR="+xrt)
	asNobody := func(ctx context.Context, stdout, stderr io.Writer, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = cleanEnv(env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Pdeathsig: syscall.SIGKILL}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serr := newStream()
	serve := asNobody(ctx, io.Discard, serr, "--playbooks", playbooksDir, "serve", "--listen", "")
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	sock := filepath.Join(xrt, "felhom-agent", "agent.sock")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve as nobody exited (%v)\n%s", err, tail(serr.String(), 2000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s\n%s", sock, tail(serr.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	state := filepath.Join(home, ".local", "state", "felhom-agent")
	if _, err := os.Stat(filepath.Join(state, "runs.db")); err != nil {
		t.Errorf("the run store is not in the user's state directory: %v", err)
	}
	for _, want := range []string{"using the per-user state directory " + state, "using the per-user runtime directory " + filepath.Dir(sock)} {
		if !strings.Contains(serr.String(), want) {
			t.Errorf("serve's log does not say %q:\n%s", want, tail(serr.String(), 2000))
		}
	}
	var out, errb strings.Builder
	ls := asNobody(ctx, &out, &errb, "playbooks")
	if err := ls.Run(); err != nil || !strings.Contains(out.String(), "selftest") {
		t.Errorf("the user's playbooks command did not find the agent: %v\n%s%s", err, out.String(), errb.String())
	}
	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve as nobody: %v\n%s", err, tail(serr.String(), 2000))
		}
	case <-time.After(time.Minute):
		t.Fatal("serve as nobody did not stop")
	}
	record(t, "serve as a user", "state in %s, socket %s", state, sock)
}

// TestSimDirectories: `serve --sim` with no state_dir and no socket set
// never takes the real host agent's directories — not systemd's, not the
// system's (the test runs as root when it can) — but the user's
// felhom-agent-sim ones, making the socket's directory (mode 0700), and
// says where; the CLI reaches it with --socket.
func TestSimDirectories(t *testing.T) {
	t.Parallel()
	requireServe(t)
	base := t.TempDir()
	sysState, sysRun := filepath.Join(base, "sys-state"), filepath.Join(base, "sys-run")
	xst, xrt := filepath.Join(base, "xdg-state"), filepath.Join(base, "xdg-run")
	env := []string{"STATE_DIRECTORY=" + sysState, "RUNTIME_DIRECTORY=" + sysRun, "XDG_STATE_HOME=" + xst, "XDG_RUNTIME_DIR=" + xrt}
	p := startProc(t, "serve --sim", env, "--playbooks", playbooksDir, "serve", "--sim", "--listen", "")
	sock := filepath.Join(xrt, "felhom-agent-sim", "agent.sock")
	waitFile(t, sock, p, time.Minute)
	state := filepath.Join(xst, "felhom-agent-sim")
	if _, err := os.Stat(filepath.Join(state, "runs.db")); err != nil {
		t.Errorf("the simulated host's run store is not in %s: %v", state, err)
	}
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory %s: %v, %v; want it made, mode 0700", filepath.Dir(sock), fi, err)
	}
	for _, d := range []string{sysState, sysRun} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("serve --sim made the real agent's directory %s", d)
		}
	}
	for _, want := range []string{"using its own state directory " + state, "--socket " + sock} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("serve's log does not say %q:\n%s", want, tail(p.stderr.String(), 2000))
		}
	}
	ls := runCmd(t, time.Minute, nil, "playbooks", "--socket", sock)
	if ls.Code != 0 || !strings.Contains(ls.Stdout, "selftest") {
		t.Errorf("playbooks --socket %s: exit %d\n%s%s", sock, ls.Code, ls.Stdout, ls.Stderr)
	}
	// Without --socket the CLI asks the real agent's socket, which nothing
	// serves, and is told where the simulated host's agent is.
	ls = runCmd(t, time.Minute, env, "playbooks")
	if ls.Code == 0 || !strings.Contains(ls.Stderr, "is the agent running?") || !strings.Contains(ls.Stderr, "add --socket "+sock) {
		t.Errorf("playbooks without --socket: exit %d\n%s%s; want refused, pointing at %s", ls.Code, ls.Stdout, ls.Stderr, sock)
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("serve exit %d\n%s", code, tail(p.stderr.String(), 2000))
	}
}

// TestManPage (issue 19): the binary prints the shipped manual page,
// deploy/felhom-agent.1, byte for byte, and man renders it.
func TestManPage(t *testing.T) {
	t.Parallel()
	r := runCmd(t, time.Minute, nil, "man")
	want, err := os.ReadFile(filepath.Join(playbooksDir, "..", "deploy", "felhom-agent.1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 0 || r.Stdout != string(want) {
		t.Fatalf("felhom-agent man: exit %d, %d bytes; want deploy/felhom-agent.1 (%d bytes)\n%s", r.Code, len(r.Stdout), len(want), r.Stderr)
	}
	manBin, err := exec.LookPath("man")
	if err != nil {
		skip(t, "man is not installed: the page is not rendered")
		return
	}
	page := filepath.Join(t.TempDir(), "felhom-agent.1")
	if err := os.WriteFile(page, want, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(manBin, "-l", page)
	cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=100")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "felhom-agent - Felhom host agent") || !strings.Contains(string(out), "runs follow <id>") {
		t.Errorf("man -l: %v\n%s", err, tail(string(out), 1500))
	}
}

// TestStartErrorNamesSetting (issue 19, paths): a serve that cannot start
// because of a directory, address or socket says which setting to change.
func TestStartErrorNamesSetting(t *testing.T) {
	t.Parallel()
	requireServe(t)
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	busy := startAgent(t, agentOpts{args: []string{"--sim"}})
	for _, tt := range []struct {
		name, setting string
		args          []string
	}{
		{"state directory is a file", "state_dir (--state-dir, FELHOM_AGENT_STATE_DIR)",
			[]string{"--listen", "", "--state-dir", file, "--socket", filepath.Join(base, "s1.sock")}},
		{"address in use", "listen (--listen, FELHOM_AGENT_LISTEN)",
			[]string{"--listen", busy.listen, "--state-dir", filepath.Join(base, "st2"), "--socket", filepath.Join(base, "s2.sock")}},
		{"socket in a directory that cannot be made", "socket (--socket, FELHOM_AGENT_SOCKET)",
			[]string{"--listen", "", "--state-dir", filepath.Join(base, "st3"), "--socket", filepath.Join(file, "no", "s.sock")}},
	} {
		r := runCmd(t, time.Minute, nil, append([]string{"--playbooks", playbooksDir, "serve", "--sim"}, tt.args...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "the setting to change: "+tt.setting) {
			t.Errorf("%s: exit %d\n%s; want 2 naming %s", tt.name, r.Code, tail(r.Stderr, 1500), tt.setting)
		}
	}
}
