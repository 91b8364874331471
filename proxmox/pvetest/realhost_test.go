package pvetest_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
)

// The suites against a real PVE 8 host, when one is configured:
//
//	FELHOM_PVE_URL=https://pve.lan:8006 FELHOM_PVE_NODE=pve \
//	FELHOM_PVE_TOKEN='felhom-agent@pve!agent=SECRET' FELHOM_PVE_FINGERPRINT=AB:CD:... \
//	FELHOM_PVE_RUNNING=901 FELHOM_PVE_STOPPED=902 FELHOM_PVE_SCRATCH=903 \
//	FELHOM_PVE_BACKUP_STORAGE=local FELHOM_PVE_GUEST_STORAGE=local-lvm \
//	go test -run RealHost -v ./proxmox/pvetest/
//
// FELHOM_PVE_CAFILE (the host's pve-root-ca.pem or its certificate) also
// runs the proxmoxer flow; FELHOM_PVE_STOPPED_VM (a stopped QEMU VM) adds
// the VM steps of the third-party flows; FELHOM_PVE_RAW_LXC (a stopped
// container with raw lxc.* config keys) the raw-lxc restore case. The
// guests must exist for testing: the suites stop, start, snapshot and
// back them up (see pvetest.World).

// realHost returns the configured host, or skips when FELHOM_PVE_URL is
// unset. A host that is configured only in part fails the test, naming
// what is missing.
func realHost(t *testing.T) (proxmox.Config, pvetest.World) {
	t.Helper()
	if os.Getenv("FELHOM_PVE_URL") == "" {
		t.Skip("FELHOM_PVE_URL is not set: no real PVE host to run against")
	}
	var missing []string
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	vmid := func(name string) int {
		v := get(name)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q is not a guest id", name, v)
		}
		return n
	}
	cfg := proxmox.Config{
		Endpoint:    get("FELHOM_PVE_URL"),
		Node:        get("FELHOM_PVE_NODE"),
		Fingerprint: os.Getenv("FELHOM_PVE_FINGERPRINT"),
		CAFile:      os.Getenv("FELHOM_PVE_CAFILE"),
	}
	if cfg.Fingerprint == "" && cfg.CAFile == "" {
		missing = append(missing, "FELHOM_PVE_FINGERPRINT (or FELHOM_PVE_CAFILE)")
	}
	tokenText := get("FELHOM_PVE_TOKEN")
	w := pvetest.World{
		Running:       vmid("FELHOM_PVE_RUNNING"),
		Stopped:       vmid("FELHOM_PVE_STOPPED"),
		Scratch:       vmid("FELHOM_PVE_SCRATCH"),
		BackupStorage: get("FELHOM_PVE_BACKUP_STORAGE"),
		GuestStorage:  get("FELHOM_PVE_GUEST_STORAGE"),
		CaseTimeout:   10 * time.Minute,
	}
	if os.Getenv("FELHOM_PVE_STOPPED_VM") != "" {
		w.StoppedVM = vmid("FELHOM_PVE_STOPPED_VM")
	}
	if os.Getenv("FELHOM_PVE_RAW_LXC") != "" {
		w.RawLXCGuest = vmid("FELHOM_PVE_RAW_LXC")
	}
	if len(missing) > 0 {
		t.Fatalf("FELHOM_PVE_URL is set but %s are not", strings.Join(missing, ", "))
	}
	tok, err := proxmox.ParseToken(tokenText)
	if err != nil {
		t.Fatalf("FELHOM_PVE_TOKEN: %v", err)
	}
	cfg.Token = tok
	return cfg, w
}

func TestConformanceRealHost(t *testing.T) {
	cfg, w := realHost(t)
	c, err := proxmox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ep := realEndpoint(t, cfg)
	w.Endpoint = &ep
	w.AuthFailureDelay = 3 * time.Second
	pvetest.Conformance(t, c, w)
}

func TestThirdPartyRealHost(t *testing.T) {
	cfg, w := realHost(t)
	pvetest.ThirdParty(t, realEndpoint(t, cfg), w)
}

func TestAnsibleRealHost(t *testing.T) {
	cfg, w := realHost(t)
	pvetest.Ansible(t, realEndpoint(t, cfg), w)
}

func TestProxmoxerRealHost(t *testing.T) {
	cfg, w := realHost(t)
	pvetest.Proxmoxer(t, realEndpoint(t, cfg), w)
}

// realEndpoint is cfg for the raw clients: an HTTP client that accepts
// exactly the pinned certificate (or verifies against the CA file).
func realEndpoint(t *testing.T, cfg proxmox.Config) pvetest.Endpoint {
	t.Helper()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.Fingerprint != "" {
		pin, err := proxmox.ParseFingerprint(cfg.Fingerprint)
		if err != nil {
			t.Fatalf("FELHOM_PVE_FINGERPRINT: %v", err)
		}
		// The pin replaces chain verification, as in proxmox.Config.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			if sum := sha256.Sum256(cs.PeerCertificates[0].Raw); !bytes.Equal(sum[:], pin) {
				return errors.New("certificate does not match FELHOM_PVE_FINGERPRINT")
			}
			return nil
		}
	} else {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			t.Fatalf("FELHOM_PVE_CAFILE: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			t.Fatalf("FELHOM_PVE_CAFILE %s holds no PEM certificate", cfg.CAFile)
		}
	}
	return pvetest.Endpoint{
		URL: cfg.Endpoint, Node: cfg.Node, Token: cfg.Token.ID + "=" + cfg.Token.Secret.Reveal(),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: time.Minute},
		CAFile:     cfg.CAFile,
	}
}
