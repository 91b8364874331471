package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/agent"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// agentCLI is the part of the command line that serve and the client
// commands make up, parsed as the real CLI parses it (configuration file,
// environment) so these tests do not depend on where cli.go mounts them.
type agentCLI struct {
	Globals
	Serve     ServeCmd     `cmd:""`
	Runs      RunsCmd      `cmd:""`
	Trigger   TriggerCmd   `cmd:""`
	Playbooks PlaybooksCmd `cmd:""`
}

// syncBuffer is a bytes.Buffer safe for the agent's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newAgentKong is newParser for agentCLI.
func newAgentKong(cli *agentCLI, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(cli, kong.Name("felhom-agent"), kong.DefaultEnvars("FELHOM_AGENT"),
		kong.Configuration(jsonConfig), kong.Writers(stdout, stderr), cliVars(),
		kong.Exit(func(code int) { panic(kongExit{code}) }))
}

// runAgentCLI parses args and runs the selected command, returning what it
// printed on standard output and its error.
func runAgentCLI(t *testing.T, stderr *syncBuffer, args ...string) (string, error) {
	t.Helper()
	var cli agentCLI
	var out bytes.Buffer
	if stderr == nil {
		stderr = new(syncBuffer)
	}
	p, err := newAgentKong(&cli, &out, stderr)
	if err != nil {
		t.Fatal(err)
	}
	kctx, exited, err := parse(p, args)
	if err != nil {
		return out.String(), err
	}
	if exited != nil {
		t.Fatalf("%q exited %d: %s", args, exited.code, out.String())
	}
	cli.Globals.stdout, cli.Globals.stderr = &out, stderr
	err = kctx.Run(&cli.Globals)
	return out.String(), err
}

// serveAgent serves playbooks with the runtime directly and returns the
// socket path.
func serveAgent(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sockDir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "s")
	// A step budget no test reaches: a spinning run lives until it is
	// cancelled, not until it has taken 10,000,000 steps (0.4 s, which a
	// loaded machine lets pass before the test is done with it).
	a, err := agent.New(agent.Config{PlaybooksDir: dir, StateDir: t.TempDir(), Socket: sock,
		NoWatch: true, ShutdownGrace: -1, Logger: slog.New(slog.DiscardHandler), Engine: engine.Config{MaxSteps: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	// Run serves the socket after loading; a request that succeeds proves it.
	cl := api.NewClient(sock)
	defer cl.Close()
	for {
		if _, err := cl.Playbooks(ctx); err == nil {
			return sock
		}
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return exitUsage
	}
	return exitOK
}

func TestRemoteCommands(t *testing.T) {
	sock := serveAgent(t, map[string]string{
		"hello.star": `def run(ctx):
    log.info("hello", n = ctx.params.n)
    return {"n": ctx.params.n, "names": ctx.params.names}

playbook(name = "hello", run = run, schedule = "TZ=UTC 0 3 * * *", triggers = ["greet"],
         params = {"n": param.int(default = 1), "names": param.list(param.string(), default = []), "flag": param.bool(default = False)})
`,
		"fails.star":  "def run(ctx):\n    fail(\"no luck\")\n\nplaybook(name = \"fails\", run = run)\n",
		"spin.star":   "def run(ctx):\n    while True:\n        pass\n\nplaybook(name = \"spin\", run = run)\n",
		"broken.star": "def run(ctx)\n",
	})
	s := "--socket=" + sock

	out, err := runAgentCLI(t, nil, "trigger", "hello", s, "-p", "n=3", "-p", "names=a,b", "-p", "flag=true", "--follow")
	if err != nil || !strings.Contains(out, "started run r-") || !strings.Contains(out, "INFO  hello n=3") || !strings.Contains(out, "SUCCEEDED hello") {
		t.Fatalf("trigger --follow: %v\n%s", err, out)
	}
	id := strings.Fields(strings.TrimPrefix(out, "started run "))[0]

	out, err = runAgentCLI(t, nil, "runs", s)
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "succeeded") || !strings.HasPrefix(out, "ID ") {
		t.Errorf("runs: %v\n%s", err, out)
	}
	out, err = runAgentCLI(t, nil, "runs", "list", s, "--status=failed")
	if err != nil || strings.Contains(out, id) {
		t.Errorf("runs list --status=failed lists the succeeded run: %v\n%s", err, out)
	}

	out, err = runAgentCLI(t, nil, "runs", "show", id, s)
	if first, _, _ := strings.Cut(out, "\n"); err != nil || first != "succeeded" ||
		!strings.Contains(out, `result:    {"n":3,"names":["a","b"]}`) || !strings.Contains(out, "hello n=3") {
		t.Errorf("runs show: %v\n%s", err, out)
	}
	out, err = runAgentCLI(t, nil, "runs", "show", id, s, "--json")
	var shown struct {
		Run api.Run       `json:"run"`
		Log []api.LogLine `json:"log"`
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.Run.ID != id || shown.Run.Status != "succeeded" || len(shown.Log) < 3 {
		t.Errorf("runs show --json: %v\n%s", err, out)
	}

	out, err = runAgentCLI(t, nil, "playbooks", s)
	if err != nil || !strings.Contains(out, "hello") || !strings.Contains(out, "TZ=UTC 0 3 * * *") || !strings.Contains(out, "greet") ||
		!strings.Contains(out, "broken.star:2:1:") {
		t.Errorf("playbooks: %v\n%s", err, out)
	}

	out, err = runAgentCLI(t, nil, "trigger", "fails", s, "--follow")
	if exitCode(err) != exitFailed || !strings.Contains(out, "FAILED fails") || !strings.Contains(out, "no luck") {
		t.Errorf("trigger fails --follow: exit %d (%v)\n%s", exitCode(err), err, out)
	}

	out, err = runAgentCLI(t, nil, "trigger", "spin", s, "--json")
	var spin api.Run
	if err != nil || json.Unmarshal([]byte(out), &spin) != nil || spin.Playbook != "spin" {
		t.Fatalf("trigger spin --json: %v\n%s", err, out)
	}
	out, err = runAgentCLI(t, nil, "runs", "cancel", spin.ID, s)
	if err != nil || !strings.Contains(out, "cancelling run "+spin.ID) {
		t.Errorf("runs cancel: %v\n%s", err, out)
	}
	out, err = runAgentCLI(t, nil, "runs", "follow", spin.ID, s)
	if exitCode(err) != exitFailed || !strings.Contains(out, "CANCELLED spin") {
		t.Errorf("runs follow of a cancelled run: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	if _, err := runAgentCLI(t, nil, "runs", "cancel", spin.ID, s); err == nil || !strings.Contains(err.Error(), "already finished") {
		t.Errorf("cancelling a finished run: %v; want a conflict", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"trigger", "nope", s}, "nope"},
		{[]string{"trigger", "hello", s, "-p", "n=abc"}, "params.n: must be int"},
		{[]string{"trigger", "hello", s, "-p", "n"}, "want NAME=VALUE"},
		{[]string{"runs", "show", "r-nope", s}, "not found"},
		{[]string{"runs", "--socket=" + filepath.Join(t.TempDir(), "none")}, "is the agent running?"},
	} {
		if _, err := runAgentCLI(t, nil, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != exitUsage {
			t.Errorf("%q: %v; want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
