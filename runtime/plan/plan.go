package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// Config is what a plan runs with. Zero fields mean the engine's defaults.
type Config struct {
	MaxSteps      uint64
	MaxMemory     int64
	Logger        *slog.Logger // the mirror run's log; nil discards it
	MountPrefix   string       // the host module's mount prefix; "" means /mnt
	PrivilegedRun bool         // the configuration enables the host module
	// Now is the mirror's clock, which its tasks and the playbook's
	// time.now() follow; nil means the host's (time.Now).
	Now func() time.Time
	// Desired is what hub.desired_state() reads in the plan: a serving
	// agent's desired state; nil means none (as without a hub).
	Desired builtins.DesiredSource
}

// Report is a plan: the mutations in the order the playbook sent them,
// the predicted end of the run, the change in state and the assumptions.
type Report struct {
	Playbook    string          `json:"playbook"`
	Steps       []Step          `json:"steps"`
	Status      string          `json:"status"`
	Error       string          `json:"error,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Changes     []string        `json:"changes"`
	Assumptions []string        `json:"assumptions"`
}

// Step is one mutating request the playbook sent to the mirror.
type Step struct {
	What    string `json:"what"`    // "vzdump 101 → usb-backup (snapshot, zstd)"
	Method  string `json:"method"`  // POST, PUT, DELETE
	Path    string `json:"path"`    // below /api2/json
	Outcome string `json:"outcome"` // "OK", the task's error, or the refusal
	UPID    string `json:"upid,omitempty"`
}

// Run mirrors the host h, runs pb with params against the mirror and
// reports what it did there. The error is for a host that could not be
// read; a playbook that fails in the mirror is a Report with its status.
func Run(ctx context.Context, h HostReader, pb *engine.Playbook, params *engine.Params, cfg Config) (*Report, error) {
	sim, assumed, err := Mirror(ctx, h, cfg.Now)
	if err != nil {
		return nil, err
	}
	before := snapshotState(sim)
	rec := &recorder{next: sim}
	rt, stop := pvesim.PipeTransport(rec)
	defer stop()
	tok, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
	if err != nil {
		return nil, err
	}
	client, err := proxmox.New(proxmox.Config{Endpoint: "https://mirror.plan:8006", Node: h.Node(), Token: tok}, proxmox.WithTransport(rt))
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	env := builtins.Env{Proxmox: client, Progress: builtins.ProgressOptions{Interval: -1}, Now: cfg.Now, Desired: cfg.Desired}
	if cfg.PrivilegedRun {
		prefix := cfg.MountPrefix
		if prefix == "" {
			prefix = "/mnt"
		}
		priv, err := proxmox.NewPrivileged(proxmox.PrivilegedConfig{MountPrefix: prefix}, sim.RootRunner())
		if err != nil {
			return nil, err
		}
		env.Host = priv
	}
	eng := engine.NewEngine(engine.Config{Env: env, MaxSteps: cfg.MaxSteps, MaxMemory: cfg.MaxMemory, Logger: logger})
	res := eng.Run(ctx, pb, params, engine.RunOptions{Trigger: "plan"})

	r := &Report{Playbook: res.Playbook, Status: string(res.Status), Error: res.Error, Assumptions: assumed}
	if len(res.Output) > 0 && string(res.Output) != "null" {
		r.Result = res.Output
	}
	for _, m := range rec.mutations() {
		st := Step{What: describe(m), Method: m.method, Path: m.path, Outcome: m.outcome, UPID: m.upid}
		if m.upid != "" {
			if t, ok := sim.Task(m.upid); ok {
				switch {
				case t.Running:
					st.Outcome = "still running when the run ended"
				default:
					st.Outcome = t.ExitStatus
				}
			}
		}
		r.Steps = append(r.Steps, st)
	}
	r.Changes = diff(before, snapshotState(sim))
	return r, nil
}

// mutation is one non-GET request the recorder passed to the mirror.
type mutation struct {
	method, path string
	params       url.Values
	outcome      string // for a refused request, PVE's message; else ""
	upid         string
}

// recorder passes every request to the mirror and notes each mutating
// one with its parameters and answer.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	muts []mutation
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		rc.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	params, _ := url.ParseQuery(string(body))
	for k, vs := range r.URL.Query() {
		params[k] = append(params[k], vs...)
	}
	cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
	rc.next.ServeHTTP(cw, r)
	m := mutation{method: r.Method, path: strings.TrimPrefix(r.URL.Path, "/api2/json"), params: params}
	var env struct {
		Data    any    `json:"data"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(cw.body.Bytes(), &env)
	switch s, _ := env.Data.(string); {
	case cw.status >= 300:
		m.outcome = fmt.Sprintf("refused: %d %s", cw.status, strings.TrimSpace(env.Message))
	case strings.HasPrefix(s, "UPID:"):
		m.upid = s
	default:
		m.outcome = "OK"
	}
	rc.mu.Lock()
	rc.muts = append(rc.muts, m)
	rc.mu.Unlock()
}

func (rc *recorder) mutations() []mutation {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.muts)
}

type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	c.body.Write(p)
	return c.ResponseWriter.Write(p)
}
