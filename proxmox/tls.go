package proxmox

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// FingerprintError is a host whose leaf certificate is not the one
// Config.Fingerprint pins. Both are SHA-256 digests written as PVE shows
// them ("AB:CD:..."), so an operator can compare them with
// `pvenode cert info` and update the pin after a certificate renewal.
type FingerprintError struct {
	Expected string // the pinned fingerprint
	Got      string // the fingerprint the host presented
}

// Error shows both fingerprints.
func (e *FingerprintError) Error() string {
	return fmt.Sprintf("TLS certificate fingerprint mismatch: expected %s, got %s", e.Expected, e.Got)
}

// TLSTrust is how a client trusts an HTTPS server, for every HTTPS client
// of the agent (the Proxmox client and the hub channel), so that the trust
// rules are written once. Exactly one mode applies: a pinned Fingerprint
// (the pin decides, also with a CAFile), a CAFile, InsecureSkipVerify, or
// — the zero value — the system's roots.
type TLSTrust struct {
	// CAFile is a PEM bundle whose certificates verify the server.
	CAFile string
	// Fingerprint pins the SHA-256 of the server's leaf certificate
	// ("AB:CD:..." or plain hex); chain and name are then not checked.
	Fingerprint string
	// InsecureSkipVerify checks nothing (labs only).
	InsecureSkipVerify bool
}

// ClientConfig builds the client TLS configuration. key is the
// configuration prefix errors name ("proxmox" gives "proxmox.ca_file: ...").
// A pin mismatch fails the handshake with a *[FingerprintError].
func (t TLSTrust) ClientConfig(key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case t.Fingerprint != "":
		pin, err := ParseFingerprint(t.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("%s.fingerprint: %w", key, err)
		}
		// Chain verification is off only so that the pin below is the one
		// check: PVE's certificate is self-signed and has no usable chain.
		// VerifyConnection runs on every handshake, resumed ones included.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("TLS server sent no certificate to check against the pinned fingerprint")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(sum[:], pin) {
				return &FingerprintError{Expected: FormatFingerprint(pin), Got: FormatFingerprint(sum[:])}
			}
			return nil
		}
	case t.CAFile != "":
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", key, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %s holds no PEM certificate", key, t.CAFile)
		}
		tc.RootCAs = pool
	case t.InsecureSkipVerify:
		tc.InsecureSkipVerify = true
	}
	// Otherwise RootCAs stays nil: the system roots verify the server.
	return tc, nil
}

// tlsConfig builds the client TLS configuration Config asks for (Validate
// refuses InsecureSkipVerify with either of the others).
func tlsConfig(cfg *Config) (*tls.Config, error) {
	return TLSTrust{CAFile: cfg.CAFile, Fingerprint: cfg.Fingerprint, InsecureSkipVerify: cfg.InsecureSkipVerify}.ClientConfig("proxmox")
}

// IsTrustError reports whether err is a server failing TLS verification: a
// pin mismatch or a certificate the trust store rejects. Such a failure is
// configuration, not a transient fault; callers do not retry it quickly.
func IsTrustError(err error) bool { return trustError(err) }

// trustError reports whether err is the host failing TLS verification: a
// pin mismatch or a certificate the trust store rejects. Such a failure is
// configuration, never retried.
func trustError(err error) bool {
	if _, ok := errors.AsType[*FingerprintError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	_, ok := errors.AsType[x509.CertificateInvalidError](err)
	return ok
}
