package guestapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of [Options].
const (
	DefaultRate        = 5.0 // requests per second per guest, sustained
	DefaultBurst       = 20  // requests per guest at once after a quiet spell
	DefaultInFlight    = 4   // requests per guest being answered at once
	DefaultBodyMax     = 16 << 10
	DefaultUnauthRate  = 2.0 // requests per second per remote address without a valid token
	DefaultUnauthBurst = 10
)

// Options configure a [Server]. The zero value of each field is its
// default.
type Options struct {
	// Rate and Burst bound each guest's requests (a token bucket);
	// beyond them the answer is 429 with Retry-After.
	Rate  float64
	Burst int
	// InFlight caps a guest's requests being answered at once (429
	// beyond).
	InFlight int
	// BodyMax bounds a request body in bytes (413 beyond).
	BodyMax int64
	// UnauthRate and UnauthBurst bound, per remote address, requests
	// that carry no valid token.
	UnauthRate  float64
	UnauthBurst int
	// Logger hears of refusals (403s above all) and failures; nil means
	// slog.Default(). Tokens are never logged.
	Logger *slog.Logger
	// Now is the clock of the rate limits; nil means time.Now.
	Now func() time.Time
}

// Server answers the guest API over a [Backend].
type Server struct {
	b    Backend
	o    Options
	log  *slog.Logger
	mux  *http.ServeMux
	mu   sync.Mutex
	lims map[int]*limiter    // by vmid
	anon map[string]*limiter // by remote address
}

// New returns a server answering from b.
func New(b Backend, o Options) *Server {
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.InFlight <= 0 {
		o.InFlight = DefaultInFlight
	}
	if o.BodyMax <= 0 {
		o.BodyMax = DefaultBodyMax
	}
	if o.UnauthRate <= 0 {
		o.UnauthRate = DefaultUnauthRate
	}
	if o.UnauthBurst <= 0 {
		o.UnauthBurst = DefaultUnauthBurst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{b: b, o: o, log: o.Logger, lims: map[int]*limiter{}, anon: map[string]*limiter{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("api", "guest")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /storage", s.guest(s.storage))
	mux.HandleFunc("GET /status", s.guest(s.status))
	mux.HandleFunc("GET /health", s.guest(s.health))
	mux.HandleFunc("POST /backup", s.guest(s.startBackup))
	mux.HandleFunc("GET /backup/due", s.guest(s.backupDue))
	mux.HandleFunc("GET /backup/status", s.guest(s.backupStatus))
	mux.HandleFunc("GET /restore-test/status", s.guest(s.restoreTest))
	mux.HandleFunc("POST /guest/reboot", s.guest(s.reboot))
	for _, p := range []string{"GET /disks", "POST /disks/assign", "POST /disks/eject", "POST /disks/format"} {
		mux.HandleFunc(p, s.guest(s.disks))
	}
	mux.HandleFunc("/", s.guest(func(r *request) (int, any, error) {
		return http.StatusNotFound, nil, fmt.Errorf("%s %s: no such endpoint of the guest API", r.r.Method, r.r.URL.Path)
	}))
	s.mux = mux
	return s
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// HTTPServer returns an http.Server for the guest API with timeouts
// fit for untrusted clients; the caller sets TLSConfig and serves.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// request is one authenticated request.
type request struct {
	ctx  context.Context
	r    *http.Request
	w    http.ResponseWriter
	vmid int
}

type envelope struct {
	OK    bool   `json:"ok"`
	Data  any    `json:"data,omitempty"`
	Error string `json:"error,omitempty"`
}

// guest authenticates, limits and answers with h.
func (s *Server) guest(h func(*request) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			if !s.anonAllow(r) {
				s.tooMany(w)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="felhom-agent guest API"`)
			s.write(w, http.StatusUnauthorized, envelope{Error: "a guest token is required: Authorization: Bearer TOKEN (from the guest's bootstrap file)"})
			return
		}
		vmid, found, err := s.b.GuestByTokenHash(r.Context(), sha256.Sum256([]byte(tok)))
		if err != nil {
			s.log.Error("guest token lookup failed", "err", err)
			s.write(w, http.StatusServiceUnavailable, envelope{Error: "the agent cannot check tokens right now"})
			return
		}
		if !found {
			if !s.anonAllow(r) {
				s.tooMany(w)
				return
			}
			vmid, found, err = s.b.AdoptTokenHash(r.Context(), sha256.Sum256([]byte(tok)))
			if err != nil {
				s.log.Error("guest token adoption failed", "err", err)
				s.write(w, http.StatusServiceUnavailable, envelope{Error: "the agent cannot check tokens right now"})
				return
			}
		}
		if !found {
			s.log.Warn("guest API: unknown token refused", "remote", remoteHost(r), "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="felhom-agent guest API", error="invalid_token"`)
			s.write(w, http.StatusUnauthorized, envelope{Error: "the token is not a guest's token (rotated?)"})
			return
		}
		lim := s.limiter(vmid)
		if !lim.allow(s.o.Now()) {
			s.tooMany(w)
			return
		}
		if !lim.enter() {
			s.tooMany(w)
			return
		}
		defer lim.leave()
		r.Body = http.MaxBytesReader(w, r.Body, s.o.BodyMax)
		status, data, err := h(&request{ctx: r.Context(), r: r, w: w, vmid: vmid})
		if err != nil {
			status, msg := s.classify(vmid, r, status, err)
			s.write(w, status, envelope{Error: msg})
			return
		}
		s.write(w, status, envelope{OK: true, Data: data})
	}
}

// classify turns a handler's error into a status and a public message.
func (s *Server) classify(vmid int, r *http.Request, status int, err error) (int, string) {
	var bad *BadRequestError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &bad):
		return http.StatusBadRequest, bad.Error()
	case errors.Is(err, ErrForbidden):
		s.log.Warn("guest API: a guest referred to another guest's things; refused", "vmid", vmid, "method", r.Method, "path", r.URL.Path, "remote", remoteHost(r), "err", err)
		return http.StatusForbidden, "forbidden: that is not this guest's"
	case errors.Is(err, ErrNotServed):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrTooMany):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, err.Error()
	case status >= 400 && status != http.StatusInternalServerError:
		return status, err.Error()
	}
	s.log.Error("guest API request failed", "vmid", vmid, "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "the agent failed to answer; it logged why"
}

func (s *Server) tooMany(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	s.write(w, http.StatusTooManyRequests, envelope{Error: "too many requests from this guest; slow down"})
}

func (s *Server) write(w http.ResponseWriter, status int, e envelope) {
	b, err := json.Marshal(e)
	if err != nil {
		s.log.Error("guest API: encode answer", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"ok":false,"error":"the agent failed to encode its answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// bearer is the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != "" && len(tok) <= 256
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func (s *Server) limiter(vmid int) *limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lims[vmid]
	if l == nil {
		l = newLimiter(s.o.Rate, s.o.Burst, s.o.InFlight, s.o.Now())
		s.lims[vmid] = l
	}
	return l
}

// anonAllow rate-limits requests without a valid token by remote
// address; the table is bounded (a spray of addresses resets it).
func (s *Server) anonAllow(r *http.Request) bool {
	host := remoteHost(r)
	s.mu.Lock()
	l := s.anon[host]
	if l == nil {
		if len(s.anon) >= 4096 {
			clear(s.anon)
		}
		l = newLimiter(s.o.UnauthRate, s.o.UnauthBurst, 0, s.o.Now())
		s.anon[host] = l
	}
	s.mu.Unlock()
	return l.allow(s.o.Now())
}

// decode reads an optional JSON body into v: an empty body is the zero
// value; unknown fields are refused.
func decode(r *request, v any) error {
	body, err := io.ReadAll(r.r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return &BadRequestError{Field: "body", Msg: "want a JSON object: " + err.Error()}
	}
	if d.More() {
		return &BadRequestError{Field: "body", Msg: "want one JSON object"}
	}
	return nil
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

func (s *Server) jobRequest(r *request) (JobRequest, error) {
	var req JobRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	if h := r.r.Header.Get("Idempotency-Key"); req.RequestID == "" && h != "" {
		req.RequestID = h
	}
	if req.RequestID != "" && !requestIDPattern.MatchString(req.RequestID) {
		return req, &BadRequestError{Field: "request_id", Msg: "want 1 to 128 of A-Z a-z 0-9 . _ : -"}
	}
	return req, nil
}

func (s *Server) storage(r *request) (int, any, error) {
	v, err := s.b.Storage(r.ctx, r.vmid)
	return http.StatusOK, v, err
}

func (s *Server) status(r *request) (int, any, error) {
	v, err := s.b.Status(r.ctx, r.vmid)
	return http.StatusOK, v, err
}

func (s *Server) health(r *request) (int, any, error) {
	v, err := s.b.Health(r.ctx)
	return http.StatusOK, v, err
}

func (s *Server) startBackup(r *request) (int, any, error) {
	req, err := s.jobRequest(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.b.StartBackup(r.ctx, r.vmid, req)
	return http.StatusOK, v, err
}

func (s *Server) backupStatus(r *request) (int, any, error) {
	id := r.r.URL.Query().Get("job_id")
	if id != "" && len(id) > 128 {
		return 0, nil, &BadRequestError{Field: "job_id", Msg: "too long"}
	}
	v, err := s.b.BackupStatus(r.ctx, r.vmid, id)
	return http.StatusOK, v, err
}

func (s *Server) backupDue(r *request) (int, any, error) {
	v, err := s.b.BackupDue(r.ctx, r.vmid)
	return http.StatusOK, v, err
}

func (s *Server) restoreTest(r *request) (int, any, error) {
	v, err := s.b.RestoreTest(r.ctx, r.vmid)
	return http.StatusOK, v, err
}

func (s *Server) reboot(r *request) (int, any, error) {
	req, err := s.jobRequest(r)
	if err != nil {
		return 0, nil, err
	}
	v, err := s.b.Reboot(r.ctx, r.vmid, req)
	return http.StatusOK, v, err
}

func (s *Server) disks(r *request) (int, any, error) {
	return http.StatusNotImplemented, nil, errors.New("disk management (list, assign, eject, format) is not built in this agent yet; the operator manages disks on the host")
}
