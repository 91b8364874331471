package proxmox_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// This file is the tests' stand-in for a PVE host: a routing table of
// handlers serving the fixtures in testdata/, recording every request, and
// failing the test on a request it does not expect.

const (
	testNode   = "node1"
	testSecret = "5ec2e7a1-d00d-4bad-beef-0123456789ab"
	testUser   = "felhom-agent@pve!agent"
)

var testToken = proxmox.Token{ID: testUser, Secret: testSecret}

// call is one request the fake received.
type call struct {
	Method      string
	Path        string // decoded, below /api2/json
	EscapedPath string // as sent, below /api2/json
	Query       url.Values
	Form        url.Values
	Auth        string
	ContentType string
}

type fakePVE struct {
	t      testing.TB
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	calls  []call
}

func newFake(t testing.TB) *fakePVE {
	return &fakePVE{t: t, routes: make(map[string]http.HandlerFunc)}
}

// on routes "METHOD /path" (decoded, below /api2/json) to h.
func (f *fakePVE) on(route string, h http.HandlerFunc) *fakePVE {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[route] = h
	return f
}

// fixture routes to a 200 answer with the body of testdata/name.
func (f *fakePVE) fixture(route, name string) *fakePVE {
	return f.on(route, serveFile(f.t, name))
}

func (f *fakePVE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/api2/json")
	if !ok {
		f.t.Errorf("request outside /api2/json: %s %s", r.Method, r.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	escaped, _ := strings.CutPrefix(r.URL.EscapedPath(), "/api2/json")
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("%s %s: bad form: %v", r.Method, path, err)
	}
	c := call{
		Method: r.Method, Path: path, EscapedPath: escaped,
		Query: r.URL.Query(), Form: r.PostForm,
		Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
	}
	route := r.Method + " " + path
	f.mu.Lock()
	f.calls = append(f.calls, c)
	h := f.routes[route]
	f.mu.Unlock()
	if h == nil {
		f.t.Errorf("unexpected request %s", route)
		w.WriteHeader(http.StatusNotImplemented)
		fmt.Fprintf(w, `{"data":null,"message":"Method '%s' not implemented"}`, route)
		return
	}
	h(w, r)
}

// Calls returns the requests received so far.
func (f *fakePVE) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// count is how many requests matched route.
func (f *fakePVE) count(route string) int {
	n := 0
	for _, c := range f.Calls() {
		if c.Method+" "+c.Path == route {
			n++
		}
	}
	return n
}

// last returns the last request, failing the test when there was none.
func (f *fakePVE) last() call {
	f.t.Helper()
	calls := f.Calls()
	if len(calls) == 0 {
		f.t.Fatal("no request received")
	}
	return calls[len(calls)-1]
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serveFile(t testing.TB, name string) http.HandlerFunc {
	body := readTestdata(t, name)
	return serveJSON(http.StatusOK, string(body))
}

func serveJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// serveData answers 200 with {"data": v}.
func serveData(v any) http.HandlerFunc {
	b, err := json.Marshal(map[string]any{"data": v})
	if err != nil {
		panic(err)
	}
	return serveJSON(http.StatusOK, string(b))
}

// serveError answers like PVE 8.4+: the message in the body (and, as
// Go's server cannot do otherwise, the standard reason phrase).
func serveError(status int, message string, errs map[string]string) http.HandlerFunc {
	body := map[string]any{"data": nil, "message": message + "\n"}
	if errs != nil {
		body["errors"] = errs
	}
	b, _ := json.Marshal(body)
	return serveJSON(status, string(b))
}

// serveReason answers like PVE before 8.4: the message only in the
// status line's reason phrase. Go's server writes only standard phrases,
// so the response is written by hand on the hijacked connection.
func serveReason(status int, reason, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			status, reason, len(body), body)
		_ = buf.Flush()
	}
}

// dropConn closes the connection without an answer, as a host that
// restarts pveproxy (or a broken network) does.
func dropConn(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

// sequence answers the n-th request with hs[n], repeating the last one.
func sequence(hs ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hs[min(n, len(hs)-1)]
		n++
		mu.Unlock()
		h(w, r)
	}
}

// startTLS serves h over TLS with httptest's self-signed certificate. The
// server's own log is silenced: TLS tests make handshakes fail on purpose.
func startTLS(t testing.TB, h http.Handler) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// pinOf is the PVE-style fingerprint of ts's certificate.
func pinOf(ts *httptest.Server) string {
	sum := sha256.Sum256(ts.Certificate().Raw)
	return proxmox.FormatFingerprint(sum[:])
}

func testConfig(endpoint string) proxmox.Config {
	return proxmox.Config{Endpoint: endpoint, Node: testNode, Token: testToken}
}

// newClient is a Client of ts that trusts it by fingerprint, retrying
// reads after 1-2ms instead of the default backoff.
func newClient(t testing.TB, ts *httptest.Server, opts ...proxmox.Option) *proxmox.Client {
	t.Helper()
	cfg := testConfig(ts.URL)
	cfg.Fingerprint = pinOf(ts)
	return newClientCfg(t, cfg, opts...)
}

func newClientCfg(t testing.TB, cfg proxmox.Config, opts ...proxmox.Option) *proxmox.Client {
	t.Helper()
	opts = append([]proxmox.Option{proxmox.WithRetryBackoff(time.Millisecond, 2*time.Millisecond)}, opts...)
	c, err := proxmox.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// fakeClient starts f over TLS and returns a pinned Client of it.
func fakeClient(t testing.TB, f *fakePVE, opts ...proxmox.Option) *proxmox.Client {
	return newClient(t, startTLS(t, f), opts...)
}

// handlerTransport serves requests in memory by calling a handler, so
// tests can run inside a testing/synctest bubble, where real sockets
// would not let fake time advance.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	t.h.ServeHTTP(rec, sr)
	if err := r.Context().Err(); err != nil {
		return nil, err // as a real transport does for a cancelled request
	}
	return rec.Result(), nil
}

// recorder is an Observer that keeps everything it is told.
type recorder struct {
	mu       sync.Mutex
	requests []proxmox.RequestInfo
	started  []proxmox.UPID
	waited   []waited
}

type waited struct {
	UPID   proxmox.UPID
	Status proxmox.TaskStatus
	Err    error
}

func (r *recorder) Request(i proxmox.RequestInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, i)
}

func (r *recorder) TaskStarted(u proxmox.UPID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, u)
}

func (r *recorder) TaskWaited(u proxmox.UPID, _ time.Duration, st proxmox.TaskStatus, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited = append(r.waited, waited{u, st, err})
}

func (r *recorder) Requests() []proxmox.RequestInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]proxmox.RequestInfo(nil), r.requests...)
}
