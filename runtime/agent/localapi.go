package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/schedule"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// localAPI is the Agent as the local API's backend (runs list, show,
// follow, cancel, playbooks, trigger); it also wakes follow streams when a
// run logs or ends. It is a type of its own because api.Backend's Run(ctx,
// id) is not the Agent's Run(ctx).
type localAPI struct{ a *Agent }

var (
	_ api.Planner        = localAPI{}
	_ api.Backend        = localAPI{}
	_ api.Waiter         = localAPI{}
	_ api.FollowMarker   = localAPI{}
	_ api.TriggerStarter = localAPI{}
	_ api.Approvals      = localAPI{}
)

// nextRunsShown is how many of a schedule's next ticks the API lists.
const nextRunsShown = 5

// errDraining refuses new runs during shutdown.
var errDraining = fmt.Errorf("the agent is shutting down: %w", api.ErrConflict)

func listenSocket(path string) (net.Listener, error) { return api.Listen(path) }

// Runs lists recorded runs, newest first.
func (l localAPI) Runs(ctx context.Context, f api.ListFilter) ([]api.Run, error) {
	sf := store.Filter{Playbook: f.Playbook, Status: runstate.Status(f.Status), Limit: f.Limit, Before: f.Before,
		OmitResults: true} // list answers carry no results (api.RunsPage)
	if sf.Status != "" && !sf.Status.Valid() {
		return nil, &api.BadRequestError{Field: "status", Msg: "must be one of " + runstate.Names()}
	}
	if sf.Limit == 0 {
		sf.Limit = api.DefaultListLimit
	}
	runs, err := l.a.store.List(ctx, sf)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &api.BadRequestError{Field: "before", Msg: "no run has this id"}
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.Run, len(runs))
	for i, r := range runs {
		out[i] = l.apiRun(r)
	}
	return out, nil
}

// apiRun is apiRun with the run's place in its queue.
func (l localAPI) apiRun(r store.Run) api.Run {
	out := apiRun(r)
	if r.Status == runstate.Queued {
		out.QueuePosition = l.a.queues.position(laneOf(r.Playbook, r.Source, r.Params), r.ID)
	}
	return out
}

// Run returns one recorded run, by id or unique id prefix.
func (l localAPI) Run(ctx context.Context, id string) (api.Run, error) {
	r, err := l.a.getRun(ctx, id)
	if err != nil {
		return api.Run{}, err
	}
	out := l.apiRun(r)
	pend, err := l.a.store.PendingOfRun(ctx, r.ID)
	if err != nil {
		return api.Run{}, err
	}
	for _, p := range pend {
		out.Pending = append(out.Pending, apiPending(p))
	}
	return out, nil
}

// Pending lists the pending operations (api.Approvals).
func (l localAPI) Pending(ctx context.Context, all bool) ([]api.PendingOp, error) {
	ops, err := l.a.store.PendingOps(ctx, !all, 0)
	if err != nil {
		return nil, err
	}
	out := make([]api.PendingOp, len(ops))
	for i, p := range ops {
		out[i] = apiPending(p)
	}
	return out, nil
}

// Approve submits a signed operation locally (felhom-agent approve).
func (l localAPI) Approve(ctx context.Context, req api.ApproveRequest) (api.ApproveResult, error) {
	res, err := l.a.AcceptSigned(ctx, store.SourceApproval, "", []byte(req.Blob), []byte(req.Signature))
	if err != nil {
		if errors.Is(err, ErrSignedOp) {
			return api.ApproveResult{}, &api.BadRequestError{Field: "signature", Msg: err.Error()}
		}
		return api.ApproveResult{}, err
	}
	return api.ApproveResult{Pending: res.Pending, Run: res.Run, Resumed: res.Resumed, Rotated: res.Rotated, Keys: res.Keys, Signer: res.Signer}, nil
}

func apiPending(p store.PendingOp) api.PendingOp {
	return api.PendingOp{ID: p.ID, Run: p.Run, Playbook: p.Playbook, Guest: p.Guest, What: p.What, Blob: string(p.Blob),
		Created: p.Created, Expires: p.Expires, State: p.State, Detail: p.Detail, NewRun: p.NewRun}
}

// Logs returns a page of a run's log.
func (l localAPI) Logs(ctx context.Context, id string, after int64, limit int) ([]api.LogLine, error) {
	lines, err := l.a.store.Logs(ctx, id, after, limit)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("run %s: %w", id, api.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.LogLine, len(lines))
	for i, l := range lines {
		out[i] = apiLogLine(l)
	}
	return out, nil
}

var _ api.Resumer = localAPI{}

// Resume resumes an interrupted run (runs resume).
func (l localAPI) Resume(ctx context.Context, id string) error { return l.resume(ctx, id, false) }

// Abandon replays an interrupted run to where it stopped and undoes it
// (runs abandon).
func (l localAPI) Abandon(ctx context.Context, id string) error { return l.resume(ctx, id, true) }

func (l localAPI) resume(ctx context.Context, id string, abandon bool) error {
	r, err := l.a.store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("run %s: %w", id, api.ErrNotFound)
	case err != nil:
		return err
	}
	if err := l.a.resumeRun(r, abandon); err != nil {
		if errors.Is(err, errNotInterrupted) || errors.Is(err, store.ErrStarted) || errors.Is(err, store.ErrFinished) {
			return fmt.Errorf("%w: %w", api.ErrConflict, err)
		}
		return err
	}
	return nil
}

// Cancel asks a run in flight to stop; it is recorded as cancelled when
// it has.
func (l localAPI) Cancel(ctx context.Context, id string) error {
	l.a.mu.Lock()
	lr := l.a.live[id]
	l.a.mu.Unlock()
	if lr != nil {
		lr.cancel(errCancelledByAPI)
		return nil
	}
	r, err := l.a.store.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("run %s: %w", id, api.ErrNotFound)
	case err != nil:
		return err
	case r.Status.Terminal():
		return fmt.Errorf("run %s has already finished (%s): %w", id, r.Status, api.ErrConflict)
	}
	return fmt.Errorf("run %s is %s but not in flight in this agent: %w", id, r.Status, api.ErrConflict)
}

// Following implements api.FollowMarker: a follow stream of run id is
// open until done (follow.go).
func (l localAPI) Following(id string) (done func()) {
	if lr := l.a.liveRun(id); lr != nil {
		return lr.follows.stream()
	}
	return func() {}
}

// WaitChange returns when run id has logged past after or finished, or
// when ctx ends. A run not in flight returns at once: it has finished (or
// does not exist), and the caller's next look says which.
func (l localAPI) WaitChange(ctx context.Context, id string, after int64) error {
	l.a.mu.Lock()
	lr := l.a.live[id]
	l.a.mu.Unlock()
	if lr == nil {
		return nil
	}
	ch := lr.watch() // before looking, so no change is missed
	select {
	case <-lr.done:
		return nil
	default:
	}
	if lr.log.written.Load() > after {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-lr.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Playbooks lists every playbook file, loaded or refused, by name.
func (l localAPI) Playbooks(context.Context) ([]api.Playbook, error) {
	next := l.a.sched.NextRuns()
	var out []api.Playbook
	for _, e := range l.a.registry.Entries() {
		p := api.Playbook{File: e.File, Name: strings.TrimSuffix(path.Base(e.File), ".star")}
		if pb := e.Playbook; pb != nil {
			d := pb.Decl
			p.Name, p.Version, p.Doc, p.Schedule, p.Triggers = pb.Name, pb.Version, d.Doc, d.Schedule, slices.Clone(d.Triggers)
			p.Saved = pb.Saved
			if t, ok := next[pb.Name]; ok {
				t = t.UTC()
				p.NextRun = &t
			}
			p.Zone, p.NextRuns = scheduleTicks(d.Schedule, nextRunsShown)
			for _, dp := range d.Params {
				p.Params = append(p.Params, apiParam(dp))
			}
		}
		if len(e.Diagnostics) > 0 {
			lines := make([]string, len(e.Diagnostics))
			for i, d := range e.Diagnostics {
				lines[i] = d.String()
			}
			p.LoadError = strings.Join(lines, "\n")
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y api.Playbook) int {
		return strings.Compare(x.Name+"\x00"+x.File, y.Name+"\x00"+y.File)
	})
	return out, nil
}

// Start starts a run of req.Playbook from the local API (source "api",
// or "cli" for a console run going through the agent).
func (l localAPI) Start(ctx context.Context, req api.TriggerRequest) (api.Run, error) {
	src := store.SourceAPI
	if req.Source == string(store.SourceCLI) {
		src = store.SourceCLI
	}
	st, err := l.a.start(ctx, startRequest{Source: src, Playbook: req.Playbook, Version: req.Version, Args: req.Args, Params: req.Params})
	if r, ok := errors.AsType[*startRefusal](err); ok {
		switch r.Reason {
		case refusedUnknown:
			return api.Run{}, fmt.Errorf("playbook %q: %w", req.Playbook, api.ErrNotFound)
		case refusedParams:
			return api.Run{}, &api.BadRequestError{Field: "params." + r.Param, Msg: r.Msg}
		case refusedDraining:
			return api.Run{}, errDraining
		case refusedStore:
			return api.Run{}, fmt.Errorf("%s: %w", r.Error(), api.ErrUnavailable)
		case refusedQueueFull:
			return api.Run{}, fmt.Errorf("%s: %w", r.Error(), api.ErrTooMany)
		case refusedVersion:
			return api.Run{}, fmt.Errorf("%s: %w", r.Msg, api.ErrConflict)
		}
	}
	if err != nil {
		return api.Run{}, err
	}
	return l.apiRun(st.Runs[0]), nil
}

// Plan plans a run of req.Playbook through the configured Planner, its
// parameters coerced as Start coerces them; nothing is recorded. The hub's
// plan jobs are made by the same planPlaybook (hubplan.go).
func (l localAPI) Plan(ctx context.Context, req api.TriggerRequest) (json.RawMessage, error) {
	pbs, err := l.a.resolve(startRequest{Playbook: req.Playbook})
	if err != nil {
		return nil, fmt.Errorf("playbook %q: %w", req.Playbook, api.ErrNotFound)
	}
	pb := pbs[0]
	_, r, err := l.a.planPlaybook(ctx, pb, req.Args, req.Params)
	if errors.Is(err, errNoPlanner) {
		return nil, fmt.Errorf("%w: %w", err, api.ErrUnavailable)
	}
	if pe, ok := errors.AsType[*engine.ParamError](err); ok {
		return nil, &api.BadRequestError{Field: "params." + pe.Param, Msg: refusalMsg(pe)}
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// StartTrigger starts a run of every playbook answering req.Trigger
// (source "api"), all or none.
func (l localAPI) StartTrigger(ctx context.Context, req api.TriggerRequest) ([]api.Run, error) {
	src := store.SourceAPI
	if req.Source == string(store.SourceCLI) {
		src = store.SourceCLI
	}
	st, err := l.a.start(ctx, startRequest{Source: src, Trigger: req.Trigger, Args: req.Args, Params: req.Params})
	if r, ok := errors.AsType[*startRefusal](err); ok {
		switch r.Reason {
		case refusedUnknown:
			return nil, fmt.Errorf("trigger %q: no playbook answers it: %w", req.Trigger, api.ErrNotFound)
		case refusedParams:
			return nil, &api.BadRequestError{Field: "params." + r.Param, Msg: r.Msg + " (playbook " + r.Playbook + ")"}
		case refusedDraining:
			return nil, errDraining
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.Run, len(st.Runs))
	for i, r := range st.Runs {
		out[i] = apiRun(r)
	}
	return out, nil
}

// apiRun is a stored run as the local API shows it.
func apiRun(r store.Run) api.Run {
	out := api.Run{
		ID: r.ID, Playbook: r.Playbook, Version: r.Version, Source: string(r.Source), Key: r.Key,
		Params: r.Params, Status: string(r.Status), Error: r.Error, ErrorKind: r.ErrorKind,
		Created: r.Created.UTC(), Started: timePtr(r.Started), Ended: timePtr(r.Ended), Result: r.Result,
		Resumes: r.Resumes, Replayed: r.Replayed, Adopted: r.Adopted, Reissued: r.Reissued, Origin: r.Origin,
	}
	for _, t := range r.Tasks {
		at := api.Task{UPID: t.UPID, Status: "running", ExitStatus: t.ExitStatus, Started: timePtr(t.Started), Ended: timePtr(t.Ended)}
		if t.Done() {
			at.Status = "stopped"
		}
		out.Tasks = append(out.Tasks, at)
	}
	return out
}

// apiLogLine is a stored log line as the local API and the hub show it.
func apiLogLine(l store.LogLine) api.LogLine {
	return api.LogLine{Seq: l.Seq, Time: l.Time, Level: l.Level, Msg: l.Msg, Attrs: l.Attrs}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// scheduleTicks is the zone a schedule is read in and its next n ticks
// from now (UTC); nothing for no schedule.
func scheduleTicks(sched string, n int) (zone string, ticks []time.Time) {
	if sched == "" {
		return "", nil
	}
	spec, err := schedule.ParseSpec(sched, "")
	if err != nil {
		return "", nil // refused at load; the playbook would not serve
	}
	zone = "Local"
	if spec.Location != nil {
		zone = spec.Location.String()
	}
	t := time.Now()
	for range n {
		if t = spec.Next(t); t.IsZero() {
			break
		}
		ticks = append(ticks, t.UTC())
	}
	return zone, ticks
}

// apiParam describes a declared parameter; the default is JSON as a run
// record would show it.
func apiParam(p engine.Param) api.Param {
	out := api.Param{Name: p.Name, Type: paramTypeName(&p.Type), Doc: p.Doc}
	if !p.Required && p.Default != nil {
		if b, err := engine.ResultJSON(p.Default); err == nil {
			out.Default = b
		}
	}
	return out
}

// paramTypeName is the compact type name the API uses: "int",
// "list(int)", "enum(a|b)", and a format's name ("vmid", "hostname").
func paramTypeName(t *engine.ParamType) string {
	switch t.Kind {
	case engine.KindList:
		return "list(" + paramTypeName(t.Elem) + ")"
	case engine.KindEnum:
		return "enum(" + strings.Join(t.Values, "|") + ")"
	}
	if t.Format != "" {
		return t.Format
	}
	return string(t.Kind)
}
