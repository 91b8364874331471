package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// startRequest is what a front end (the hub, the local API, a timer, and
// later others) asks of [Agent.start]. Exactly one of Trigger and Playbook
// is set.
type startRequest struct {
	// Source is recorded with the runs; Key, when set, is the idempotency
	// key: a request whose (Source, Key) was accepted before starts
	// nothing and returns that request's runs. At is the trigger's time
	// (a timer's tick); zero means now.
	Source store.Source
	Key    string
	At     time.Time

	// Trigger selects every serving playbook whose declaration lists it,
	// in name order; Playbook selects one playbook by name.
	Trigger  string
	Playbook string
	// Version, with Playbook, is the version the front end means: another
	// serving version refuses (refusedVersion), nothing recorded.
	Version string

	// Args are command-line values (strings), Params JSON values; both are
	// coerced by the declaration ([engine.Declaration.Coerce]), so a
	// front end never interprets a value itself.
	Args   map[string]string
	Params map[string]json.RawMessage

	// RecordRefusal records a parameter refusal as a refused run under
	// Key, where people look (a timer: its tick must not fire again, and
	// nobody is waiting for an answer), instead of refusing synchronously
	// with nothing recorded.
	RecordRefusal bool
	// RefusalHint is appended to a recorded refusal's message ("; a timer
	// passes no parameters").
	RefusalHint string

	// Attrs go on each run's first log line.
	Attrs []any

	// Guest, when set, is the vmid of the guest asking over the guest
	// API (Source guest): Trigger then selects only playbooks that list it
	// in guest_triggers, Params may hold only their guest_params, and the
	// guest's vmid is bound to their GuestVMID parameter.
	Guest int
	// Signature is the verified operator signature the runs carry (a
	// signed job, an approval); nil for none. The safety gate lets a
	// destructive call through only when it covers it; every other
	// source (timers, hub triggers, the local API, the CLI, the guest
	// API) gets benign work and pending operations.
	Signature *safety.Verified
	// Spend, when set, is called once the request passed every check
	// that may refuse it (draining, playbooks, parameters, the queue) and
	// before its runs are recorded and launched: a signed operation's
	// nonce is spent there, durably, so that a request refused for
	// another reason spends nothing and no run can act before it is
	// spent. Its error refuses the request (nothing recorded).
	Spend func() error
}

// started is what [Agent.start] did.
type started struct {
	// Runs are the recorded runs, in playbook name order.
	Runs []store.Run
	// Existing: the idempotency key was seen before; Runs are that
	// request's and nothing was started now.
	Existing bool
	// Live are the runs launched now (nil where the agent began draining
	// between recording and launching, or for a recorded refusal).
	Live []*liveRun
}

// startRefusal is the one typed refusal of [Agent.start]; each front end
// translates its Reason into its own answer and never inspects anything
// else.
type startRefusal struct {
	Reason refusalReason
	// Playbook and Param name what was refused (Param for refusedParams
	// only); Msg says what is wrong, never quoting the value that came
	// (it may be a secret).
	Playbook, Param, Msg string
}

// refusalReason is why [Agent.start] refused.
type refusalReason int

const (
	// refusedUnknown: no serving playbook answers the trigger or name.
	refusedUnknown refusalReason = iota + 1
	// refusedParams: a parameter failed a declaration.
	refusedParams
	// refusedDraining: the agent is shutting down.
	refusedDraining
	// refusedStore: the run store cannot write, so nothing can be
	// recorded (Msg says why, in words fit for the hub).
	refusedStore
	// refusedQueueFull: Playbook does not run concurrently and already
	// has Config.QueueMax runs waiting.
	refusedQueueFull
	// refusedVersion: the request named a version of Playbook that is not
	// the one serving.
	refusedVersion
)

func (r *startRefusal) Error() string {
	switch r.Reason {
	case refusedParams:
		return "parameter " + r.Param + " " + r.Msg
	case refusedDraining:
		return "the agent is shutting down"
	case refusedStore:
		return "the run store cannot write: " + r.Msg
	case refusedQueueFull:
		return "playbook " + r.Playbook + " " + r.Msg
	}
	return r.Msg
}

// start is the one path from a request to recorded, launched runs:
//
//  1. a request whose idempotency key was accepted before returns that
//     request's runs and starts nothing;
//  2. a draining agent refuses;
//  3. the playbooks are resolved (by trigger or by name);
//  4. the parameters are coerced against every declaration before any
//     run is recorded (all or nothing);
//  5. a place is reserved in the queue of each playbook that does not run
//     concurrently (a full queue refuses: nothing accepted);
//  6. Spend, if set, is called (a signed operation's nonce is spent);
//  7. the runs are recorded together with the key, durably, and only then
//     launched — at once, or queued behind the run of their playbook in
//     flight; a store that cannot write refuses the request (fails
//     closed, nothing accepted).
//
// It returns the runs, or a *startRefusal for the front end to translate,
// or another error (the store failed).
func (a *Agent) start(ctx context.Context, req startRequest) (started, error) {
	if req.Key != "" {
		prior, err := a.store.RunsByKey(ctx, req.Source, req.Key)
		if err != nil {
			return started{}, err
		}
		if len(prior) > 0 {
			return started{Runs: prior, Existing: true}, nil
		}
	}
	if a.isDraining() {
		return started{}, &startRefusal{Reason: refusedDraining}
	}
	pbs, err := a.resolve(req)
	if err != nil {
		return started{}, err
	}

	params := make([]*engine.Params, len(pbs))
	newRuns := make([]store.NewRun, len(pbs))
	var refusal *startRefusal
	for i, pb := range pbs {
		given := req.Params
		if req.Guest > 0 {
			if given, err = guestParams(pb, req.Guest, req.Params); err != nil {
				return started{}, err
			}
		}
		p, err := pb.Decl.Coerce(req.Args, given)
		if err != nil {
			pe, ok := errors.AsType[*engine.ParamError](err)
			if !ok {
				return started{}, fmt.Errorf("playbook %s: %w", pb.Name, err)
			}
			refusal = &startRefusal{Reason: refusedParams, Playbook: pb.Name, Param: pe.Param, Msg: refusalMsg(pe)}
			if !req.RecordRefusal {
				return started{}, refusal
			}
			newRuns[i] = store.NewRun{Playbook: pb.Name, Version: pb.Version, Origin: a.origin}
			continue
		}
		rec, err := json.Marshal(p.Record())
		if err != nil {
			return started{}, fmt.Errorf("playbook %s: parameters: %w", pb.Name, err)
		}
		params[i] = p
		newRuns[i] = store.NewRun{Playbook: pb.Name, Version: pb.Version, Params: rec, Origin: a.origin}
		if req.Signature != nil {
			// Sealed with the state key, so that the run carries it after a
			// restart (queued, or interrupted).
			if newRuns[i].Signature, err = a.sealSignature(req.Signature); err != nil {
				return started{}, fmt.Errorf("playbook %s: sealing its signature: %w", pb.Name, err)
			}
		}
		if secrets := p.SecretValues(); len(secrets) > 0 {
			// Sealed with the state key, so the run can run after a restart
			// (queued, or interrupted) without the store ever holding them
			// in clear.
			plain, _ := json.Marshal(secrets)
			if newRuns[i].Secrets, err = a.seal(plain); err != nil {
				return started{}, fmt.Errorf("playbook %s: sealing its secret parameters: %w", pb.Name, err)
			}
		}
	}

	// A place in each busy playbook's queue is reserved before anything is
	// recorded, so that a full queue refuses with nothing accepted.
	var gated []string
	if refusal == nil {
		for i, pb := range pbs {
			if !pb.Decl.Concurrent {
				gated = append(gated, laneOf(pb.Name, req.Source, newRuns[i].Params))
			}
		}
		if full := a.queues.reserve(gated); full != "" {
			full, _, _ = strings.Cut(full, laneGuest)
			return started{}, &startRefusal{Reason: refusedQueueFull, Playbook: full,
				Msg: fmt.Sprintf("already has %d runs queued (runs.queue_max); nothing was recorded", a.queues.max)}
		}
	}
	if req.Spend != nil && refusal == nil {
		if err := req.Spend(); err != nil {
			a.queues.unreserve(gated)
			return started{}, err
		}
	}
	runs, created, err := a.store.CreateRuns(ctx, store.Trigger{Source: req.Source, Key: req.Key, At: req.At}, newRuns)
	if err != nil || !created {
		a.queues.unreserve(gated)
	}
	if errors.Is(err, store.ErrUnwritable) {
		// Fail closed: nothing is recorded, so nothing is accepted.
		a.log.Error("a trigger could not be recorded; refused", "source", string(req.Source), "err", err)
		return started{}, &startRefusal{Reason: refusedStore, Msg: "nothing was recorded"}
	}
	if err != nil {
		return started{}, err
	}
	if !created { // a concurrent request with the same key won the race
		return started{Runs: runs, Existing: true}, nil
	}
	out := started{Runs: runs, Live: make([]*liveRun, len(runs))}
	if refusal != nil {
		// Recorded refusals (RecordRefusal): every run of the request is
		// refused, as a synchronous refusal would have refused them all.
		for i, run := range runs {
			a.finishUnstarted(run.ID, runstate.Refused, engine.KindParams, refusal.Error()+req.RefusalHint)
			a.metrics.runFinished(pbs[i].Name, string(runstate.Refused), 0)
		}
		return out, refusal
	}
	for i, run := range runs {
		out.Live[i] = a.launch(run, pbs[i], params[i], true, req.Signature, req.Attrs...)
	}
	return out, nil
}

// resolve finds the serving playbooks a request names.
func (a *Agent) resolve(req startRequest) ([]*engine.Playbook, error) {
	if req.Playbook != "" {
		if pb := a.registry.Get(req.Playbook); pb != nil {
			if req.Version != "" && pb.Version != req.Version {
				return nil, &startRefusal{Reason: refusedVersion, Playbook: req.Playbook,
					Msg: fmt.Sprintf("playbook %s: version %s is serving, not %s; nothing was started", req.Playbook, pb.ShortVersion(), engine.ShortVersion(req.Version))}
			}
			return []*engine.Playbook{pb}, nil
		}
		return nil, &startRefusal{Reason: refusedUnknown, Playbook: req.Playbook, Msg: fmt.Sprintf("playbook %q: not found", req.Playbook)}
	}
	var pbs []*engine.Playbook
	for _, pb := range a.registry.Playbooks() { // sorted by name: refusals are stable
		if req.Guest > 0 && !slices.Contains(pb.Decl.GuestTriggers, req.Trigger) {
			continue
		}
		if slices.Contains(pb.Decl.Triggers, req.Trigger) {
			pbs = append(pbs, pb)
		}
	}
	if len(pbs) == 0 && req.Guest > 0 {
		return nil, &startRefusal{Reason: refusedUnknown, Msg: fmt.Sprintf("trigger %q: no playbook offers it to guests (guest_triggers)", req.Trigger)}
	}
	if len(pbs) == 0 {
		return nil, &startRefusal{Reason: refusedUnknown, Msg: fmt.Sprintf("trigger %q: no playbook answers it", req.Trigger)}
	}
	return pbs, nil
}

// guestParams are the parameters of a guest's run of pb: the ones the
// guest gave, each of which pb must declare guest-settable, and the
// guest's own vmid bound to pb's GuestVMID parameter (which the guest
// can never set).
func guestParams(pb *engine.Playbook, vmid int, given map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	out := make(map[string]json.RawMessage, len(given)+1)
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if !slices.Contains(pb.Decl.GuestParams, name) {
			settable := "none"
			if len(pb.Decl.GuestParams) > 0 {
				settable = strings.Join(pb.Decl.GuestParams, ", ")
			}
			return nil, &startRefusal{Reason: refusedParams, Playbook: pb.Name, Param: name,
				Msg: "is not settable by a guest (settable: " + settable + ")"}
		}
		out[name] = given[name]
	}
	bound := strconv.Itoa(vmid)
	if pb.Decl.GuestVMID == "vmids" {
		bound = "[" + bound + "]"
	}
	out[pb.Decl.GuestVMID] = json.RawMessage(bound)
	return out, nil
}

func (a *Agent) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}

// refusalMsg says what is wrong with a parameter without quoting the
// value that came: it may be a secret, and refusals are logged.
func refusalMsg(pe *engine.ParamError) string {
	switch {
	case pe.Unknown:
		return "is not declared (declared: " + pe.Want + ")"
	case pe.Got == "":
		return "is required (it has no default)"
	}
	return "must be " + pe.Want
}
