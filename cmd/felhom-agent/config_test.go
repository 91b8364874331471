package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"syntax error position", "{\n  \"proxmox\": {\"node\": \"a\",}\n}", nil, []string{"config: line 2, column 27: invalid character '}'"}},
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

// TestConfigShapes: a value of the wrong JSON shape is refused naming the
// key and the shape, never echoing the value.
func TestConfigShapes(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"token as an array", `{"proxmox": {"token": ["a@pve!t=` + testSecret + `"]}}`, "config: proxmox.token: want a string, got an array"},
		{"token as an object", `{"proxmox": {"token": {"secret": "` + testSecret + `"}}}`, `config: unknown key "proxmox.token.secret"`},
		{"token as a number", `{"proxmox": {"token": 1234567}}`, "config: proxmox.token: want a string, got a number"},
		{"endpoint null", `{"proxmox": {"endpoint": null}}`, "config: proxmox.endpoint: want a string, got null"},
		{"timeout as an array", `{"proxmox": {"timeout": ["30s"]}}`, `config: proxmox.timeout: want a duration string such as "30s", got an array`},
		{"bool as an array", `{"privileged": {"enabled": [true]}}`, "config: privileged.enabled: want true or false, got an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseGlobals(t, "--config", writeConfig(t, tt.file), "version")
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("error = %v; want %s", err, tt.want)
			}
		})
	}
	// A number for a number, an object where the key takes one: accepted.
	for _, ok := range []string{`{"runtime": {"max_steps": 5}}`, `{"log_level": "warn"}`} {
		if _, err := parseGlobals(t, "--config", writeConfig(t, ok), "version"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
