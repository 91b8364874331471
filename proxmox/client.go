package proxmox

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Client is the HTTPS client of one Proxmox VE host's API (/api2/json),
// authenticated with an API token. It never starts a process.
//
// A Client is safe for concurrent use; it holds one keep-alive transport,
// so create one per host and share it. Every method takes the caller's
// context: cancelling it aborts the request (and a task wait) at once.
//
// Reads are GETs, retried on transient failures (see [Config.ReadRetries]).
// Mutations return the [UPID] of the worker task PVE started and are never
// retried; when their outcome cannot be known the error wraps
// [ErrAmbiguous]. Errors PVE answered are [*APIError]s.
type Client struct {
	cfg        Config
	base       string // "https://HOST:PORT/api2/json"
	hc         *http.Client
	log        *slog.Logger
	backoffMin time.Duration
	backoffMax time.Duration
	waits      taskWaits   // WaitTask calls in flight, sharing one poll per node
	readOnly   bool        // every method but GET is refused before it is sent
	kinds      *GuestKinds // the node's guest kinds, remembered for every user (kinds.go)

	requireGate bool // RequireGate: a mutation without a MutationGate fails
}

// RequireGate makes every later mutation whose context carries no
// [MutationGate] fail with [ErrNoGate], nothing sent. The agent and the
// CLI call it on the client they give playbooks, so that no path can reach
// the host around the safety gate. Call it before the Client is shared.
func (c *Client) RequireGate() { c.requireGate = true }

// Option adjusts a Client that [New] builds.
type Option func(*options)

type options struct {
	httpClient *http.Client
	transport  http.RoundTripper
	logger     *slog.Logger
	backoffMin time.Duration
	backoffMax time.Duration
	backoffSet bool
	readOnly   bool
}

// WithReadOnly makes the Client refuse every request but a GET before it
// is sent: a mutation returns an error wrapping [ErrReadOnly] (and
// [ErrNotSent]) and nothing reaches the host. `felhom-agent plan` reads
// the real host through such a Client.
func WithReadOnly() Option {
	return func(o *options) { o.readOnly = true }
}

// WithHTTPClient makes the Client send every request through hc as it is:
// hc's transport then decides TLS trust, and Config's CAFile, Fingerprint
// and InsecureSkipVerify are not used. For tests (httptest.Server.Client).
// It cannot be combined with [WithTransport].
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithTransport makes the Client send requests through rt instead of the
// TLS transport New builds from Config; rt then decides TLS trust. For
// tests (an in-memory handler, a recording transport). It cannot be
// combined with [WithHTTPClient].
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithLogger sets the logger that receives one debug record per HTTP
// attempt (method, path, attempt, status, duration, error). The token never
// appears in it. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithRetryBackoff sets the delay between retries of a read: the first
// retry waits about min, each further one twice as long up to max, each
// randomly shortened by up to half so that clients do not retry in step.
// The default is 250ms to 2s. New refuses min <= 0 or max < min.
func WithRetryBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax, o.backoffSet = min, max, true }
}

// Default retry backoff of reads; see WithRetryBackoff.
const (
	defaultBackoffMin = 250 * time.Millisecond
	defaultBackoffMax = 2 * time.Second
)

// New validates cfg and returns a Client for it. TLS trust follows cfg:
// CAFile verifies the chain and host name against that bundle; Fingerprint
// accepts exactly the pinned leaf certificate; InsecureSkipVerify accepts
// any; with none of them the system roots verify the host.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox client: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.httpClient != nil && o.transport != nil {
		return nil, errors.New("proxmox client: WithHTTPClient and WithTransport cannot be combined")
	}
	c := &Client{
		cfg:        cfg,
		log:        o.logger,
		backoffMin: defaultBackoffMin,
		backoffMax: defaultBackoffMax,
		readOnly:   o.readOnly,
		kinds:      new(GuestKinds),
	}
	if o.backoffSet {
		if o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
			return nil, fmt.Errorf("proxmox client: retry backoff min %s must be positive and not above max %s", o.backoffMin, o.backoffMax)
		}
		c.backoffMin, c.backoffMax = o.backoffMin, o.backoffMax
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	// Validate has checked the URL; only scheme and host are kept, since
	// the API always lives at /api2/json.
	u, _ := url.Parse(cfg.Endpoint)
	c.base = u.Scheme + "://" + u.Host + "/api2/json"

	switch {
	case o.httpClient != nil:
		c.hc = o.httpClient
	case o.transport != nil:
		c.hc = &http.Client{Transport: o.transport, CheckRedirect: noRedirects}
	default:
		tc, err := tlsConfig(&cfg)
		if err != nil {
			return nil, fmt.Errorf("proxmox client: %w", err)
		}
		c.hc = &http.Client{Transport: &http.Transport{
			// No proxy: the agent talks to its own host, and an
			// environment proxy must not see the API traffic.
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		}, CheckRedirect: noRedirects}
	}
	return c, nil
}

// noRedirects makes a redirect an answer rather than a new request: the
// API does not redirect, and following one would turn a POST into a GET.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Node is the name of the node this Client manages (Config.Node); every
// node-scoped read and mutation addresses it.
func (c *Client) Node() string { return c.cfg.Node }

// Target names the host and node this Client's requests address, as
// "https://pve1:8006 node pve1": the endpoint's scheme and host (its
// port made explicit, its host name in lower case, its path dropped, as
// the requests drop it) and Config.Node. It is the same for every client
// of one endpoint and node, across restarts of the host and renewals of
// its certificate, and differs between two hosts or two nodes — what
// the agent records a run as made against (Run.Origin).
func (c *Client) Target() string {
	u, _ := url.Parse(c.cfg.Endpoint) // New validated it
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = "443"
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port) + " node " + c.cfg.Node
}

// paramError is input the Client refuses before sending anything; it names
// the API parameter.
func paramError(param string, value any, reason string) error {
	return fmt.Errorf("proxmox: %s %q %s", param, fmt.Sprint(value), reason)
}

// needVMID checks a guest id.
func needVMID(vmid int) error {
	if vmid < MinVMID || vmid > MaxVMID {
		return paramError("vmid", vmid, fmt.Sprintf("is not a guest id (%d..%d)", MinVMID, MaxVMID))
	}
	return nil
}

// apiStorageIDPattern is PVE's pve-storage-id (case-insensitive there too).
var apiStorageIDPattern = regexp.MustCompile(`^(?i)[a-z][a-z0-9\-_.]*[a-z0-9]$`)

// needStorageID checks a storage id, which becomes a path segment.
func needStorageID(param, id string) error {
	if !apiStorageIDPattern.MatchString(id) {
		return paramError(param, id, "is not a PVE storage id ([a-z][a-z0-9-_.]*[a-z0-9])")
	}
	return nil
}

// apiSnapnamePattern is PVE's pve-configid, the format of snapname.
var apiSnapnamePattern = regexp.MustCompile(`^(?i)[a-z][a-z0-9_\-]+$`)

// needSnapname checks a snapshot name, which becomes a path segment.
func needSnapname(name string) error {
	if len(name) > 40 || !apiSnapnamePattern.MatchString(name) {
		return paramError("snapname", name, "is not a PVE snapshot name ([a-zA-Z][a-zA-Z0-9_-]+, at most 40)")
	}
	return nil
}

// nodePath is a path below /nodes/{node} of this Client's node.
func (c *Client) nodePath(segments ...string) apiPath {
	return pathOf(append([]string{"nodes", c.cfg.Node}, segments...)...)
}
