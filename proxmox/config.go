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
	// ReadRetryBudget is how long an idempotent read keeps retrying
	// transient failures (PVE's proxy answering 502/503/595/596, refused
	// or dropped connections), counted from its first attempt: an outage
	// of the API daemon shorter than this is ridden out. No retry is
	// started that could not end before the caller's deadline. Zero means
	// [DefaultReadRetryBudget]; negative means reads are never retried.
	ReadRetryBudget time.Duration `json:"read_retry_budget,omitempty"`
	// ReadRetries, when positive, also caps the number of retries of one
	// read within the budget; zero means the budget alone decides;
	// negative means reads are never retried.
	ReadRetries int `json:"read_retries,omitempty"`
}

// DefaultReadRetryBudget is the zero value of Config.ReadRetryBudget:
// long enough to ride out a restart of pveproxy or pvedaemon (which takes
// a few seconds on a loaded host), short enough that a host that is
// really gone is reported within a minute.
const DefaultReadRetryBudget = 30 * time.Second

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
	} else if !nodeNamePattern.MatchString(c.Node) {
		bad("node", "%q is not a PVE node name (letters, digits and inner hyphens)", c.Node)
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

// readRetries is the most retries of one read: 0 none, -1 no count limit
// (the budget decides).
func (c *Config) readRetries() int {
	switch {
	case c.ReadRetries < 0 || c.ReadRetryBudget < 0:
		return 0
	case c.ReadRetries == 0:
		return -1
	}
	return c.ReadRetries
}

// readRetryBudget is how long a read may keep retrying; 0 when it never
// does.
func (c *Config) readRetryBudget() time.Duration {
	switch {
	case c.ReadRetryBudget < 0 || c.ReadRetries < 0:
		return 0
	case c.ReadRetryBudget == 0:
		return DefaultReadRetryBudget
	}
	return c.ReadRetryBudget
}
