package proxmox_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestReadRetries checks which failed reads are repeated: gateway errors
// and dropped connections, within the budget and up to Config.ReadRetries
// when that caps them, and nothing else.
func TestReadRetries(t *testing.T) {
	ok := serveFile(t, "responses/version.pve7x_2.json")
	tests := []struct {
		name        string
		retries     int // Config.ReadRetries
		handlers    []http.HandlerFunc
		wantErr     bool
		wantHits    int
		wantStatus  int // of the final APIError, if any
		wantFailure string
	}{
		{name: "502 then 503 then ok", handlers: []http.HandlerFunc{serveError(502, "proxy error", nil), serveReason(503, "Service Unavailable", ""), ok}, wantHits: 3},
		{name: "595 and 596 are retried", handlers: []http.HandlerFunc{serveReason(595, "Connection refused", ""), serveReason(596, "Broken pipe", ""), ok}, wantHits: 3},
		{name: "dropped connection then ok", handlers: []http.HandlerFunc{dropConn, ok}, wantHits: 2},
		{name: "four 503s then ok", handlers: []http.HandlerFunc{serveError(503, "busy", nil), serveError(503, "busy", nil), serveError(503, "busy", nil), serveError(503, "busy", nil), ok}, wantHits: 5},
		{name: "503 until a capped count runs out", retries: 3, handlers: []http.HandlerFunc{serveError(503, "busy", nil)}, wantErr: true, wantHits: 4, wantStatus: 503},
		{name: "two retries configured", retries: 2, handlers: []http.HandlerFunc{serveError(502, "x", nil)}, wantErr: true, wantHits: 3, wantStatus: 502},
		{name: "retries off", retries: -1, handlers: []http.HandlerFunc{serveError(503, "busy", nil), ok}, wantErr: true, wantHits: 1, wantStatus: 503},
		{name: "500 with a message is an answer", handlers: []http.HandlerFunc{serveError(500, "CT is locked (backup)", nil), ok}, wantErr: true, wantHits: 1, wantStatus: 500},
		{name: "500 without a message is an answer", handlers: []http.HandlerFunc{serveJSON(500, `{"data":null}`), ok}, wantErr: true, wantHits: 1, wantStatus: 500},
		{name: "504 is not retried", handlers: []http.HandlerFunc{serveJSON(504, `{"data":null}`), ok}, wantErr: true, wantHits: 1, wantStatus: 504},
		{name: "dropped every time", retries: 3, handlers: []http.HandlerFunc{dropConn}, wantErr: true, wantHits: 4, wantFailure: "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET /version", sequence(tt.handlers...))
			ts := startTLS(t, f)
			// One connection per request, so Go's transport never replays a
			// request on its own and every attempt is the Client's.
			ts.Config.SetKeepAlivesEnabled(false)
			cfg := testConfig(ts.URL)
			cfg.Fingerprint = pinOf(ts)
			cfg.ReadRetries = tt.retries
			rec := &recorder{}
			_, err := newClientCfg(t, cfg).Version(proxmox.WithObserver(t.Context(), rec))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v; want error %v", err, tt.wantErr)
			}
			if hits := f.count("GET /version"); hits != tt.wantHits {
				t.Errorf("server saw %d requests; want %d", hits, tt.wantHits)
			}
			reqs := rec.Requests()
			if len(reqs) != tt.wantHits {
				t.Fatalf("observer saw %d attempts; want %d", len(reqs), tt.wantHits)
			}
			for i, r := range reqs {
				if r.Attempt != i+1 || r.Method != "GET" || r.Path != "/version" {
					t.Errorf("attempt %d reported as %+v", i+1, r)
				}
			}
			if tt.wantStatus != 0 {
				ae, ok := errors.AsType[*proxmox.APIError](err)
				if !ok || ae.Status != tt.wantStatus {
					t.Errorf("error = %v; want an *APIError with status %d", err, tt.wantStatus)
				}
			}
			if tt.wantFailure != "" && !strings.Contains(err.Error(), tt.wantFailure) {
				t.Errorf("error = %v; want it to mention %q", err, tt.wantFailure)
			}
			if err != nil && proxmox.IsAmbiguous(err) {
				t.Errorf("a failed read is reported ambiguous: %v", err)
			}
		})
	}
}

// TestMutationsNeverRetried checks that POST, PUT and DELETE are sent
// once, whatever the failure, and that a connection dropped after the
// request was sent is ErrAmbiguous.
func TestMutationsNeverRetried(t *testing.T) {
	tests := []struct {
		name          string
		route         string
		handler       http.HandlerFunc
		call          func(context.Context, *proxmox.Client) error
		wantAmbiguous bool
	}{
		{"POST 503", "POST /nodes/node1/lxc/101/status/start", serveError(503, "busy", nil),
			func(ctx context.Context, c *proxmox.Client) error {
				_, err := c.Start(ctx, proxmox.LXC, 101)
				return err
			}, false},
		{"DELETE 502", "DELETE /nodes/node1/lxc/101", serveError(502, "proxy error", nil),
			func(ctx context.Context, c *proxmox.Client) error {
				_, err := c.DeleteGuest(ctx, proxmox.LXC, 101, false)
				return err
			}, false},
		{"POST dropped", "POST /nodes/node1/vzdump", dropConn,
			func(ctx context.Context, c *proxmox.Client) error {
				_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "usb-backup"})
				return err
			}, true},
		{"PUT dropped", "PUT /nodes/node1/lxc/101/config", dropConn,
			func(ctx context.Context, c *proxmox.Client) error {
				_, err := c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"memory": "2048"}, nil)
				return err
			}, true},
		{"DELETE dropped", "DELETE /nodes/node1/tasks/" + upidVzdump, dropConn,
			func(ctx context.Context, c *proxmox.Client) error {
				return c.StopTask(ctx, proxmox.MustParseUPID(strings.Replace(upidVzdump, "pve1", "node1", 1)))
			}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := strings.Replace(tt.route, "pve1", "node1", 1)
			f := newFake(t).on(route, tt.handler)
			ts := startTLS(t, f)
			ts.Config.SetKeepAlivesEnabled(false)
			err := tt.call(t.Context(), newClient(t, ts))
			if err == nil {
				t.Fatal("mutation succeeded; want an error")
			}
			if n := f.count(route); n != 1 {
				t.Errorf("server saw %d requests; a mutation is sent once", n)
			}
			if proxmox.IsAmbiguous(err) != tt.wantAmbiguous {
				t.Errorf("IsAmbiguous(%v) = %v; want %v", err, !tt.wantAmbiguous, tt.wantAmbiguous)
			}
			if tt.wantAmbiguous && proxmox.Kind(err) != "ambiguous" {
				t.Errorf("Kind = %q; want ambiguous", proxmox.Kind(err))
			}
		})
	}
}

// closedAddr is an address where nothing listens: connections are refused.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestConnectionRefused(t *testing.T) {
	cfg := testConfig("https://" + closedAddr(t))
	cfg.InsecureSkipVerify = true
	cfg.ReadRetries = 3
	c := newClientCfg(t, cfg)

	t.Run("mutation is not ambiguous", func(t *testing.T) {
		rec := &recorder{}
		_, err := c.Start(proxmox.WithObserver(t.Context(), rec), proxmox.LXC, 101)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("error = %v; want connection refused", err)
		}
		// Nothing was sent: the flow may safely try again.
		if proxmox.IsAmbiguous(err) {
			t.Errorf("refused connection reported ambiguous: %v", err)
		}
		if n := len(rec.Requests()); n != 1 {
			t.Errorf("%d attempts; want 1", n)
		}
	})
	t.Run("read is retried", func(t *testing.T) {
		rec := &recorder{}
		_, err := c.Version(proxmox.WithObserver(t.Context(), rec))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("error = %v; want connection refused", err)
		}
		if n := len(rec.Requests()); n != 4 {
			t.Errorf("%d attempts; want 1 + 3 retries", n)
		}
		if !proxmox.IsUnreachable(err) {
			t.Errorf("IsUnreachable(%v) = false", err)
		}
	})
}

func TestRequestTimeout(t *testing.T) {
	f := newFake(t).on("GET /version", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ts := startTLS(t, f)
	cfg := testConfig(ts.URL)
	cfg.Fingerprint = pinOf(ts)
	// Long enough for a TLS handshake on a loaded CI machine (the timeout
	// covers it), short enough to keep the test quick.
	cfg.Timeout = 500 * time.Millisecond
	_, err := newClientCfg(t, cfg).Version(t.Context())
	if err == nil || !strings.Contains(err.Error(), "no answer within 500ms") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v; want a per-request timeout", err)
	}
	if n := f.count("GET /version"); n != 1 {
		t.Errorf("server saw %d requests; a timed-out read is not retried", n)
	}
}

// TestRetryBackoff checks the delays between read retries in fake time:
// each within [d/2, d] for d doubling from min and capped at max.
func TestRetryBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var at []time.Time
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Now())
			serveError(503, "busy", nil)(w, r)
		})
		cfg := testConfig("https://pve.example:8006")
		cfg.ReadRetries = 4
		c, err := proxmox.New(cfg, proxmox.WithTransport(handlerTransport{h}),
			proxmox.WithRetryBackoff(100*time.Millisecond, 400*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Version(t.Context()); err == nil {
			t.Fatal("Version succeeded against a 503")
		}
		if len(at) != 5 {
			t.Fatalf("%d attempts; want 5", len(at))
		}
		caps := []time.Duration{100, 200, 400, 400}
		for i, limit := range caps {
			limit *= time.Millisecond
			if gap := at[i+1].Sub(at[i]); gap < limit/2 || gap > limit {
				t.Errorf("delay before retry %d = %v; want within [%v, %v]", i+1, gap, limit/2, limit)
			}
		}
	})
}

// TestRetryHonoursCancel checks that a read waiting to retry returns as
// soon as its context ends, with both causes in the error.
func TestRetryHonoursCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := serveError(503, "busy", nil)
		cfg := testConfig("https://pve.example:8006")
		cfg.ReadRetryBudget = 3 * time.Hour
		c, err := proxmox.New(cfg, proxmox.WithTransport(handlerTransport{h}),
			proxmox.WithRetryBackoff(time.Hour, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err = c.Version(ctx)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "503") {
			t.Errorf("error = %v; want context.Canceled, mentioning the 503", err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("returned after %v; want at the cancel (1s)", took)
		}
	})
}

// TestRetryBudget checks, in fake time, that a read rides out an outage
// shorter than its budget, gives up once the budget is spent (with an
// error that still is the last failure), and never sleeps past the
// caller's deadline.
func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name       string
		budget     time.Duration // Config.ReadRetryBudget
		outage     time.Duration // the API answers 503 for this long
		deadline   time.Duration // of the caller's context; 0 none
		wantErr    bool
		wantWithin [2]time.Duration // when the read returns
		wantDL     bool             // a RetryError saying the deadline ended it
	}{
		{name: "outage of 20s within the default 30s", outage: 20 * time.Second, wantWithin: [2]time.Duration{20 * time.Second, 22 * time.Second}},
		{name: "endless outage, default budget", outage: time.Hour, wantErr: true, wantWithin: [2]time.Duration{28 * time.Second, 30 * time.Second}},
		{name: "endless outage, 5s budget", budget: 5 * time.Second, outage: time.Hour, wantErr: true, wantWithin: [2]time.Duration{3 * time.Second, 5 * time.Second}},
		{name: "caller's deadline first", outage: time.Hour, deadline: 7 * time.Second, wantErr: true, wantWithin: [2]time.Duration{5 * time.Second, 7 * time.Second}, wantDL: true},
		{name: "budget off", budget: -1, outage: time.Hour, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				hits := 0
				ok, busy := serveFile(t, "responses/version.pve7x_2.json"), serveError(503, "busy", nil)
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					hits++
					if time.Since(start) < tt.outage {
						busy(w, r)
						return
					}
					ok(w, r)
				})
				cfg := testConfig("https://pve.example:8006")
				cfg.ReadRetryBudget = tt.budget
				c, err := proxmox.New(cfg, proxmox.WithTransport(handlerTransport{h}))
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				if tt.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.deadline)
					defer cancel()
				}
				_, err = c.Version(ctx)
				took := time.Since(start)
				if (err != nil) != tt.wantErr {
					t.Fatalf("Version() error = %v after %d attempts; want error %v", err, hits, tt.wantErr)
				}
				if tt.wantWithin[1] > 0 && (took < tt.wantWithin[0] || took > tt.wantWithin[1]) {
					t.Errorf("returned after %v (%d attempts); want within %v", took, hits, tt.wantWithin)
				}
				if tt.budget < 0 && hits != 1 {
					t.Errorf("%d attempts with the budget off; want 1", hits)
				}
				if !tt.wantErr {
					return
				}
				if ae, ok := errors.AsType[*proxmox.APIError](err); !ok || ae.Status != 503 {
					t.Errorf("error = %v; want it to be the last 503", err)
				}
				if !proxmox.IsUnreachable(err) {
					t.Errorf("IsUnreachable(%v) = false", err)
				}
				if re, ok := errors.AsType[*proxmox.RetryError](err); tt.budget >= 0 && (!ok || re.Deadline != tt.wantDL || re.Attempts != hits) {
					t.Errorf("error = %#v; want a *RetryError with Deadline %v and %d attempts", err, tt.wantDL, hits)
				}
			})
		})
	}
}

// TestIsUnreachable separates "not reachable now" from answers and trust
// failures, which are configuration problems.
func TestIsUnreachable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&proxmox.APIError{Status: 503}, true},
		{&proxmox.APIError{Status: 595}, true},
		{&proxmox.APIError{Status: 401, Message: "authentication failure"}, false},
		{&proxmox.APIError{Status: 500, Message: "CT is locked"}, false},
		{syscall.ECONNREFUSED, true},
		{syscall.EHOSTUNREACH, true},
		{context.DeadlineExceeded, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{errors.New("tls: certificate fingerprint mismatch"), false},
	}
	for _, tt := range tests {
		if got := proxmox.IsUnreachable(tt.err); got != tt.want {
			t.Errorf("IsUnreachable(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}
