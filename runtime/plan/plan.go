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
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
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
	// Policy is the safety gate's policy a run would meet (scratch
	// guests, min_backups): the plan's calls pass the same gate, and a
	// step it would hold for an operator's signature is marked (Gated).
	Policy safety.Policy
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
	// Gated is what the safety gate said of a step that needs an
	// operator's signature ("destroy lxc 102 (not created by the run)");
	// "" for one that passes it unsigned. The plan goes on past it as if
	// signed; a run without a signature would stop there.
	Gated string `json:"gated,omitempty"`
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
	gate, err := planGate(client, pb, params, cfg.Policy, rec)
	if err != nil {
		return nil, err
	}
	res := eng.Run(proxmox.WithObserver(ctx, gate), pb, params, engine.RunOptions{Trigger: "plan"})

	r := &Report{Playbook: res.Playbook, Status: string(res.Status), Error: res.Error, Assumptions: assumed}
	if len(res.Output) > 0 && string(res.Output) != "null" {
		r.Result = res.Output
	}
	for _, m := range rec.mutations() {
		st := Step{What: describe(m), Method: m.method, Path: m.path, Outcome: m.outcome, UPID: m.upid, Gated: m.gated}
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
	gated        string // the gate's word when it needs a signature (Step.Gated)
}

// recorder passes every request to the mirror and notes each mutating
// one with its parameters and answer.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	muts []mutation
	// gated is the gate's word on the mutation about to be sent, set by
	// the gate's audit just before it goes (the run's calls are one at a
	// time) and taken by the mutation's request.
	gated string
}

// gateSaid notes what the gate said of the call about to be sent ("" for
// nothing to note).
func (rc *recorder) gateSaid(what string) {
	rc.mu.Lock()
	rc.gated = what
	rc.mu.Unlock()
}

// planGate is the safety gate of the plan's run: the run's own gate, with
// the mirror's facts and the given policy, whose pending operations the
// simulated operator signs (so the plan shows what follows) and which tells
// rec of each. A root command it classifies is no step of the plan: what it
// said of one is dropped before the next request.
func planGate(client *proxmox.Client, pb *engine.Playbook, params *engine.Params, policy safety.Policy, rec *recorder) (*planObserver, error) {
	recJSON, err := json.Marshal(params.Record())
	if err != nil {
		return nil, err
	}
	g := &safety.Gate{
		Run:    safety.RunInfo{ID: "plan", Playbook: pb.Name, Triggers: pb.Decl.Triggers, Params: recJSON, Source: "plan"},
		HostID: client.Node(), Policy: policy, Facts: safety.ClientFacts{C: client},
		Audit: func(e safety.AuditEntry) {
			if e.Decision == safety.PendingOp {
				what := e.What
				if e.Rule != "" {
					what += " (" + e.Rule + ")"
				}
				rec.gateSaid(what)
			}
		},
	}
	if err := g.SignSimulated(); err != nil {
		return nil, err
	}
	return &planObserver{Gate: g, rec: rec}, nil
}

// planObserver is the plan's gate (see planGate).
type planObserver struct {
	*safety.Gate
	rec *recorder
}

// BeforeRoot passes a root command through the gate and forgets what it
// said: root commands are no steps of the plan.
func (o *planObserver) BeforeRoot(ctx context.Context, op proxmox.RootOp) error {
	err := o.Gate.BeforeRoot(ctx, op)
	o.rec.gateSaid("")
	return err
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
	m.gated, rc.gated = rc.gated, ""
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
