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

// tlsConfig builds the client TLS configuration Config asks for. Exactly
// one trust mode applies (Validate refuses InsecureSkipVerify with either
// of the others; a CA file and a pin together mean the pin decides).
func tlsConfig(cfg *Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case cfg.Fingerprint != "":
		pin, err := ParseFingerprint(cfg.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("proxmox.fingerprint: %w", err)
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
	case cfg.CAFile != "":
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("proxmox.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("proxmox.ca_file: %s holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	case cfg.InsecureSkipVerify:
		tc.InsecureSkipVerify = true
	}
	// Otherwise RootCAs stays nil: the system roots verify the host.
	return tc, nil
}

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
