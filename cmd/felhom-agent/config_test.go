package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseGlobals parses args with the real parser and returns the globals.
func parseGlobals(t *testing.T, args ...string) (*CLI, error) {
	t.Helper()
	var cli CLI
	var out bytes.Buffer
	p, err := newParser(&cli, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	_, exited, err := parse(p, args)
	if exited != nil {
		t.Fatalf("parse(%q) exited %d: %s", args, exited.code, out.String())
	}
	return &cli, err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testSecret = "0b3c3b7e-1c1e-4a4e-9d7e-5e3f2b1a0c9d"

func TestConfigPrecedence(t *testing.T) {
	cfgFile := writeConfig(t, `{
		"_comment": "keys starting with _ are comments",
		"log_level": "warn",
		"proxmox": {"_endpoint": "ignored too", "endpoint": "https://file:8006", "node": "file-node",
		            "token": "a@pve!t=`+testSecret+`", "timeout": "5s"}
	}`)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		endpoint string
		node     string
	}{
		{"file only", nil, nil, "https://file:8006", "file-node"},
		{"env beats file", map[string]string{"FELHOM_AGENT_PROXMOX_ENDPOINT": "https://env:8006"}, nil, "https://env:8006", "file-node"},
		{"flag beats env", map[string]string{"FELHOM_AGENT_PROXMOX_ENDPOINT": "https://env:8006"},
			[]string{"--proxmox-endpoint=https://flag:8006", "--proxmox-node=flag-node"}, "https://flag:8006", "flag-node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cli, err := parseGlobals(t, append([]string{"--config", cfgFile, "version"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := cli.Proxmox.ClientConfig()
			if err != nil {
				t.Fatalf("ClientConfig: %v", err)
			}
			if cfg.Endpoint != tt.endpoint || cfg.Node != tt.node {
				t.Errorf("endpoint, node = %q, %q; want %q, %q", cfg.Endpoint, cfg.Node, tt.endpoint, tt.node)
			}
			if cfg.Timeout.String() != "5s" || cli.LogLevel != "warn" {
				t.Errorf("timeout, log level = %v, %q; want 5s, warn (from the file)", cfg.Timeout, cli.LogLevel)
			}
		})
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		file string
		args []string
		want []string // substrings of the error
	}{
		{"unknown key", `{"proxmox": {"endpont": "https://x:8006"}}`, nil, []string{`unknown key "proxmox.endpont"`}},
		{"malformed json", `{"proxmox": `, nil, []string{"config"}},
		{"syntax error position", "{\n  \"proxmox\": {\"node\": \"a\",}\n}", nil, []string{"agent.json: line 2, column 27: invalid character '}'"}},
		{"missing everything", `{}`, nil, []string{"proxmox.endpoint: is required", "proxmox.node: is required", "proxmox.token: is required"}},
		{"malformed endpoint", `{"proxmox": {"endpoint": "http://x", "node": "n", "token": "a@pve!t=s"}}`, nil, []string{"proxmox.endpoint", "must use https"}},
		{"bad token", `{"proxmox": {"endpoint": "https://x:8006", "node": "n", "token": "nonsense-` + testSecret + `"}}`, nil, []string{"proxmox.token"}},
		{"bad fingerprint", `{"proxmox": {"endpoint": "https://x:8006", "node": "n", "token": "a@pve!t=s", "fingerprint": "zz"}}`, nil, []string{"proxmox.fingerprint"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, err := parseGlobals(t, append([]string{"--config", writeConfig(t, tt.file), "version"}, tt.args...)...)
			if err == nil {
				_, err = cli.Proxmox.ClientConfig()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error leaks the token secret: %q", err)
			}
		})
	}
}

func TestVersionAndHelpExitCodes(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != exitOK || !strings.HasPrefix(out.String(), "felhom-agent ") {
		t.Errorf("version: code %d, out %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--help"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "Usage: felhom-agent") {
		t.Errorf("--help: code %d, out %q", code, out.String())
	}
	if code := run([]string{"no-such-command"}, &out, &errOut); code != exitUsage {
		t.Errorf("unknown command: code %d; want %d", code, exitUsage)
	}
}

// TestConfigFileMode: a file holding the token is refused when others may
// read it or its group may write it, and any file others may write is
// refused — like ssh with a private key. The messages say what to do and
// never show the token.
func TestConfigFileMode(t *testing.T) {
	withToken := `{"proxmox": {"endpoint": "https://x:8006", "node": "n", "token": "a@pve!t=` + testSecret + `"}}`
	noToken := `{"log_level": "warn"}`
	tests := []struct {
		body string
		mode os.FileMode
		want string // "" accepted
	}{
		{withToken, 0o600, ""},
		{withToken, 0o640, ""},
		{withToken, 0o400, ""},
		{withToken, 0o644, "is readable by others (mode 0644); chmod 0640"},
		{withToken, 0o604, "is readable by others"},
		{withToken, 0o660, "is writable by its group (mode 0660)"},
		{withToken, 0o602, "is writable by others"},
		{noToken, 0o644, ""},
		{noToken, 0o664, ""},
		{noToken, 0o666, "is writable by others (mode 0666)"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := writeConfig(t, tt.body)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := parseGlobals(t, "--config", path, "version")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("mode %04o: %v; want accepted", tt.mode, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path)):
				t.Errorf("mode %04o: error %v; want one naming the file and %q", tt.mode, err, tt.want)
			case err != nil && strings.Contains(err.Error(), testSecret):
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}

// TestConfigFileChecked: every fixture in testdata/config is refused by
// every command that reads the file — version, check, run and serve alike
// — with the exact problems, each naming the file and the dotted key (and
// the type or range wanted), never a value of a string setting.
func TestConfigFileChecked(t *testing.T) {
	const wantDur = `expected a duration such as "30s", got `
	tests := []struct{ fixture, want string }{
		{"timeout-number", `proxmox.timeout: ` + wantDur + `30`},
		{"timeout-not-duration", `proxmox.timeout: ` + wantDur + `"thirty"`},
		{"timeout-zero", `proxmox.timeout: want a duration above zero such as "30s", got "0s"`},
		{"retry-budget-negative", `proxmox.read_retry_budget: want zero or a positive duration such as "30s", got "-1s"`},
		{"max-concurrent-abc", `runtime.max_concurrent: want a whole number, got a string`},
		{"max-concurrent-quoted", `runtime.max_concurrent: want a whole number, got a string`},
		{"max-concurrent-negative", `runtime.max_concurrent: want at least 1, got -5`},
		{"max-concurrent-zero", `runtime.max_concurrent: want at least 1, got 0`},
		{"max-concurrent-fraction", `runtime.max_concurrent: want a whole number, got 1.5`},
		{"max-steps-negative", `runtime.max_steps: want at least 1, got -5`},
		{"max-memory-negative", `runtime.max_memory_mib: want 0 or more, got -1`},
		{"enabled-yes", `privileged.enabled: want true or false, got a string`},
		{"enabled-array", `privileged.enabled: want true or false, got an array`},
		{"proxmox-string", `proxmox: want an object, got a string`},
		{"notify-smtp-number", `notify.smtp: want an object, got a number`},
		{"hub-keys-array", `hub.keys: want an object of key id to base64 public key, got an array`},
		{"hub-keys-number-value", `hub.keys: want an object of key id to base64 public key, got a number for a key`},
		{"hub-keys-bad-base64", `hub.keys: key id "hub-2026": public key is not standard base64: illegal base64 data at input byte 3`},
		{"log-level-unknown", `log_level: want one of "debug", "info", "warn", "error", got "verbose"`},
		{"scratch-vmids-strings", `safety.scratch_vmids: want a list of whole numbers, got a string at [0]`},
		{"smtp-to-number", `notify.smtp.to: want a list of strings, got a number`},
		{"min-backups-zero", `safety.min_backups: want at least 1, got 0`},
		{"health-interval-zero", `health_interval: want a duration above zero such as "30s", got "0s"`},
		{"shutdown-grace-negative", `shutdown_grace: want zero or a positive duration such as "30s", got "-1s"`},
		{"runs-keep-negative", `runs.keep: want 0 or more, got -1`},
		{"runs-max-age-number", `runs.max_age: ` + wantDur + `90`},
		{"runs-queue-max-zero", `runs.queue_max: want at least 1, got 0`},
		{"runs-log-max-zero", "runs.log_line_max_kib: want at least 1, got 0\n" +
			"runs.log_max_mib: want at least 1, got 0\nruns.result_max_kib: want at least 1, got 0"},
		{"guest-api-rate-zero", "guest_api.burst: want at least 1, got 0\nguest_api.rate: want more than 0, got 0"},
		{"hub-timeouts-zero", `hub.plan_timeout: want a duration above zero such as "30s", got "-1m0s"` + "\n" +
			`hub.poll_floor: want a duration above zero such as "30s", got "0s"` + "\n" +
			`hub.timeout: want a duration above zero such as "30s", got "0s"`},
		{"token-number", `proxmox.token: want a string, got a number`},
		{"token-array", `proxmox.token: want a string, got an array`},
		{"token-object", `proxmox.token: want a string, got an object`},
		{"endpoint-null", `proxmox.endpoint: want a string, got null`},
		{"unknown-key", `unknown key "proxmox.endpont"`},
		{"top-level-array", `want a JSON object, got an array`},
		{"several", "log_level: want a string, got a number\n" + `proxmox.timeout: ` + wantDur + "30\n" +
			"runtime.max_concurrent: want a whole number, got a string\nruntime.max_steps: want at least 1, got 0\n" + `unknown key "typo"`},
	}
	playbook := filepath.Join("testdata", "config", "playbook.star")
	commands := [][]string{{"version"}, {"check", playbook}, {"run", playbook}, {"serve"}}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			path := copyFixture(t, tt.fixture+".json")
			var want strings.Builder
			for i, line := range strings.Split(tt.want, "\n") {
				if i > 0 {
					want.WriteByte('\n')
				}
				want.WriteString("config " + path + ": " + line)
			}
			for _, cmd := range commands {
				_, err := parseGlobals(t, append([]string{"--config", path}, cmd...)...)
				if err == nil || err.Error() != want.String() {
					t.Errorf("%s: error\n%v\nwant\n%s", cmd[0], err, want.String())
				}
				if err != nil && strings.Contains(err.Error(), testSecret) {
					t.Errorf("%s: error leaks the token secret: %v", cmd[0], err)
				}
			}
		})
	}
}

// TestConfigFileValid: the shipped example and the edges of each range
// load, for every command that reads the file, and land in the flags.
func TestConfigFileValid(t *testing.T) {
	playbook := filepath.Join("testdata", "config", "playbook.star")
	for _, fixture := range []string{"../../../../deploy/agent.example.json", "valid-edges.json"} {
		path := copyFixture(t, fixture)
		for _, cmd := range [][]string{{"version"}, {"check", playbook}, {"run", playbook}, {"serve"}} {
			cli, err := parseGlobals(t, append([]string{"--config", path}, cmd...)...)
			if err != nil {
				t.Errorf("%s %s: %v", fixture, cmd[0], err)
				continue
			}
			if fixture == "valid-edges.json" && (cli.Runtime.MaxMemoryMiB != 0 || cli.Runtime.MaxConcurrent != 1 || cli.Proxmox.ReadRetryBudget != 0 || cli.Proxmox.Timeout != time.Millisecond) {
				t.Errorf("%s: runtime %+v, proxmox timeout %v, budget %v", cmd[0], cli.Runtime, cli.Proxmox.Timeout, cli.Proxmox.ReadRetryBudget)
			}
			if fixture != "valid-edges.json" && (cli.Proxmox.Node != "pve1" || cli.Runtime.MaxSteps != 10000000 || !cli.Privileged.Enabled) {
				t.Errorf("%s: the example's values did not land: node %q, %+v, privileged %+v", cmd[0], cli.Proxmox.Node, cli.Runtime, cli.Privileged)
			}
			if cmd[0] == "serve" && fixture != "valid-edges.json" && (cli.Serve.HubKeys == "" || cli.Serve.RunsKeep != 10000) {
				t.Errorf("serve: hub keys %q, runs.keep %d", cli.Serve.HubKeys, cli.Serve.RunsKeep)
			}
		}
	}
}

// TestFlagRangesNameTheFlag: a value out of range given by a flag names
// the flag, by the environment names its variable; a file's name the
// file and key even when a flag overrides it (the whole file is checked).
func TestFlagRangesNameTheFlag(t *testing.T) {
	good := copyFixture(t, "valid-edges.json")
	bad := copyFixture(t, "max-concurrent-negative.json")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag", nil, []string{"--runtime-max-concurrent=-5", "version"}, "--runtime-max-concurrent: want at least 1, got -5"},
		{"flag over a good file", nil, []string{"--config", good, "--runtime-max-steps=0", "version"}, "--runtime-max-steps: want at least 1, got 0"},
		{"duration flag", nil, []string{"serve", "--health-interval=0s"}, `--health-interval: want a duration above zero such as "30s", got "0s"`},
		{"environment", map[string]string{"FELHOM_AGENT_RUNTIME_MAX_CONCURRENT": "0"}, []string{"version"}, "FELHOM_AGENT_RUNTIME_MAX_CONCURRENT: want at least 1, got 0"},
		{"flag beats a bad environment", map[string]string{"FELHOM_AGENT_RUNTIME_MAX_CONCURRENT": "0"}, []string{"--runtime-max-concurrent=2", "version"}, ""},
		{"bad file, good flag", nil, []string{"--config", bad, "--runtime-max-concurrent=2", "version"}, "config " + bad + ": runtime.max_concurrent: want at least 1, got -5"},
		{"several", nil, []string{"serve", "--runs-keep=-1", "--runs-queue-max=0"}, "--runs-keep: want 0 or more, got -1\n--runs-queue-max: want at least 1, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := parseGlobals(t, tt.args...)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("%v; want accepted", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("error %v; want %s", err, tt.want)
			}
		})
	}
}

// copyFixture copies testdata/config/name to a private (0600) file, as a
// file holding a token must be, and returns its path.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "config", name))
	if err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, string(b))
}
