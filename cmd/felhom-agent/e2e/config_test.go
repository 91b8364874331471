package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigErrors: a wrong configuration is refused before anything runs,
// with a message naming the key, and exit code 2. The sim is real, so a
// configuration that were accepted would reach it.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(sim.Token, "=")

	// with returns the sim's configuration with key replaced (value "" drops it).
	with := func(kv ...string) []string {
		env := map[string]string{}
		for _, e := range sim.env() {
			k, v, _ := strings.Cut(e, "=")
			env[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(env, kv[i])
			} else {
				env[kv[i]] = kv[i+1]
			}
		}
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}
	const (
		endpoint = "FELHOM_AGENT_PROXMOX_ENDPOINT"
		token    = "FELHOM_AGENT_PROXMOX_TOKEN"
		fp       = "FELHOM_AGENT_PROXMOX_TLS_FINGERPRINT"
		caFile   = "FELHOM_AGENT_PROXMOX_CA_FILE"
	)
	tests := []struct {
		name string
		env  []string
		want []string // substrings of standard error
	}{
		{"missing token", with(token, ""), []string{"proxmox.token: is required"}},
		{"token without its id, secret not echoed", with(token, "felhom-agent@pve="+secret), []string{"proxmox.token:", "must have the form"}},
		{"missing endpoint", with(endpoint, ""), []string{"proxmox.endpoint: is required"}},
		{"endpoint over plain http", with(endpoint, strings.Replace(sim.Endpoint, "https:", "http:", 1)), []string{"proxmox.endpoint:", "must use https"}},
		{"endpoint not a URL", with(endpoint, "https://[::1"), []string{"proxmox.endpoint:", "is not a URL"}},
		{"CA file missing", with(fp, "", caFile, filepath.Join(dir, "nope.pem")), []string{"proxmox.ca_file:", "no such file"}},
		{"CA file a directory", with(fp, "", caFile, dir), []string{"proxmox.ca_file:", "is a directory"}},
		{"CA file not PEM", with(fp, "", caFile, notPEM), []string{"proxmox.ca_file:", "no PEM certificate"}},
		{"unknown key in the config file", append(with(), "FELHOM_AGENT_CONFIG="+writeJSON(t, dir, "typo.json", map[string]any{"proxmox": map[string]any{"endpont": "x"}})), []string{`unknown key "proxmox.endpont"`}},
		{"a number for a duration in the config file", append(with(), "FELHOM_AGENT_CONFIG="+writeJSON(t, dir, "timeout.json", map[string]any{"proxmox": map[string]any{"timeout": 30}})),
			[]string{`timeout.json: proxmox.timeout: expected a duration such as "30s", got 30`}},
		{"a string for a number in the config file", append(with(), "FELHOM_AGENT_CONFIG="+writeJSON(t, dir, "quoted.json", map[string]any{"runtime": map[string]any{"max_concurrent": "16"}})),
			[]string{"quoted.json: runtime.max_concurrent: want a whole number, got a string"}},
		{"a negative max_concurrent in the config file", append(with(), "FELHOM_AGENT_CONFIG="+writeJSON(t, dir, "negative.json", map[string]any{"runtime": map[string]any{"max_concurrent": -5}})),
			[]string{"negative.json: runtime.max_concurrent: want at least 1, got -5"}},
		{"a node the host does not have", with("FELHOM_AGENT_PROXMOX_NODE", "pve9"),
			[]string{`proxmox.node: the host has no node "pve9" (its nodes: ` + sim.Node + `); set it to this host's node name, hostname -s: GET /nodes/pve9/version: 500 no such cluster node 'pve9'`}},
		{"a negative max_concurrent in the environment", with("FELHOM_AGENT_RUNTIME_MAX_CONCURRENT", "-5"), []string{"FELHOM_AGENT_RUNTIME_MAX_CONCURRENT: want at least 1, got -5"}},
		{"serve's hub.keys as a list, read by run", append(with(), "FELHOM_AGENT_CONFIG="+writeJSON(t, dir, "keys.json", map[string]any{"hub": map[string]any{"keys": []string{"a"}}})),
			[]string{"keys.json: hub.keys: want an object of key id to base64 public key, got an array"}},
	}
	if os.Geteuid() != 0 {
		unreadable := filepath.Join(dir, "unreadable.pem")
		if err := os.WriteFile(unreadable, sim.certPEM(t), 0o000); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			env  []string
			want []string
		}{"CA file unreadable", with(fp, "", caFile, unreadable), []string{"proxmox.ca_file:", "permission denied"}})
	}
	refused := newTally(t, "configuration errors refused before a run (exit 2, key named)", "cases", "refused")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			refused.add("cases")
			out := runPlaybook(t, tt.env, playbooksDir, "selftest.star")
			if out.Code != 2 {
				t.Errorf("exit %d; want 2\nstderr: %s", out.Code, tail(out.Stderr, 1500))
			}
			if out.Summary != nil {
				t.Errorf("a run started (summary printed): %s", out.Summary.Status)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, tail(out.Stderr, 1500))
				}
			}
			msg, _, _ := strings.Cut(strings.TrimSpace(out.Stderr), "\n")
			t.Logf("exit %d: %s", out.Code, msg)
			if !t.Failed() {
				refused.add("refused")
			}
		})
	}

	// A wrong fingerprint can only be found by connecting: the client
	// refuses the certificate at its first request.
	t.Run("wrong TLS fingerprint", func(t *testing.T) {
		t.Parallel()
		wrong := "00" + sim.Fingerprint[2:]
		out := runPlaybook(t, with(fp, wrong), playbooksDir, "selftest.star")
		code, msg, started := out.refusedWith()
		if code == 0 || !strings.Contains(msg, "fingerprint mismatch") {
			t.Fatalf("exit %d, message %q; want a refusal naming the fingerprint mismatch", code, msg)
		}
		if started && out.Summary.Requests > 1 {
			t.Errorf("%d API requests after the certificate was refused", out.Summary.Requests)
		}
		if code != 2 {
			finding(t, "a wrong TLS fingerprint exits %d, not 2 (found at the first request and reported as a failed run: %q)", code, clipLine(msg))
		}
		record(t, "wrong fingerprint: exit code / a run started", "%d / %v", code, started)
	})

	// The same settings from a configuration file work (the positive
	// control of the cases above).
	t.Run("config file", func(t *testing.T) {
		t.Parallel()
		cfg := writeJSON(t, dir, "agent.json", map[string]any{
			"proxmox": map[string]any{"endpoint": sim.Endpoint, "node": sim.Node, "token": sim.Token, "fingerprint": sim.Fingerprint},
		})
		out := runPlaybook(t, []string{"FELHOM_AGENT_CONFIG=" + cfg}, playbooksDir, "selftest.star")
		if s := out.mustSummary(t); s.Status != "succeeded" || out.Code != 0 {
			t.Fatalf("status %s (%s), exit %d; want succeeded, 0", s.Status, s.Error, out.Code)
		}
	})
}

// writeJSON writes v to dir/name (mode 0600, as the token demands) and
// returns the path.
func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeConfigChecked: serve refuses at start (exit 2) a configuration
// file whose value is of the wrong type or out of range, naming the file
// and the key, before it opens its state directory or listens.
func TestServeConfigChecked(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"negative max_concurrent", map[string]any{"runtime": map[string]any{"max_concurrent": -5}}, "bad1.json: runtime.max_concurrent: want at least 1, got -5"},
		{"a string for a bool", map[string]any{"privileged": map[string]any{"enabled": "yes"}}, "bad2.json: privileged.enabled: want true or false, got a string"},
		{"a section that is not an object", map[string]any{"proxmox": "x"}, "bad3.json: proxmox: want an object, got a string"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := writeJSON(t, dir, fmt.Sprintf("bad%d.json", i+1), tt.cfg)
			state := filepath.Join(t.TempDir(), "state")
			p := startProc(t, "serve ("+tt.name+")", append(sim.env(), "FELHOM_AGENT_CONFIG="+cfg),
				"--playbooks", servePlaybooks(t), "serve", "--listen", freeAddr(t), "--state-dir", state)
			code := p.wait(t, time.Minute)
			if code != 2 || !strings.Contains(p.stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %s; want exit 2 and %q", code, tail(p.stderr.String(), 1000), tt.want)
			}
			if _, err := os.Stat(state); err == nil {
				t.Errorf("the refused serve made its state directory")
			}
		})
	}
}

// TestServeUnknownNode: serve makes no start-up request (it starts while
// Proxmox is down, and /healthz says so), so a proxmox.node the host does
// not have is found by the first run's request: the run fails saying that
// proxmox.node is wrong, not only PVE's "no such cluster node".
func TestServeUnknownNode(t *testing.T) {
	t.Parallel()
	sim := startSim(t)
	a := startAgent(t, agentOpts{env: append(sim.env(), "FELHOM_AGENT_PROXMOX_NODE=pve9")})
	r := a.startRun(t, "selftest", nil)
	r = a.waitRun(t, r.ID, time.Minute, "to end", finished)
	const want = `proxmox.node "pve9" is not a node of this host (set proxmox.node to the host's node name): GET /nodes/pve9/`
	if r.Status != "failed" || !strings.Contains(r.Error, want) {
		t.Errorf("run on an unknown node: %s, %q; want failed with %q", r.Status, r.Error, want)
	}
	record(t, "serve with an unknown proxmox.node: the first run's error", "%s", clipLine(r.Error))
}
