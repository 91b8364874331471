package channel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Config says how to reach the hub. The zero value is not usable: URL,
// HostID and APIKey are required ([Config.Validate]).
type Config struct {
	// URL is the hub's base URL, https://HOST[:PORT][/PREFIX]. Plain http
	// is accepted for loopback addresses only (tests, hub-sim).
	URL string
	// HostID is this host's id at the hub (hub.host_id): 1 to 128 of
	// letters, digits, '.', '_' and '-'.
	HostID string
	// APIKey is the per-host bearer key (hub.api_key).
	APIKey APIKey
	// TLS is how the hub's certificate is trusted: the system roots (the
	// zero value), a CA file, or a pinned fingerprint.
	TLS proxmox.TLSTrust
	// Timeout bounds one request, body included; 0 means 30s.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests); TLS is then the
	// transport's business.
	Transport http.RoundTripper
}

var hostIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Validate reports every problem, each naming its configuration key.
// The API key never appears in an error.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("hub.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.URL == "" {
		bad("url", "is required (https://HUB)")
	} else if u, err := url.Parse(c.URL); err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		bad("url", "must be https://HOST[:PORT][/PREFIX] without credentials, query or fragment")
	} else if u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname())) {
		bad("url", "must be https (plain http only for a loopback hub)")
	}
	if !hostIDPattern.MatchString(c.HostID) {
		if c.HostID == "" {
			bad("host_id", "is required")
		} else {
			bad("host_id", "must be 1 to 128 of letters, digits, '.', '_' and '-', starting with a letter or digit")
		}
	}
	k := c.APIKey.Reveal()
	switch {
	case k == "":
		bad("api_key", "is required")
	case len(k) > 4096 || strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		bad("api_key", "must be printable, without spaces, at most 4096 bytes")
	}
	if c.TLS.Fingerprint != "" {
		if _, err := proxmox.ParseFingerprint(c.TLS.Fingerprint); err != nil {
			bad("fingerprint", "%v", err)
		}
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Client makes the hub's host API calls. It is safe for concurrent use.
type Client struct {
	base   string // URL without a trailing slash
	hostID string
	key    APIKey
	http   *http.Client
}

// NewClient checks cfg and builds a client.
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	rt := cfg.Transport
	if rt == nil {
		tc, err := cfg.TLS.ClientConfig("hub")
		if err != nil {
			return nil, err
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tc
		t.Proxy = http.ProxyFromEnvironment
		t.MaxIdleConns = 2
		t.IdleConnTimeout = 90 * time.Second
		rt = t
	}
	return &Client{
		base:   strings.TrimSuffix(cfg.URL, "/"),
		hostID: cfg.HostID,
		key:    cfg.APIKey,
		http: &http.Client{Transport: rt, Timeout: cfg.Timeout,
			// A redirect would carry the bearer key elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// HostID is the configured host id.
func (c *Client) HostID() string { return c.hostID }

// HTTPError is an answer other than 2xx. Msg is the hub's message (its
// "error" field, or the start of the body), clipped and made printable:
// it is untrusted text.
type HTTPError struct {
	Op     string // "report", "desired-state"
	Status int
	Msg    string
}

func (e *HTTPError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("hub %s: HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("hub %s: HTTP %d: %s", e.Op, e.Status, e.Msg)
}

// Permanent reports whether retrying the same request soon is pointless:
// the key is refused (401, 403) or the body is too large (413). The
// channel still retries, at the poll interval, since the operator may fix
// the hub side.
func (e *HTTPError) Permanent() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusRequestEntityTooLarge
}

// TransportError is a request that got no HTTP answer (connection
// refused or dropped, TLS failure, timeout).
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return "hub " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// Report POSTs a host report (already encoded, at most MaxReportBytes)
// and returns the envelope the hub answered.
func (c *Client) Report(ctx context.Context, body []byte) (Envelope, error) {
	if len(body) > MaxReportBytes {
		return Envelope{}, fmt.Errorf("hub report: the report is %d bytes, over the hub's limit of %d", len(body), MaxReportBytes)
	}
	b, err := c.do(ctx, "report", http.MethodPost, ReportPath, body, MaxEnvelopeBytes)
	if err != nil {
		return Envelope{}, err
	}
	return ParseEnvelope(b)
}

// DesiredState fetches this host's desired state; its desired_state is
// not yet validated (see [ParseDesiredState]).
func (c *Client) DesiredState(ctx context.Context) (FetchedState, error) {
	b, err := c.do(ctx, "desired-state", http.MethodGet, c.hostPath(DesiredStatePath), nil, MaxDesiredStateBytes+4<<10)
	if err != nil {
		return FetchedState{}, err
	}
	return parseFetched(b)
}

func (c *Client) hostPath(p string) string {
	return strings.Replace(p, "{host_id}", url.PathEscape(c.hostID), 1)
}

// do sends one request and returns the 2xx answer's body, read up to
// limit bytes (more is an error).
func (c *Client) do(ctx context.Context, op, method, path string, body []byte, limit int64) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("hub %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "felhom-agent")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportError{Op: op, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &TransportError{Op: op, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &HTTPError{Op: op, Status: resp.StatusCode, Msg: hubMessage(b)}
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("hub %s: the answer is over the limit of %d bytes", op, limit)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, fmt.Errorf("hub %s: the answer is %s, want application/json", op, clip.Line(ct, 60))
	}
	return b, nil
}

// scrubURLError drops the URL from a *url.Error: it is the configured one
// and says nothing new, and keeping errors free of request detail keeps
// them free of anything secret by construction.
func scrubURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// hubMessage is the hub's error message, for people: the "error" field
// of a JSON body, or else the body's first line, clipped.
func hubMessage(b []byte) string {
	var w struct {
		Error string `json:"error"`
	}
	s := string(b)
	if decodeStrict(b, &w, false) == nil && w.Error != "" {
		s = w.Error
	}
	return printable(clip.Line(s, 200))
}

// printable replaces control characters (an untrusted message must not
// steer a terminal or forge log lines) with U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '\uFFFD'
		}
		return r
	}, s)
}
