package safety

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// RunInfo is what the gate knows of the run it guards; it binds a
// signature to the run.
type RunInfo struct {
	ID       string
	Playbook string
	// Triggers are the playbook's declared triggers: a signed op may name
	// the playbook or one of them.
	Triggers []string
	// Params is the run's coerced parameter record as JSON.
	Params json.RawMessage
	// Source is where the run came from (for the audit).
	Source string
}

// Pending is a destructive call the run's signature does not cover: what
// would be done, and the operation an operator would sign to allow it.
type Pending struct {
	ID     string // "p-" + the op's nonce
	Run    string
	Effect Effect
	Op     Op
	// Blob is Op's canonical JSON: the exact bytes to sign.
	Blob    []byte
	Created time.Time
}

// Covers reports whether a verified op allows what p asks for: the same
// op, target and params (compared canonically); the nonce and the window
// may differ (an operator may issue a fresh blob).
func (p *Pending) Covers(v *Verified) error {
	return covers(v, p.Op.Op, []string{p.Op.Op}, p.Op.Target, p.Op.Params)
}

func covers(v *Verified, playbook string, triggers []string, target Target, params json.RawMessage) error {
	if v.Signer.Role != RoleOperational {
		return fmt.Errorf("signed by a %s key; destructive operations need an operational key", v.Signer.Role)
	}
	if v.Op.Op != playbook && !slices.Contains(triggers, v.Op.Op) {
		return fmt.Errorf("it allows %q, not %q", v.Op.Op, playbook)
	}
	if v.Target != target {
		return fmt.Errorf("it is for guest %d on %q, not guest %d on %q", v.Target.GuestID, v.Target.HostID, target.GuestID, target.HostID)
	}
	a, err1 := CanonicalJSON(v.Params)
	b, err2 := CanonicalJSON(params)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		return errors.New("its params differ from the run's")
	}
	return nil
}

// Approver decides a destructive call that the run's signature does not
// cover. Approve returns a verified op that covers p (the call goes on),
// or an error (the call is refused, and the run fails with it). The agent
// parks the run until an operator approves; the simulator's operator
// signs at once; a run with nobody to ask refuses.
type Approver interface {
	Approve(ctx context.Context, p *Pending) (*Verified, error)
}

// Decision is what the gate decided about one call.
type Decision string

const (
	Allowed        Decision = "allowed"         // benign
	AllowedOwn     Decision = "allowed_own"     // destructive in kind, on what the run created
	AllowedSigned  Decision = "allowed_signed"  // destructive, covered by an operator's signature
	Refused        Decision = "refused"         // destructive, not covered
	PendingOp      Decision = "pending"         // destructive, parked for a signature
	RefusedUnknown Decision = "refused_unknown" // a fact could not be read
)

// AuditEntry is one gate decision, allowed or refused.
type AuditEntry struct {
	At       time.Time `json:"at"`
	Run      string    `json:"run"`
	Playbook string    `json:"playbook"`
	Source   string    `json:"source"`
	Decision Decision  `json:"decision"`
	Guest    int       `json:"guest,omitempty"`
	What     string    `json:"what"`
	Rule     string    `json:"rule"`
	// Signer is the fingerprint of the key whose signature allowed it.
	Signer string `json:"signer,omitempty"`
	// Pending is the pending operation's id, for a parked call.
	Pending string `json:"pending,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// ErrDestructive is wrapped by every refusal of the gate.
var ErrDestructive = errors.New("destructive operation without an operator signature")

// Gate guards one run. It is the run's proxmox.Observer: it forwards
// Request, TaskStarted and TaskWaited to Inner (which may be nil) and
// learns from TaskStarted what the run created; before each mutation or
// changing root command it classifies the call, decides, records the
// decision with Audit, and only then asks Inner (the run store's gate,
// which writes the intent) if Inner is a proxmox.MutationGate.
type Gate struct {
	Run      RunInfo
	HostID   string
	Policy   Policy
	Facts    Facts
	Approver Approver // nil refuses every uncovered destructive call
	Audit    func(AuditEntry)
	Inner    proxmox.Observer
	Now      func() time.Time
	// Signature is the run's operator signature (a signed job or an
	// approval that started it); nil for none. The gate sets it when an
	// Approver approves.
	Signature *Verified
	// Simulated marks decisions of the simulated operator in the audit.
	Simulated bool

	mu      sync.Mutex
	created map[int]bool
	snaps   map[string]bool // "vmid/name" of the snapshots the run took: their tasks ended OK
	// taking are the snapshot tasks started and not yet seen to end OK,
	// by UPID: a snapshot task that fails took nothing of the run's (PVE
	// refuses a name already used inside the worker, so a failed task may
	// stand beside another's snapshot of that name).
	taking   map[string]string
	tasks    map[string]bool
	expect   *expectation // the mutation sent last, to pair with its UPID
	storages []string     // the node's backup storages, read once (backupStorages)
	refused  *Pending     // the last pending operation refused for want of an Approver
}

// Refused is the last pending operation the gate refused for want of an
// Approver (a console run has nobody to ask), or nil: what an operator
// would sign, even when the playbook caught the refusal and failed with
// words of its own.
func (g *Gate) Refused() *Pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

// expectation is what a mutation that is being sent will have created
// once its task starts.
type expectation struct {
	typ  []string // UPID types that confirm it
	vmid int
	snap string
}

var (
	_ proxmox.Observer     = (*Gate)(nil)
	_ proxmox.MutationGate = (*Gate)(nil)
	_ proxmox.RootGate     = (*Gate)(nil)
	_ Record               = (*Gate)(nil)
)

// CreatedGuest implements [Record]: a task of the run created vmid (a
// create or restore that was not forced over an existing guest), or a root
// create on a free vmid.
func (g *Gate) CreatedGuest(vmid int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.created[vmid]
}

// TookSnapshot implements [Record].
func (g *Gate) TookSnapshot(vmid int, name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.snaps[strconv.Itoa(vmid)+"/"+name]
}

// StartedTask implements [Record].
func (g *Gate) StartedTask(upid string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tasks[upid]
}

// Remember adds to the run's record what an earlier life of the run did
// (its recorded tasks after a restart): created guests and tasks.
func (g *Gate) Remember(upids []proxmox.UPID) {
	for _, u := range upids {
		g.mu.Lock()
		g.note()
		g.tasks[u.String()] = true
		switch u.Type {
		case "vzcreate", "qmcreate", "vzrestore", "qmrestore":
			if n, err := strconv.Atoi(u.ID); err == nil {
				g.created[n] = true
			}
		}
		g.mu.Unlock()
	}
}

func (g *Gate) note() {
	if g.created == nil {
		g.created, g.snaps, g.taking, g.tasks = map[int]bool{}, map[string]bool{}, map[string]string{}, map[string]bool{}
	}
}

// Request implements proxmox.Observer.
func (g *Gate) Request(info proxmox.RequestInfo) {
	if g.Inner != nil {
		g.Inner.Request(info)
	}
}

// TaskStarted implements proxmox.Observer: the run's record grows by the
// task, and by the guest it creates. A snapshot it takes counts once its
// task has ended OK (TaskWaited).
func (g *Gate) TaskStarted(u proxmox.UPID) {
	g.mu.Lock()
	g.note()
	g.tasks[u.String()] = true
	if e := g.expect; e != nil && slices.Contains(e.typ, u.Type) && u.ID == strconv.Itoa(e.vmid) {
		if e.snap != "" {
			g.taking[u.String()] = u.ID + "/" + e.snap
		} else {
			g.created[e.vmid] = true
		}
	}
	g.expect = nil
	g.mu.Unlock()
	if g.Inner != nil {
		g.Inner.TaskStarted(u)
	}
}

// TaskWaited implements proxmox.Observer: a snapshot task of the run that
// ended OK makes its snapshot the run's; one that failed, none.
func (g *Gate) TaskWaited(u proxmox.UPID, took time.Duration, st proxmox.TaskStatus, err error) {
	g.mu.Lock()
	if key, ok := g.taking[u.String()]; ok && !st.Running() {
		delete(g.taking, u.String())
		if err == nil && st.Succeeded() {
			g.snaps[key] = true
		}
	}
	g.mu.Unlock()
	if g.Inner != nil {
		g.Inner.TaskWaited(u, took, st, err)
	}
}

func (g *Gate) classifier(ctx context.Context) *classifier {
	f := g.Facts
	if f == nil {
		f = noFacts{}
	}
	return &classifier{ctx: ctx, policy: g.Policy, rec: g, facts: f, storages: g.backupStorages}
}

// noFacts is a gate without reads: every fact is unknown, so a call that
// needs one is destructive.
type noFacts struct{}

var errNoFacts = errors.New("the gate has no way to read the host")

func (noFacts) MountPoint(context.Context, int, string) (string, error) { return "", errNoFacts }

func (noFacts) GuestExists(context.Context, int) (bool, error)   { return false, errNoFacts }
func (noFacts) BackupStorages(context.Context) ([]string, error) { return nil, errNoFacts }
func (noFacts) StorageBackups(context.Context, string, int) ([]proxmox.Volume, error) {
	return nil, errNoFacts
}
func (noFacts) Retention(context.Context, string) (string, error) { return "", errNoFacts }

// BeforeMutation implements proxmox.MutationGate.
func (g *Gate) BeforeMutation(ctx context.Context, m proxmox.Mutation) error {
	eff, err := g.classifier(ctx).classifyMutation(m)
	if err := g.decide(ctx, eff, err); err != nil {
		return err
	}
	g.expectFrom(m, eff)
	if inner, ok := g.Inner.(proxmox.MutationGate); ok {
		return inner.BeforeMutation(ctx, m)
	}
	return nil
}

// BeforeRoot implements proxmox.RootGate.
func (g *Gate) BeforeRoot(ctx context.Context, op proxmox.RootOp) error {
	eff, err := g.classifier(ctx).classifyRoot(op)
	if err := g.decide(ctx, eff, err); err != nil {
		return err
	}
	if op.Op == "host.create_golden" && eff.Rule == "create" {
		// pct create on a free vmid: whatever it leaves is the run's.
		g.mu.Lock()
		g.note()
		g.created[op.VMID] = true
		g.mu.Unlock()
	}
	switch inner := g.Inner.(type) {
	case proxmox.RootGate:
		return inner.BeforeRoot(ctx, op)
	case proxmox.MutationGate: // the run store writes the command's intent
		return inner.BeforeMutation(ctx, proxmox.Mutation{Method: "EXEC", Path: strings.Join(op.Argv, " ")})
	}
	return nil
}

// expectFrom notes what m creates once its task starts.
func (g *Gate) expectFrom(m proxmox.Mutation, eff Effect) {
	var e *expectation
	switch eff.Rule {
	case "create":
		if m.Params.Get("force") != "1" {
			e = &expectation{typ: []string{"vzcreate", "qmcreate", "vzrestore", "qmrestore"}, vmid: eff.Guest}
		}
	case "snapshot":
		e = &expectation{typ: []string{"vzsnapshot", "qmsnapshot"}, vmid: eff.Guest, snap: m.Params.Get("snapname")}
	}
	g.mu.Lock()
	g.expect = e
	g.mu.Unlock()
}

// decide allows eff, or asks the Approver, or refuses; it records the
// decision.
func (g *Gate) decide(ctx context.Context, eff Effect, factErr error) error {
	entry := AuditEntry{Run: g.Run.ID, Playbook: g.Run.Playbook, Source: g.Run.Source, Guest: eff.Guest, What: eff.What, Rule: eff.Rule}
	if factErr != nil {
		entry.Decision, entry.Detail = RefusedUnknown, factErr.Error()
		g.audit(entry)
		return &RefusedError{Effect: eff, Cause: fmt.Errorf("the gate could not read what it needs to classify it, so it counts as destructive: %w", factErr)}
	}
	if !eff.Destructive {
		entry.Decision = Allowed
		if len(eff.Rule) > 4 && eff.Rule[:4] == "own-" {
			entry.Decision = AllowedOwn
		}
		g.audit(entry)
		return nil
	}
	target := Target{HostID: g.HostID, GuestID: eff.Guest}
	g.mu.Lock()
	sig := g.Signature
	g.mu.Unlock()
	if sig != nil {
		if err := covers(sig, g.Run.Playbook, g.Run.Triggers, target, g.Run.Params); err == nil {
			entry.Decision, entry.Signer = AllowedSigned, sig.Signer.Fingerprint()
			g.audit(entry)
			return nil
		} else {
			entry.Detail = "the run's signature does not cover it: " + err.Error()
		}
	}
	p, err := g.pending(eff, target)
	if err != nil {
		entry.Decision = Refused
		g.audit(entry)
		return &RefusedError{Effect: eff, Cause: err}
	}
	if g.Approver == nil {
		entry.Decision, entry.Pending = Refused, p.ID
		g.mu.Lock()
		g.refused = p
		g.mu.Unlock()
		g.audit(entry)
		return &RefusedError{Effect: eff, Pending: p}
	}
	entry.Decision, entry.Pending = PendingOp, p.ID
	g.audit(entry)
	v, err := g.Approver.Approve(ctx, p)
	if err != nil {
		entry.Decision, entry.Detail = Refused, err.Error()
		entry.At = time.Time{}
		g.audit(entry)
		return &RefusedError{Effect: eff, Pending: p, Cause: err}
	}
	if err := p.Covers(v); err != nil { // an Approver's own mistake
		entry.Decision, entry.Detail = Refused, err.Error()
		entry.At = time.Time{}
		g.audit(entry)
		return &RefusedError{Effect: eff, Pending: p, Cause: fmt.Errorf("the approval %w", err)}
	}
	g.mu.Lock()
	g.Signature = v
	g.mu.Unlock()
	entry.Decision, entry.Signer, entry.Detail, entry.At = AllowedSigned, v.Signer.Fingerprint(), "", time.Time{}
	if g.Simulated {
		entry.Detail = "signed by the simulated operator"
	}
	g.audit(entry)
	return nil
}

// PendingTTL is how long a pending operation's blob is valid for signing.
const PendingTTL = 24 * time.Hour

func (g *Gate) pending(eff Effect, target Target) (*Pending, error) {
	now := g.now()
	params := g.Run.Params
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	op := Op{Op: g.Run.Playbook, Target: target, Params: params, Nonce: NewNonce(),
		IssuedAt: now.UTC().Truncate(time.Second), ExpiresAt: now.Add(PendingTTL).UTC().Truncate(time.Second)}
	blob, err := op.Canonical()
	if err != nil {
		return nil, err
	}
	return &Pending{ID: "p-" + op.Nonce[:16], Run: g.Run.ID, Effect: eff, Op: op, Blob: blob, Created: now}, nil
}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gate) audit(e AuditEntry) {
	if e.At.IsZero() {
		e.At = g.now()
	}
	if g.Audit != nil {
		g.Audit(e)
	}
}

// RefusedError is a destructive call the gate refused: nobody to ask
// (Pending carries the operation an operator could sign), an approval that
// did not come (Cause), or a fact the gate could not read (Cause).
type RefusedError struct {
	Effect  Effect
	Pending *Pending // nil when no pending operation was made
	Cause   error    // nil when nobody was asked
}

func (e *RefusedError) Error() string {
	msg := ErrDestructive.Error() + ": " + e.Effect.What
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	} else {
		msg += " needs an operator's signature; nothing was done"
	}
	if e.Pending != nil {
		msg += " (pending operation " + e.Pending.ID + ")"
	}
	return msg
}

// Unwrap makes it an ErrDestructive, and its cause.
func (e *RefusedError) Unwrap() []error { return []error{ErrDestructive, e.Cause} }

// ErrorKind is the run's error kind (proxmox.Kind reads it): "signature".
func (e *RefusedError) ErrorKind() string { return KindSignature }

// KindSignature is the error kind of a run the gate stopped.
const KindSignature = "signature"
