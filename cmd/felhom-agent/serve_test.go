package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

func TestServeConfigKeys(t *testing.T) {
	// Every key of the shipped example must be read by some flag (the
	// resolver refuses the file otherwise), and serve's land where they
	// belong. Parsing only: nothing is served.
	var cli agentCLI
	p, err := newAgentKong(&cli, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Installed as the example says (mode 0640: it holds the token); the
	// checkout's 0644 copy is refused, as TestConfigFileMode shows.
	example, err := os.ReadFile("../../deploy/agent.example.json")
	if err != nil {
		t.Fatal(err)
	}
	installed := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(installed, example, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := parse(p, []string{"--config", installed, "serve"}); err != nil {
		t.Fatalf("the example configuration does not parse: %v", err)
	}
	s := cli.Serve
	if s.Listen != "127.0.0.1:8787" || s.Socket != "/run/felhom-agent/agent.sock" || s.StateDir != "/var/lib/felhom-agent" ||
		s.ShutdownGrace != time.Minute || s.RunsKeep != 10000 || s.RunsMaxAge != 2160*time.Hour {
		t.Errorf("serve flags from the example = %+v", s)
	}
	h, err := s.hotConfig(&cli.Globals)
	if err != nil {
		t.Fatal(err)
	}
	if ids := h.HubKeys.IDs(); len(ids) != 1 || ids[0] != "hub-2026" || h.Retention.KeepLast != 10000 {
		t.Errorf("hot config from the example = %v %+v", ids, h.Retention)
	}
}

func TestParseHubKeys(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	b64 := base64.StdEncoding.EncodeToString(pub)
	for _, tt := range []struct {
		in   string
		ids  string
		fail string
	}{
		{"", "", ""},
		{`{"a": "` + b64 + `", "b": "` + b64 + `"}`, "a b", ""},
		{"a=" + b64 + ",b=" + b64, "a b", ""},
		{`{"a": 5}`, "", "object of key id"},
		{"a=" + b64[:10], "", "hub keys"},
		{`{"a": "` + b64[:10] + `"}`, "", "hub keys"},
	} {
		keys, err := parseHubKeys(tt.in)
		switch {
		case tt.fail != "" && (err == nil || !strings.Contains(err.Error(), tt.fail)):
			t.Errorf("parseHubKeys(%.30q) = %v; want an error about %q", tt.in, err, tt.fail)
		case tt.fail == "" && (err != nil || strings.Join(keys.IDs(), " ") != tt.ids):
			t.Errorf("parseHubKeys(%.30q) = %v, %v; want ids %q", tt.in, keys.IDs(), err, tt.ids)
		case err != nil && strings.Contains(err.Error(), b64[:10]):
			t.Errorf("parseHubKeys error %q quotes key material", err)
		}
	}
}

func TestServeSim(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ver.star"), []byte(`def run(ctx):
    return proxmox.version().version

playbook(name = "ver", run = run)
`), 0o644); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "s")
	pub, _, _ := ed25519.GenerateKey(nil)
	t.Setenv("FELHOM_AGENT_HUB_KEYS", "hub-1="+base64.StdEncoding.EncodeToString(pub))

	saved := newServeParser
	defer func() { newServeParser = saved }()
	newServeParser = func() (*kong.Kong, *Globals, error) {
		var cli agentCLI
		p, err := newAgentKong(&cli, io.Discard, io.Discard)
		return p, &cli.Globals, err
	}

	stderr := new(syncBuffer)
	done := make(chan error, 1)
	go func() {
		_, err := runAgentCLI(t, stderr, "--playbooks", dir, "--log-format=json", "serve", "--sim",
			"--listen=127.0.0.1:0", "--socket="+sock, "--state-dir="+t.TempDir())
		done <- err
	}()
	cl := api.NewClient(sock)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for { // the socket serves once the agent runs, and its signal handlers are set
		if _, err := cl.Playbooks(ctx); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr)
		case <-ctx.Done():
			t.Fatalf("serve never answered: %s", stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}

	run, err := cl.Trigger(ctx, api.TriggerRequest{Playbook: "ver"})
	if err != nil {
		t.Fatal(err)
	}
	if run, err = cl.Follow(ctx, run.ID, func(api.LogLine) error { return nil }); err != nil || run.Status != "succeeded" || !strings.HasPrefix(string(run.Result), `"8.`) {
		t.Errorf("run against the simulator = %+v, %v; want the simulated PVE version", run, err)
	}
	if !strings.Contains(stderr.String(), `"msg":"agent serving"`) || strings.Contains(stderr.String(), base64.StdEncoding.EncodeToString(pub)) {
		t.Errorf("agent log lacks the start line, or shows key material:\n%s", stderr)
	}

	// SIGHUP re-reads the configuration; SIGTERM stops gracefully.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(stderr.String(), "configuration reloaded") {
		select {
		case <-ctx.Done():
			t.Fatalf("SIGHUP did not reload:\n%s", stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("serve did not stop on SIGTERM")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after the stop: %v", err)
	}
}
