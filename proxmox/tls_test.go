package proxmox_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// otherCert makes a self-signed CA certificate unrelated to httptest's,
// valid for 127.0.0.1, and returns its PEM and PVE-style fingerprint.
func otherCert(t *testing.T) (pemBytes []byte, fingerprint string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "Proxmox Virtual Environment (other)"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), proxmox.FormatFingerprint(sum[:])
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSTrust(t *testing.T) {
	ts := startTLS(t, newFake(t).fixture("GET /version", "responses/version.pve7x_2.json"))
	hostPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})
	otherPEM, otherPin := otherCert(t)
	hostPin := pinOf(ts)

	tests := []struct {
		name  string
		setup func(*proxmox.Config)
		check func(t *testing.T, err error) // nil: must succeed
	}{
		{name: "pin matches", setup: func(c *proxmox.Config) { c.Fingerprint = hostPin }},
		{name: "pin matches without colons, lower case", setup: func(c *proxmox.Config) {
			c.Fingerprint = strings.ToLower(strings.ReplaceAll(hostPin, ":", ""))
		}},
		{
			name:  "pin mismatch",
			setup: func(c *proxmox.Config) { c.Fingerprint = otherPin },
			check: func(t *testing.T, err error) {
				fe, ok := errors.AsType[*proxmox.FingerprintError](err)
				if !ok || fe.Expected != otherPin || fe.Got != hostPin {
					t.Errorf("error %v; want a *FingerprintError expecting %s, got %s", err, otherPin, hostPin)
				}
				if msg := err.Error(); !strings.Contains(msg, "expected "+otherPin) || !strings.Contains(msg, "got "+hostPin) {
					t.Errorf("error %q does not show both fingerprints", msg)
				}
			},
		},
		{name: "CA file verifies", setup: func(c *proxmox.Config) { c.CAFile = writeFile(t, "pve-root-ca.pem", hostPEM) }},
		{
			name:  "CA file of another CA",
			setup: func(c *proxmox.Config) { c.CAFile = writeFile(t, "other.pem", otherPEM) },
			check: wantUnknownAuthority,
		},
		{name: "no trust configured refuses a self-signed host", setup: func(*proxmox.Config) {}, check: wantUnknownAuthority},
		{name: "insecure_skip_verify", setup: func(c *proxmox.Config) { c.InsecureSkipVerify = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(ts.URL)
			tt.setup(&cfg)
			rec := &recorder{}
			v, err := newClientCfg(t, cfg).Version(proxmox.WithObserver(t.Context(), rec))
			if tt.check == nil {
				if err != nil || v.Version != "7.7-7" {
					t.Fatalf("Version = %+v, %v; want 7.7-7", v, err)
				}
				return
			}
			if err == nil {
				t.Fatal("request succeeded; want a TLS trust failure")
			}
			tt.check(t, err)
			// A trust failure is configuration: never retried.
			if n := len(rec.Requests()); n != 1 {
				t.Errorf("%d attempts; want 1", n)
			}
		})
	}
}

func wantUnknownAuthority(t *testing.T, err error) {
	t.Helper()
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("error %v (%T); want a certificate verification failure", err, err)
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); !ok {
		t.Errorf("error %v; want x509.UnknownAuthorityError inside", err)
	}
}

func TestNewTLSConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		caFile func(t *testing.T) string
		want   string
	}{
		{"missing CA file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope.pem") }, "proxmox.ca_file"},
		{"CA file without PEM", func(t *testing.T) string { return writeFile(t, "x.pem", []byte("not a certificate")) }, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("https://127.0.0.1:8006")
			cfg.CAFile = tt.caFile(t)
			_, err := proxmox.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}
