// Package hubsim is a stateful simulator of the Felhom hub's host API, for
// tests and for people (felhom-agent hub-sim): per-host bearer keys, host
// report ingest with the hub's size limit, the control envelope, desired
// state with generations, a signed-jobs queue, and fault injection (down,
// slow, 5xx, malformed answers).
//
// A [Sim] is an http.Handler; [New] returns a working one and [Sim.Start]
// serves it over TLS on loopback with a fresh self-signed certificate.
// Every knob is a method or an admin endpoint, so a test in-process and
// an e2e test across processes drive it the same way.
//
// Routes (HOST is a host's bearer key, ADMIN the admin key):
//
//	POST   /api/v1/host-report                          HOST   ingest; answers the envelope
//	GET    /api/v1/hosts/{host_id}/desired-state        HOST   {generation, desired_state}
//	GET    /api/v1/hosts/{host_id}/jobs                 HOST   {jobs: [{job_id, op_blob_b64, sig_armored}]}
//	DELETE /api/v1/hosts/{host_id}/jobs/{job_id}        HOST   idempotent clear
//	PUT    /api/v1/admin/hosts/{host_id}/desired-state  ADMIN  set it, bump the generation
//	POST   /api/v1/admin/hosts/{host_id}/jobs           ADMIN  enqueue {op_blob_b64, sig_armored}
//	POST   /sim/hosts                                   ADMIN  {host_id, api_key}: add a host
//	GET    /sim/hosts/{host_id}/reports                 ADMIN  the reports received, oldest first
//	PUT    /sim/hosts/{host_id}/envelope                ADMIN  {poll_interval_seconds, blocked}
//	GET    /sim/hosts/{host_id}/jobs/cleared            ADMIN  ids of cleared jobs
//	POST   /sim/hosts/{host_id}/plan-jobs               ADMIN  {trigger, params}: queue a plan job (plans.go)
//	GET    /sim/hosts/{host_id}/plans                   ADMIN  the plans the reports carried, oldest first
//	GET    /sim/faults, PUT /sim/faults                 ADMIN  the faults ([Faults] as JSON)
//
// A host key reads and writes only its own host (403 otherwise), as the
// hub's are self-scoped. Faults apply to the host routes only, so a test
// can always reach the admin routes.
package hubsim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxReportBytes is the hub's limit on a host report body.
const DefaultMaxReportBytes = 4 << 20

// Sim is the simulated hub. Use [New]; its exported fields may be set
// before it serves.
type Sim struct {
	// AdminKey is the bearer key of the admin and /sim routes; "" turns
	// them off (the methods still work in-process).
	AdminKey string
	// MaxReportBytes bounds a report body (413 beyond); 0 means
	// DefaultMaxReportBytes.
	MaxReportBytes int64
	// PollInterval is the poll_interval_seconds of a new host's envelope;
	// 0 means 900.
	PollInterval int
	// OnUnmodeled, if set, is called with every request no route
	// answers (tests make it t.Errorf); the answer is a 404 either way.
	OnUnmodeled func(r *http.Request)

	mux  *http.ServeMux
	once sync.Once

	mu     sync.Mutex
	hosts  map[string]*host // by id
	keys   map[string]string
	faults Faults
	jobSeq int
}

// Faults are what the simulator does wrong, to the host routes. The zero
// value is a healthy hub.
type Faults struct {
	// Down drops every host request's connection without an answer, as
	// an unreachable hub looks to the agent.
	Down bool `json:"down"`
	// Latency delays every host answer.
	Latency time.Duration `json:"latency"`
	// FailNext answers the next FailNext host requests with FailStatus
	// (default 503) and counts down.
	FailNext   int `json:"fail_next"`
	FailStatus int `json:"fail_status"`
	// Malformed makes answers wrong: "envelope" (not JSON), "envelope_types"
	// (fields of the wrong type), "huge" (an envelope of 1 MiB),
	// "desired" (a desired-state answer that is not JSON), "desired_schema"
	// (a desired state this agent's schema refuses).
	Malformed string `json:"malformed"`
	// FailClear answers the next FailClear DELETEs of a job with 503,
	// keeping the job queued, as a DELETE lost on the way looks: the
	// agent fetches the job again.
	FailClear int `json:"fail_clear"`
}

// Report is one host report received.
type Report struct {
	At    time.Time       `json:"at"`
	Bytes int             `json:"bytes"`
	Body  json.RawMessage `json:"body"`
}

// Job is one queued operator-signed job, opaque to the hub.
type Job struct {
	ID         string `json:"job_id"`
	OpBlobB64  string `json:"op_blob_b64"`
	SigArmored string `json:"sig_armored"`
}

type host struct {
	id, key    string
	poll       int
	blocked    bool
	generation int64
	desired    json.RawMessage
	reports    []Report
	jobs       []Job
	cleared    []string
	rejected   map[int]int // status → count of refused requests
}

// New returns a simulator with no hosts.
func New() *Sim {
	return &Sim{hosts: map[string]*host{}, keys: map[string]string{}}
}

// AddHost adds a host with its bearer key (or replaces its key).
func (s *Sim) AddHost(id, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.hosts[id]; ok {
		delete(s.keys, h.key)
		h.key = key
		s.keys[key] = id
		return
	}
	poll := s.PollInterval
	if poll == 0 {
		poll = 900
	}
	s.hosts[id] = &host{id: id, key: key, poll: poll, rejected: map[int]int{}}
	s.keys[key] = id
}

// SetEnvelope sets what a host's envelope says of the poll interval
// (seconds, sent as is: the agent clamps it) and blocking.
func (s *Sim) SetEnvelope(id string, pollSeconds int, blocked bool) error {
	return s.withHost(id, func(h *host) error {
		h.poll, h.blocked = pollSeconds, blocked
		return nil
	})
}

// SetDesired stores a host's desired state (any JSON, stored opaquely as
// the hub does) and bumps its generation, which it returns.
func (s *Sim) SetDesired(id string, doc json.RawMessage) (int64, error) {
	if !json.Valid(doc) {
		return 0, errors.New("hubsim: the desired state is not JSON")
	}
	var gen int64
	err := s.withHost(id, func(h *host) error {
		h.generation++
		h.desired = append(json.RawMessage(nil), doc...)
		gen = h.generation
		return nil
	})
	return gen, err
}

// EnqueueJob queues an opaque job for a host and returns its id.
func (s *Sim) EnqueueJob(id string, j Job) (string, error) {
	err := s.withHost(id, func(h *host) error {
		s.jobSeq++
		j.ID = "job-" + strconv.Itoa(s.jobSeq)
		h.jobs = append(h.jobs, j)
		return nil
	})
	return j.ID, err
}

// Reports returns the reports a host sent, oldest first.
func (s *Sim) Reports(id string) []Report {
	var out []Report
	_ = s.withHost(id, func(h *host) error {
		out = append(out, h.reports...)
		return nil
	})
	return out
}

// Cleared returns the ids of a host's cleared jobs.
func (s *Sim) Cleared(id string) []string {
	var out []string
	_ = s.withHost(id, func(h *host) error {
		out = append(out, h.cleared...)
		return nil
	})
	return out
}

// Rejected returns how many of a host's requests were answered status.
func (s *Sim) Rejected(id string, status int) int {
	n := 0
	_ = s.withHost(id, func(h *host) error { n = h.rejected[status]; return nil })
	return n
}

// SetFaults replaces the faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the faults in force.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *Sim) withHost(id string, f func(*host) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hosts[id]
	if !ok {
		return fmt.Errorf("hubsim: no host %q", id)
	}
	return f(h)
}

// ServeHTTP answers the hub's routes.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(s.routes)
	s.mux.ServeHTTP(w, r)
}

func (s *Sim) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/v1/host-report", s.hostRoute(s.ingest))
	m.HandleFunc("GET /api/v1/hosts/{host_id}/desired-state", s.hostRoute(s.selfScoped(s.desiredState)))
	m.HandleFunc("GET /api/v1/hosts/{host_id}/jobs", s.hostRoute(s.selfScoped(s.listJobs)))
	m.HandleFunc("DELETE /api/v1/hosts/{host_id}/jobs/{job_id}", s.hostRoute(s.selfScoped(s.clearJob)))
	m.HandleFunc("PUT /api/v1/admin/hosts/{host_id}/desired-state", s.admin(s.putDesired))
	m.HandleFunc("POST /api/v1/admin/hosts/{host_id}/jobs", s.admin(s.postJob))
	m.HandleFunc("POST /sim/hosts", s.admin(s.postHost))
	m.HandleFunc("GET /sim/hosts/{host_id}/reports", s.admin(s.getReports))
	m.HandleFunc("PUT /sim/hosts/{host_id}/envelope", s.admin(s.putEnvelope))
	m.HandleFunc("GET /sim/hosts/{host_id}/jobs/cleared", s.admin(s.getCleared))
	m.HandleFunc("POST /sim/hosts/{host_id}/plan-jobs", s.admin(s.postPlanJob))
	m.HandleFunc("GET /sim/hosts/{host_id}/plans", s.admin(s.getPlans))
	m.HandleFunc("GET /sim/faults", s.admin(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Faults()) }))
	m.HandleFunc("PUT /sim/faults", s.admin(s.putFaults))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.OnUnmodeled != nil {
			s.OnUnmodeled(r)
		}
		writeError(w, http.StatusNotFound, "hubsim: no route "+r.Method+" "+r.URL.Path)
	})
	s.mux = m
}

// hostRoute authenticates a host key, applies the faults, then calls next
// with the host's id.
func (s *Sim) hostRoute(next func(w http.ResponseWriter, r *http.Request, hostID string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.faults
		if f.FailNext > 0 {
			s.faults.FailNext--
		}
		s.mu.Unlock()
		if f.Down {
			drop(w)
			return
		}
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-r.Context().Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		id, ok := s.hostFor(r)
		if !ok {
			writeError(w, http.StatusUnauthorized, "unknown or missing bearer key")
			return
		}
		if f.FailNext > 0 {
			status := f.FailStatus
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			s.count(id, status)
			writeError(w, status, "hubsim: injected failure")
			return
		}
		next(w, r, id)
	}
}

// selfScoped refuses a host reading another host's path.
func (s *Sim) selfScoped(next func(w http.ResponseWriter, r *http.Request, hostID string)) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, id string) {
		if r.PathValue("host_id") != id {
			s.count(id, http.StatusForbidden)
			writeError(w, http.StatusForbidden, "a host key reads only its own host")
			return
		}
		next(w, r, id)
	}
}

func (s *Sim) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.AdminKey == "" || !bearerIs(r, s.AdminKey) {
			writeError(w, http.StatusUnauthorized, "admin key required")
			return
		}
		next(w, r)
	}
}

func (s *Sim) hostFor(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, id := range s.keys {
		if subtle.ConstantTimeCompare([]byte(key), []byte(tok)) == 1 {
			return id, true
		}
	}
	return "", false
}

func bearerIs(r *http.Request, key string) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(key)) == 1
}

func (s *Sim) count(id string, status int) {
	_ = s.withHost(id, func(h *host) error { h.rejected[status]++; return nil })
}

func (s *Sim) ingest(w http.ResponseWriter, r *http.Request, id string) {
	limit := s.MaxReportBytes
	if limit <= 0 {
		limit = DefaultMaxReportBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			s.count(id, http.StatusRequestEntityTooLarge)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("report over %d bytes", limit))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the report: "+err.Error())
		return
	}
	var head struct {
		HostID       string `json:"host_id"`
		AgentVersion string `json:"agent_version"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		s.count(id, http.StatusBadRequest)
		writeError(w, http.StatusBadRequest, "the report is not a JSON object")
		return
	}
	if head.HostID != id {
		s.count(id, http.StatusForbidden)
		writeError(w, http.StatusForbidden, "host_id does not match the key")
		return
	}
	var env map[string]any
	malformed := s.Faults().Malformed
	err = s.withHost(id, func(h *host) error {
		h.reports = append(h.reports, Report{At: time.Now().UTC(), Bytes: len(body), Body: body})
		env = map[string]any{
			"poll_interval_seconds": h.poll,
			"blocked":               h.blocked,
			"desired_generation":    h.generation,
			"has_signed_ops":        len(h.jobs) > 0,
		}
		return nil
	})
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	switch malformed {
	case "envelope":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"poll_interval_seconds": 60,`)
		return
	case "envelope_types":
		env["poll_interval_seconds"] = "soon"
		env["desired_generation"] = -1
	case "huge":
		env["padding"] = strings.Repeat("x", 1<<20)
	}
	writeJSON(w, http.StatusOK, env)
}

func (s *Sim) desiredState(w http.ResponseWriter, r *http.Request, id string) {
	var gen int64
	var doc json.RawMessage
	_ = s.withHost(id, func(h *host) error { gen, doc = h.generation, h.desired; return nil })
	if doc == nil {
		doc = json.RawMessage("null")
	}
	switch s.Faults().Malformed {
	case "desired":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"generation": `+strconv.FormatInt(gen, 10)+`, "desired_state": {`)
		return
	case "desired_schema":
		doc = json.RawMessage(`{"schema": 99, "guests": "all of them"}`)
	}
	writeJSON(w, http.StatusOK, map[string]any{"generation": gen, "desired_state": doc})
}

func (s *Sim) listJobs(w http.ResponseWriter, r *http.Request, id string) {
	var jobs []Job
	_ = s.withHost(id, func(h *host) error { jobs = append([]Job{}, h.jobs...); return nil })
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

func (s *Sim) clearJob(w http.ResponseWriter, r *http.Request, id string) {
	jid := r.PathValue("job_id")
	s.mu.Lock()
	lost := s.faults.FailClear > 0
	if lost {
		s.faults.FailClear--
	}
	s.mu.Unlock()
	if lost {
		writeError(w, http.StatusServiceUnavailable, "hubsim: fail_clear: the job stays queued")
		return
	}
	_ = s.withHost(id, func(h *host) error {
		for i, j := range h.jobs {
			if j.ID == jid {
				h.jobs = append(h.jobs[:i], h.jobs[i+1:]...)
				h.cleared = append(h.cleared, jid)
				break
			}
		}
		return nil
	})
	w.WriteHeader(http.StatusNoContent) // idempotent: an unknown id is cleared already
}

func (s *Sim) putDesired(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	gen, err := s.SetDesired(r.PathValue("host_id"), body)
	switch {
	case err != nil && strings.Contains(err.Error(), "no host"):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]any{"generation": gen})
	}
}

func (s *Sim) postJob(w http.ResponseWriter, r *http.Request) {
	var j Job
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&j); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id, err := s.EnqueueJob(r.PathValue("host_id"), j)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"job_id": id})
}

func (s *Sim) postHost(w http.ResponseWriter, r *http.Request) {
	var h struct {
		HostID string `json:"host_id"`
		APIKey string `json:"api_key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&h); err != nil || h.HostID == "" || h.APIKey == "" {
		writeError(w, http.StatusBadRequest, "want {host_id, api_key}")
		return
	}
	s.AddHost(h.HostID, h.APIKey)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) getReports(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("host_id")
	if err := s.withHost(id, func(*host) error { return nil }); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	reps := s.Reports(id)
	if reps == nil {
		reps = []Report{}
	}
	writeJSON(w, http.StatusOK, reps)
}

func (s *Sim) getCleared(w http.ResponseWriter, r *http.Request) {
	c := s.Cleared(r.PathValue("host_id"))
	if c == nil {
		c = []string{}
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *Sim) putEnvelope(w http.ResponseWriter, r *http.Request) {
	var e struct {
		Poll    int  `json:"poll_interval_seconds"`
		Blocked bool `json:"blocked"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&e); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.SetEnvelope(r.PathValue("host_id"), e.Poll, e.Blocked); err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&f); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.SetFaults(f)
	w.WriteHeader(http.StatusNoContent)
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
