package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// SafetyConfig configures the safety gate every run passes
// (runtime/safety, docs/safety.md). The zero value is a host with no
// operator keys: benign work runs, destructive calls park as pending
// operations that nobody can sign until keys are configured.
type SafetyConfig struct {
	// OperatorKeys is safety.operator_keys: the allow-list file (OpenSSH
	// public keys, authorized_keys syntax, each marked role="operational"
	// or role="recovery"); "" means none. A signed rotation writes the
	// agent's own copy into the state directory, which then wins.
	OperatorKeys string
	// MinBackups is safety.min_backups: how many of a guest's newest
	// backups no unsigned run may delete or prune away; 0 means 1.
	MinBackups int
	// ScratchVMIDs is safety.scratch_vmids: guests that count as every
	// run's own (rolling them back, deleting them is benign).
	ScratchVMIDs []int
	// HostID is the target id signed operations must name: hub.host_id,
	// or the Proxmox node name without a hub; "" means that choice.
	HostID string
	// SimOperator signs every pending operation at once with a key only
	// the simulated world holds (--sim): examples keep working, and the
	// run log says who signed.
	SimOperator bool
	// Facts are the gate's reads about the host; nil means through
	// Engine.Env.Proxmox.
	Facts safety.Facts
}

// agentSafety is the agent's half of the gate: the verifier with its
// allow-list and nonce record, and the runs parked at a destructive call.
type agentSafety struct {
	verifier *safety.Verifier
	nonces   *safety.FileNonces
	sim      *safety.SimOperator // nil unless SafetyConfig.SimOperator
	policy   safety.Policy
	facts    safety.Facts

	mu     sync.Mutex
	parked map[string]*parkedCall // by pending id
}

// parkedCall is a run waiting at a destructive call.
type parkedCall struct {
	lr      *liveRun
	pending *safety.Pending
	answer  chan *safety.Verified // one approval, buffered
	// answered is set (under agentSafety.mu) once an approval is on its
	// way: a second one is refused before it spends its nonce.
	answered bool
}

// nonceFile is the nonce record's name in the state directory.
const nonceFile = "nonces"

// newSafety builds the gate's state; it is called once the state
// directory is locked.
func (a *Agent) newSafety() error {
	cfg := a.cfg.Safety
	host := cfg.HostID
	if host == "" && a.cfg.Hub != nil {
		host = a.cfg.Hub.Client.HostID
	}
	if host == "" && a.cfg.Engine.Env.Proxmox != nil {
		host = a.cfg.Engine.Env.Proxmox.Node()
	}
	ring, err := safety.LoadKeyRing(cfg.OperatorKeys, a.cfg.StateDir)
	if err != nil {
		return &SettingError{Field: "Safety.OperatorKeys", Err: err}
	}
	nonces, err := safety.OpenFileNonces(filepath.Join(a.cfg.StateDir, nonceFile), nil)
	if err != nil {
		return &SettingError{Field: "StateDir", Err: err}
	}
	s := &agentSafety{
		verifier: &safety.Verifier{Keys: ring, Nonces: nonces, HostID: host},
		nonces:   nonces,
		policy:   safety.Policy{MinBackups: cfg.MinBackups, Scratch: cfg.ScratchVMIDs},
		facts:    cfg.Facts,
		parked:   map[string]*parkedCall{},
	}
	if s.facts == nil && a.cfg.Engine.Env.Proxmox != nil {
		s.facts = safety.ClientFacts{C: a.cfg.Engine.Env.Proxmox}
	}
	if cfg.SimOperator {
		if s.sim, err = safety.NewSimOperator(s.verifier); err != nil {
			return err
		}
	}
	a.safe = s
	return nil
}

// gateFor builds the gate of one run; inner is the run store's observer.
func (a *Agent) gateFor(lr *liveRun, pb *engine.Playbook, inner *runTasks, logger *slog.Logger) *safety.Gate {
	g := &safety.Gate{
		Run:    safety.RunInfo{ID: lr.id, Playbook: pb.Name, Triggers: pb.Decl.Triggers, Params: lr.params, Source: string(lr.source)},
		HostID: a.safe.verifier.HostID, Policy: a.safe.policy, Facts: a.safe.facts,
		Inner: inner, Signature: lr.signature,
		Audit: func(e safety.AuditEntry) { a.recordAudit(lr, e, logger) },
	}
	if lr.resume != nil {
		// A run that resumes after a restart: what its earlier life created
		// is in its record (the tasks it started).
		if rec, err := a.store.Get(context.Background(), lr.id); err == nil {
			var upids []proxmox.UPID
			for _, t := range rec.Tasks {
				if u, err := proxmox.ParseUPID(t.UPID); err == nil {
					upids = append(upids, u)
				}
			}
			g.Remember(upids)
		}
	}
	if a.safe.sim != nil {
		g.Approver, g.Simulated = a.safe.sim, true
	} else {
		g.Approver = parker{a: a, lr: lr, logger: logger}
	}
	return g
}

// recordAudit writes a gate decision to the store and the run's log.
func (a *Agent) recordAudit(lr *liveRun, e safety.AuditEntry, logger *slog.Logger) {
	raw, err := json.Marshal(e)
	if err == nil {
		err = a.store.AppendAudit(context.Background(), e.At, e.Run, raw)
	}
	if err != nil {
		a.log.Error("recording a safety gate decision failed", "run", lr.id, "err", err)
	}
	level := slog.LevelInfo
	if e.Decision == safety.Refused || e.Decision == safety.RefusedUnknown {
		level = slog.LevelWarn
	}
	if e.Decision == safety.Allowed {
		level = slog.LevelDebug
	}
	attrs := []any{"decision", string(e.Decision), "what", e.What, "rule", e.Rule}
	if e.Signer != "" {
		attrs = append(attrs, "signer", e.Signer)
	}
	if e.Pending != "" {
		attrs = append(attrs, "pending", e.Pending)
	}
	if e.Detail != "" {
		attrs = append(attrs, "detail", e.Detail)
	}
	logger.Log(context.Background(), level, "safety gate", attrs...)
}

// parker is the agent's [safety.Approver]: it records the pending
// operation, parks the run in status pending_signature, and waits for an
// approval (felhom-agent approve) or the run's end (deadline, cancel,
// shutdown).
type parker struct {
	a      *Agent
	lr     *liveRun
	logger *slog.Logger
}

func (p parker) Approve(ctx context.Context, pend *safety.Pending) (*safety.Verified, error) {
	a := p.a
	rec := store.PendingOp{ID: pend.ID, Run: pend.Run, Playbook: pend.Op.Op, Guest: pend.Op.Target.GuestID, What: pend.Effect.What,
		Blob: pend.Blob, Created: pend.Created, Expires: pend.Op.ExpiresAt}
	if err := a.store.AddPending(context.Background(), rec); err != nil {
		return nil, fmt.Errorf("the pending operation could not be recorded: %w", err)
	}
	call := &parkedCall{lr: p.lr, pending: pend, answer: make(chan *safety.Verified, 1)}
	a.safe.mu.Lock()
	a.safe.parked[pend.ID] = call
	a.safe.mu.Unlock()
	defer func() {
		a.safe.mu.Lock()
		delete(a.safe.parked, pend.ID)
		a.safe.mu.Unlock()
	}()
	if err := a.store.SetParked(context.Background(), p.lr.id, true); err != nil {
		return nil, fmt.Errorf("parking the run: %w", err)
	}
	p.logger.Warn("run parked: a destructive call waits for an operator's signature",
		"pending", pend.ID, "what", pend.Effect.What, "sign", "felhom-agent sign "+pend.ID+" && felhom-agent approve "+pend.ID)
	p.lr.log.flush()
	p.lr.notify()
	a.metrics.pendingOps.Inc()
	defer a.metrics.pendingOps.Dec()
	select {
	case v := <-call.answer:
		if err := a.store.SetParked(context.Background(), p.lr.id, false); err != nil {
			return nil, fmt.Errorf("resuming the run: %w", err)
		}
		// The run carries the signature from now on, after a restart too.
		sealed, err := a.sealSignature(v)
		if err == nil {
			err = a.store.SetSignature(context.Background(), p.lr.id, sealed)
		}
		if err != nil {
			p.logger.Error("recording the run's signature failed: after a restart it would wait for a new one", "err", err)
		}
		p.logger.Info("run resumes: the operator signed", "pending", pend.ID, "signer", v.Signer.Fingerprint())
		return v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no operator signed pending operation %s before the run ended: %w", pend.ID, context.Cause(ctx))
	}
}

// carried is an operator signature as a run keeps it in the store, sealed
// with the state key (store.Run.Signature): the signed blob as received
// and its armoured signature — never in a log, a run record shown to
// anyone or a Starlark value.
type carried struct {
	Blob []byte `json:"blob"`
	Sig  []byte `json:"sig"`
}

// sealSignature is v as a run carries it in the store.
func (a *Agent) sealSignature(v *safety.Verified) ([]byte, error) {
	plain, err := json.Marshal(carried{Blob: v.Raw, Sig: v.Armored})
	if err != nil {
		return nil, err
	}
	return a.seal(plain)
}

// carriedSignature is the signature run r carries after a restart (it was
// queued, or interrupted), checked again against the allow-list in force,
// this host, the time window and the run's playbook and params — but not
// the nonce, which this run spent when it was accepted. nil when it
// carries none, or when it no longer covers the run (its key was removed
// from the allow-list, it expired, it cannot be opened): the run then
// parks at its destructive call as an unsigned one does, and an audit
// entry says why. attrs are for the run's first log line: what became of
// its signature.
func (a *Agent) carriedSignature(r store.Run, pb *engine.Playbook) (ver *safety.Verified, attrs []any) {
	if len(r.Signature) == 0 {
		return nil, nil
	}
	var c carried
	plain, err := a.openSealed(r.Signature)
	if err == nil {
		err = json.Unmarshal(plain, &c)
	}
	if err == nil {
		ver, err = a.safe.verifier.Recheck(c.Blob, c.Sig, func(v *safety.Verified) error {
			if v.Signer.Role != safety.RoleOperational {
				return fmt.Errorf("signed by a %s key", v.Signer.Role)
			}
			if v.Op.Op != pb.Name && !slices.Contains(pb.Decl.Triggers, v.Op.Op) {
				return fmt.Errorf("it allows %q, not %q", v.Op.Op, pb.Name)
			}
			if !sameJSON(v.Params, r.Params) {
				return errors.New("its params differ from the run's")
			}
			return nil
		})
	}
	if err == nil {
		return ver, []any{"signature", "carried across the restart, checked again", "signed_by", ver.Signer.Fingerprint()}
	}
	e := safety.AuditEntry{At: time.Now(), Run: r.ID, Playbook: r.Playbook, Source: string(r.Source), Decision: safety.Refused,
		What: "the operator signature run " + r.ID + " carried", Rule: "verify",
		Detail: "it no longer covers the run after the restart, so its destructive calls wait for a new signature: " + err.Error()}
	raw, _ := json.Marshal(e)
	if err := a.store.AppendAudit(context.Background(), e.At, r.ID, raw); err != nil {
		a.log.Error("recording a safety gate decision failed", "run", r.ID, "err", err)
	}
	a.log.Warn("the operator signature a run carried no longer covers it; its destructive calls wait for a new signature",
		"run", r.ID, "playbook", r.Playbook, "err", err)
	return nil, []any{"signature", "no longer covers the run after the restart: " + err.Error()}
}

// Approval is what accepting a signed operation did.
type Approval struct {
	// Pending is the pending operation it approved ("" for none).
	Pending string
	// Run is the run that carries it out: the parked run, which goes on
	// (Resumed), or a new one.
	Run     string
	Resumed bool
	// Rotated: the op rotated the allow-list; Keys is how many keys are
	// in force now.
	Rotated bool
	Keys    int
	Signer  string
}

// ErrSignedOp is wrapped by every refusal of a signed operation (the
// verifier's refusals wrap their own sentinel too, for errors.Is).
var ErrSignedOp = errors.New("signed operation refused")

// AcceptSigned accepts one signed operation from source (an approval, a
// hub job) under the idempotency key: it checks it (the full verifier but
// the nonce), claims its nonce, does what may still refuse it — find the
// run parked at the pending operation it covers, or start a new run of
// its op through the one start path carrying the signature (a draining
// agent, a full queue, an op no playbook answers refuse) — and only then
// spends the nonce, durably, before the parked call goes on or the new
// run is launched. A refusal after the checks leaves the nonce unused, so
// the same signed blob may be offered again; two concurrent acceptances
// of one blob never both go on (the claim); a rotation of the allow-list
// is verified and spent at once. Once per key.
func (a *Agent) AcceptSigned(ctx context.Context, source store.Source, key string, blob, armored []byte) (Approval, error) {
	prior := func() (Approval, bool) {
		if key == "" {
			return Approval{}, false
		}
		if runs, err := a.store.RunsByKey(ctx, source, key); err == nil && len(runs) > 0 {
			return Approval{Run: runs[0].ID}, true
		}
		return Approval{}, false
	}
	if ap, ok := prior(); ok {
		return ap, nil
	}
	var hint struct {
		Op     string          `json:"op"`
		Nonce  string          `json:"nonce"`
		Target safety.Target   `json:"target"`
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(blob, &hint) // only to find what it may approve; verified below
	v := a.safe.verifier
	if hint.Op == safety.OpRotateKeys {
		ver, err := v.Verify(blob, armored, nil)
		if err != nil {
			return Approval{}, a.refusedSigned(source, key, err)
		}
		l, err := v.Rotate(ver)
		if err != nil {
			return Approval{}, fmt.Errorf("%w: the rotation: %w", ErrSignedOp, err)
		}
		a.auditSigned(source, key, ver, "rotated the operator allow-list", "")
		a.log.Warn("operator allow-list rotated", "keys", len(l.Keys), "signer", ver.Signer.Fingerprint(), "file", l.Source)
		return Approval{Rotated: true, Keys: len(l.Keys), Signer: ver.Signer.Fingerprint()}, nil
	}
	// checkClaim verifies the op (covers checks what it must cover) and
	// holds its nonce; a refusal is audited. A replay that lost a race
	// with the same key's first acceptance answers as that one did: then
	// answered is true and ap is that answer.
	checkClaim := func(covers func(*safety.Verified) error) (ver *safety.Verified, c *safety.NonceClaim, ap Approval, answered bool, err error) {
		ver, err = v.Check(blob, armored, covers)
		if err != nil {
			return nil, nil, Approval{}, false, a.refusedSigned(source, key, err)
		}
		c, err = v.Claim(ctx, ver)
		if errors.Is(err, safety.ErrReplay) {
			if ap, ok := prior(); ok {
				return nil, nil, ap, true, nil
			}
		}
		if err != nil {
			return nil, nil, Approval{}, false, a.refusedSigned(source, key, err)
		}
		return ver, c, Approval{}, false, nil
	}

	// A parked run at a pending operation this op covers goes on.
	if call := a.parkedFor(hint.Op, hint.Target, hint.Params); call != nil {
		ver, c, ap, answered, err := checkClaim(call.pending.Covers)
		if answered || err != nil {
			return ap, err
		}
		defer c.Release()
		if !a.safe.takeAnswer(call) {
			return Approval{}, fmt.Errorf("%w: pending operation %s was approved already, or its run ended", ErrSignedOp, call.pending.ID)
		}
		if err := c.Spend(); err != nil {
			a.safe.untakeAnswer(call)
			return Approval{}, a.refusedSigned(source, key, err)
		}
		call.answer <- ver // buffered; taken for this approval alone
		_ = a.store.ResolvePending(context.Background(), call.pending.ID, store.PendingApproved,
			"approved by "+ver.Signer.Fingerprint()+"; the parked run goes on", call.lr.id)
		return Approval{Pending: call.pending.ID, Run: call.lr.id, Resumed: true, Signer: ver.Signer.Fingerprint()}, nil
	}

	// Otherwise a new run carries it out: its op must resolve to exactly
	// one playbook that accepts its params.
	var pb *engine.Playbook
	ver, c, ap, answered, err := checkClaim(func(ver *safety.Verified) error {
		var err error
		pb, err = a.resolveSigned(ver)
		return err
	})
	if answered || err != nil {
		return ap, err
	}
	defer c.Release()
	if key == "" {
		key = ver.Nonce
	}
	params := map[string]json.RawMessage{}
	_ = json.Unmarshal(ver.Params, &params)
	st, err := a.start(ctx, startRequest{Source: source, Key: key, Playbook: pb.Name, Params: params, Signature: ver, Spend: c.Spend,
		Attrs: []any{"signed_by", ver.Signer.Fingerprint(), "guest", ver.Target.GuestID}})
	if err != nil {
		if errors.Is(err, safety.ErrNonceUnrecorded) || errors.Is(err, safety.ErrReplay) {
			return Approval{}, a.refusedSigned(source, key, err)
		}
		return Approval{}, fmt.Errorf("%w: starting %s (its nonce is not used: the same signed operation may be offered again): %w", ErrSignedOp, pb.Name, err)
	}
	out := Approval{Run: st.Runs[0].ID, Signer: ver.Signer.Fingerprint()}
	if st.Existing {
		return out, nil // the key was accepted before; nothing was spent now
	}
	if p := a.openPendingFor(ver); p != nil {
		out.Pending = p.ID
		_ = a.store.ResolvePending(context.Background(), p.ID, store.PendingApproved,
			"approved by "+ver.Signer.Fingerprint()+"; its run had ended, so run "+out.Run+" carries it out", out.Run)
	}
	a.auditSigned(source, key, ver, "accepted: run "+out.Run+" carries it out", out.Run)
	return out, nil
}

// takeAnswer reserves call's one approval: false when it was given
// already or the run stopped waiting.
func (s *agentSafety) takeAnswer(call *parkedCall) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if call.answered || s.parked[call.pending.ID] != call {
		return false
	}
	call.answered = true
	return true
}

// untakeAnswer gives back what takeAnswer reserved (the nonce could not
// be spent).
func (s *agentSafety) untakeAnswer(call *parkedCall) {
	s.mu.Lock()
	call.answered = false
	s.mu.Unlock()
}

// resolveSigned finds the one playbook a signed op names (a playbook
// name, else a trigger that exactly one playbook answers) and checks its
// params against the declaration.
func (a *Agent) resolveSigned(ver *safety.Verified) (*engine.Playbook, error) {
	pb, err := a.resolveOne(ver.Op.Op)
	if err != nil {
		return nil, err
	}
	params := map[string]json.RawMessage{}
	if err := json.Unmarshal(ver.Params, &params); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if _, err := pb.Decl.Coerce(nil, params); err != nil {
		return nil, fmt.Errorf("playbook %s: %w", pb.Name, err)
	}
	return pb, nil
}

// parkedFor returns the live parked call whose pending op matches op,
// target and params (a fresh blob may carry another nonce), or nil.
func (a *Agent) parkedFor(op string, target safety.Target, params json.RawMessage) *parkedCall {
	a.safe.mu.Lock()
	defer a.safe.mu.Unlock()
	for _, c := range a.safe.parked {
		p := c.pending
		if p.Op.Op == op && p.Op.Target == target && sameJSON(p.Op.Params, params) {
			return c
		}
	}
	return nil
}

// openPendingFor returns the open recorded pending operation that ver
// covers, or nil.
func (a *Agent) openPendingFor(ver *safety.Verified) *store.PendingOp {
	open, err := a.store.PendingOps(context.Background(), true, 0)
	if err != nil {
		return nil
	}
	for _, p := range open {
		var op safety.Op
		if json.Unmarshal(p.Blob, &op) != nil {
			continue
		}
		pend := safety.Pending{Op: op}
		if pend.Covers(ver) == nil {
			return &p
		}
	}
	return nil
}

func sameJSON(a, b json.RawMessage) bool {
	x, err1 := safety.CanonicalJSON(a)
	y, err2 := safety.CanonicalJSON(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// refusedSigned records a refused signed operation in the audit and wraps
// the verifier's refusal.
func (a *Agent) refusedSigned(source store.Source, key string, err error) error {
	e := safety.AuditEntry{At: time.Now(), Source: string(source), Decision: safety.Refused, What: "signed operation " + key, Rule: "verify", Detail: err.Error()}
	raw, _ := json.Marshal(e)
	_ = a.store.AppendAudit(context.Background(), e.At, "", raw)
	a.log.Warn("a signed operation was refused", "source", string(source), "key", key, "err", err)
	return fmt.Errorf("%w: %w", ErrSignedOp, err)
}

func (a *Agent) auditSigned(source store.Source, key string, ver *safety.Verified, what, run string) {
	e := safety.AuditEntry{At: time.Now(), Run: run, Source: string(source), Decision: safety.AllowedSigned, Guest: ver.Target.GuestID,
		What: fmt.Sprintf("signed %q for guest %d: %s", ver.Op.Op, ver.Target.GuestID, what), Rule: "verify", Signer: ver.Signer.Fingerprint(), Detail: key}
	raw, _ := json.Marshal(e)
	_ = a.store.AppendAudit(context.Background(), e.At, run, raw)
}

// PendingOps lists the pending operations (open only when open).
func (a *Agent) PendingOps(ctx context.Context, open bool) ([]store.PendingOp, error) {
	return a.store.PendingOps(ctx, open, 0)
}

// HostID is the target id signed operations must name.
func (a *Agent) HostID() string { return a.safe.verifier.HostID }
