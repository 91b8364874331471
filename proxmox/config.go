package proxmox

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config says how to reach and trust one Proxmox VE host. The zero value of
// every optional field is the safe default: full TLS verification against
// the system roots, a 30 s request timeout, 3 read retries.
//
// The JSON keys are the agent configuration's keys below "proxmox"; the
// matching environment variables are FELHOM_AGENT_PROXMOX_<KEY>.
type Config struct {
	// Endpoint is the API base, "https://HOST:8006". A path, if any, is
	// ignored: the client always speaks to /api2/json below the host.
	Endpoint string `json:"endpoint"`
	// Node is the node this agent manages (the host's own name).
	Node string `json:"node"`
	// Token authenticates every request. Required.
	Token Token `json:"token"`
	// CAFile is a PEM bundle to verify the host certificate against instead
	// of the system roots (PVE's own pve-root-ca.pem). Hostname checks stay on.
	CAFile string `json:"ca_file,omitempty"`
	// Fingerprint pins the SHA-256 of the host's leaf certificate, as PVE
	// shows it ("AB:CD:..."), colons optional, case-insensitive. When set, the
	// pin replaces chain verification: PVE's self-signed certificate passes
	// only if it is exactly the pinned one.
	Fingerprint string `json:"fingerprint,omitempty"`
	// InsecureSkipVerify turns TLS verification off. Only for throwaway
	// labs; never the default, and refused together with a pin or a CA.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// Timeout bounds one HTTP request (not a task wait). Zero means 30 s.
	Timeout time.Duration `json:"timeout,omitempty"`
	// ReadRetries is how many times an idempotent read is retried after a
	// transient failure. Zero means 3; negative means never.
	ReadRetries int `json:"read_retries,omitempty"`
}

// Validate reports every problem in c, each naming its configuration key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("proxmox.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch u, err := url.Parse(c.Endpoint); {
	case c.Endpoint == "":
		bad("endpoint", "is required (https://HOST:8006)")
	case err != nil:
		bad("endpoint", "%q is not a URL: %v", c.Endpoint, errors.Unwrap(err))
	case u.Scheme != "https":
		bad("endpoint", "%q must use https", c.Endpoint)
	case u.Host == "":
		bad("endpoint", "%q has no host", c.Endpoint)
	}
	if c.Node == "" {
		bad("node", "is required (the PVE node name of this host)")
	}
	if c.Token.IsZero() {
		bad("token", "is required (USER@REALM!TOKENID=SECRET)")
	} else if !tokenIDPattern.MatchString(c.Token.ID) || c.Token.Secret == "" {
		bad("token", "must have the form USER@REALM!TOKENID=SECRET")
	}
	if c.Fingerprint != "" {
		if _, err := ParseFingerprint(c.Fingerprint); err != nil {
			bad("fingerprint", "%v", err)
		}
	}
	if c.InsecureSkipVerify && (c.Fingerprint != "" || c.CAFile != "") {
		bad("insecure_skip_verify", "cannot be combined with fingerprint or ca_file")
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	return errors.Join(errs...)
}

// ParseFingerprint decodes a SHA-256 certificate fingerprint written as hex,
// with or without colons, in either case.
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%q is not a SHA-256 fingerprint (32 hex bytes, colons optional)", s)
	}
	return b, nil
}

// FormatFingerprint writes a SHA-256 digest as PVE shows it: upper-case hex
// bytes joined by colons.
func FormatFingerprint(sum []byte) string {
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func (c *Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return 30 * time.Second
	}
	return c.Timeout
}

func (c *Config) readRetries() int {
	switch {
	case c.ReadRetries == 0:
		return 3
	case c.ReadRetries < 0:
		return 0
	}
	return c.ReadRetries
}
