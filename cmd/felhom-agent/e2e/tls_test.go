package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certPEM fetches the sim's certificate the way an operator would (a TLS
// handshake that trusts nothing and verifies nothing) and returns it as PEM.
func (s *simProc) certPEM(t testing.TB) []byte {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", u.Host, err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatal("the sim sent no certificate")
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})
}

// TestTLSTrust: under fingerprint pinning and under CA verification, the
// agent talks to the sim it was told to trust and refuses a second sim with
// another certificate, before sending it a request.
func TestTLSTrust(t *testing.T) {
	t.Parallel()
	simA := startSim(t)
	simB := startSim(t)
	caA := filepath.Join(t.TempDir(), "sim-a.pem")
	if err := os.WriteFile(caA, simA.certPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	// trust returns the configuration of target with only the given trust.
	trust := func(target *simProc, kv ...string) []string {
		env := []string{
			"FELHOM_AGENT_PROXMOX_ENDPOINT=" + target.Endpoint,
			"FELHOM_AGENT_PROXMOX_NODE=" + target.Node,
			"FELHOM_AGENT_PROXMOX_TOKEN=" + target.Token,
		}
		return append(env, kv...)
	}
	pinA := "FELHOM_AGENT_PROXMOX_TLS_FINGERPRINT=" + simA.Fingerprint
	caFileA := "FELHOM_AGENT_PROXMOX_CA_FILE=" + caA
	tests := []struct {
		name      string
		env       []string
		wantOK    bool
		wantError string
	}{
		{"pinned to A, talking to A", trust(simA, pinA), true, ""},
		{"pinned to A, talking to B", trust(simB, pinA), false, "fingerprint mismatch"},
		{"CA of A, talking to A", trust(simA, caFileA), true, ""},
		{"CA of A, talking to B", trust(simB, caFileA), false, "certificate"},
		{"no trust configured (system roots)", trust(simA), false, "certificate"},
		{"insecure_skip_verify, explicitly", trust(simB, "FELHOM_AGENT_PROXMOX_INSECURE_SKIP_VERIFY=true"), true, ""},
	}
	seen := newTally(t, "TLS trust: accepted as configured / refused as configured", "accepted", "refused")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := runPlaybook(t, tt.env, playbooksDir, "selftest.star")
			if tt.wantOK {
				if s := out.mustSummary(t); s.Status != "succeeded" {
					t.Fatalf("status %s (%s); want succeeded", s.Status, s.Error)
				}
				seen.add("accepted")
				return
			}
			code, msg, started := out.refusedWith()
			if code == 0 || !strings.Contains(msg, tt.wantError) {
				t.Fatalf("exit %d, message %q; want a refusal naming %q", code, msg, tt.wantError)
			}
			if started && out.Summary.Requests > 1 {
				t.Errorf("%d API requests after the certificate was refused", out.Summary.Requests)
			}
			seen.add("refused")
			t.Logf("refused, exit %d (a run started: %v): %s", code, started, msg)
		})
	}
}
