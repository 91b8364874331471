package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// TestRunAgainstServedSimulator drives `run` end to end against a
// simulator served over TLS, the way an operator points the agent at a
// host: the trust settings decide between a run and a configuration error.
func TestRunAgainstServedSimulator(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = -1
	srv, err := sim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFP := "00" + srv.Fingerprint[2:]
	if wrongFP == srv.Fingerprint {
		wrongFP = "11" + srv.Fingerprint[2:]
	}
	t.Setenv("FELHOM_AGENT_PROXMOX_TOKEN", srv.Token)
	// No agent serves there: the runs are in-process, with their guest
	// locks beside that socket (not in the host's /run).
	t.Setenv("FELHOM_AGENT_SOCKET", filepath.Join(t.TempDir(), "agent.sock"))
	base := []string{"--proxmox-endpoint", srv.Endpoint, "--proxmox-node", srv.Node, "--playbooks", "../../playbooks"}
	tests := []struct {
		name   string
		args   []string // global flags
		params []string // run's own flags
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"pinned", []string{"--proxmox-tls-fingerprint", srv.Fingerprint}, nil, exitOK, `"status": "succeeded"`, ""},
		{"ca file", []string{"--proxmox-ca-file", ca}, nil, exitOK, `"status": "succeeded"`, ""},
		{"wrong pin", []string{"--proxmox-tls-fingerprint", wrongFP}, nil, exitUsage, "", "fingerprint mismatch: expected " + wrongFP + ", got " + srv.Fingerprint},
		{"no trust configured", nil, nil, exitUsage, "", "certificate"},
		{"unreadable ca file", []string{"--proxmox-ca-file", filepath.Join(t.TempDir(), "missing.pem")}, nil, exitUsage, "", "proxmox.ca_file"},
		{"bad parameter", []string{"--proxmox-ca-file", ca}, []string{"-p", "mode=nonsense"}, exitUsage, "", `parameter "mode"`},
		// On a host 9999 is no scratch guest unless configured so: the
		// rollback needs a signature, which selftest catches and fails in
		// its own words; the console still says what to sign.
		{"gated rollback, caught", []string{"--proxmox-ca-file", ca}, []string{"-p", "mode=task", "-p", "vmid=9999"}, exitFailed, "",
			"needs an operator's signature, and a run from the command line has nobody to ask"},
		{"scratch guest configured", []string{"--proxmox-ca-file", ca, "--safety-scratch-vmids", "9999"}, []string{"-p", "mode=task", "-p", "vmid=9999"}, exitOK, `"status": "succeeded"`, ""},
	}
	secret := srv.Token[strings.Index(srv.Token, "=")+1:]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append(append([]string{}, base...), tt.args...), "run", "--json", "../../playbooks/selftest.star")
			args = append(args, tt.params...)
			code := run(args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d; want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stdout %q does not contain %q or stderr %q does not contain %q", stdout.String(), tt.stdout, stderr.String(), tt.stderr)
			}
			if strings.Contains(stdout.String()+stderr.String(), secret) {
				t.Error("the token secret appears in the output")
			}
			if code == exitOK {
				var s summary
				if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
					t.Fatalf("summary is not JSON: %v", err)
				}
				if s.Requests == nil || *s.Requests == 0 || s.Status != "succeeded" {
					t.Errorf("summary = %+v; want requests counted and succeeded", s)
				}
			}
		})
	}
}

// TestRunOutsideThePlaybooksRoot: a playbook outside --playbooks loads
// from its own directory; a load() that fails there says so.
func TestRunOutsideThePlaybooksRoot(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "l.star")
	src := "load(\"lib/undo.star\", \"x\")\n\ndef run(ctx):\n    return 1\n\nplaybook(name = \"l\", run = run)\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"--playbooks", "../../playbooks", "run", "--sim", f}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "cannot load lib/undo.star: no such file under the playbooks root") ||
		!strings.Contains(stderr.String(), "load() resolved in "+dir+", the file's own directory, since the file is outside the playbooks directory ../../playbooks") {
		t.Errorf("run of a playbook outside the root = %d:\n%s", code, stderr.String())
	}
}
