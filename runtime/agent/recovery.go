package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Recovery after a crash or kill: the runs a previous process left running
// are marked interrupted, and resumed or undone once the playbooks have
// loaded (resume.go; same run id, so a hub retrying its trigger finds the
// run it was promised), and every
// Proxmox task recorded without an end is followed on the host until it
// stops, then recorded with its exit status. A task the host no longer
// knows is recorded as such, so it is not followed forever. The runs it
// left queued never started, so nothing of them happened: they are queued
// again (requeue) once the playbooks are loaded, and run.

// Task followers poll slowly: a recovered task is usually a long backup,
// and nobody waits on it.
var followWait = proxmox.WaitOptions{MinInterval: time.Second, MaxInterval: 30 * time.Second}

// followRetry is how long a follower waits after the host could not be
// asked (it is down, or refuses the token) before asking again.
const followRetry = time.Minute

// recoverRuns is lifecycle step 4.
func (a *Agent) recoverRuns() error {
	ctx := context.Background()
	runs, err := a.store.RecoverInterrupted(ctx, time.Time{})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, r := range runs {
		a.log.Warn("run interrupted by the agent's stop; it resumes, or is undone, once the playbooks load", "run", r.ID, "playbook", r.Playbook,
			"source", string(r.Source), "tasks", len(r.Tasks))
	}
	tasks, err := a.store.OpenTasks(ctx)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	origins := runOrigins{a: a, seen: make(map[string]string, len(runs))}
	for _, r := range runs {
		origins.seen[r.ID] = r.Origin
	}
	for _, t := range tasks {
		o, ok := origins.of(ctx, t.Run)
		if !ok {
			continue
		}
		if why := a.foreign(o); why != "" {
			// Its UPID is another host's: asking this one about it would
			// send the run's requests to the wrong host.
			a.log.Warn("a recorded task was started on another Proxmox; not following it", "run", t.Run, "upid", t.UPID, "reason", why)
			a.recordTaskEnd(t.Run, t.UPID, "unknown: "+why+": not followed")
			continue
		}
		upid, err := proxmox.ParseUPID(t.UPID)
		if err != nil {
			a.log.Error("recorded task has a malformed UPID; recording it as unknown", "run", t.Run, "upid", t.UPID, "err", err)
			a.recordTaskEnd(t.Run, t.UPID, "unknown: malformed UPID")
			continue
		}
		a.follow(upid, t.Run)
	}
	return nil
}

// follow watches a task in the background until it stops, then records
// its end and notes it in its run's log. It gives up only when the agent
// stops, leaving the task open for the next start.
func (a *Agent) follow(upid proxmox.UPID, runID string) {
	client := a.cfg.Proxmox
	if client == nil {
		a.log.Warn("cannot follow a Proxmox task: no Proxmox client is configured", "run", runID, "upid", upid.String())
		return
	}
	if a.bgCtx.Err() != nil {
		return // stopping: the next start follows it
	}
	a.bg.Go(func() {
		ctx := proxmox.WithObserver(a.bgCtx, metricsObserver{a.metrics})
		log := a.log.With("run", runID, "upid", upid.String())
		log.Info("following a Proxmox task to its end")
		for {
			st, err := client.WaitTask(ctx, upid, followWait)
			var exit string
			var te *proxmox.TaskError
			switch {
			case ctx.Err() != nil:
				log.Info("stopped following a Proxmox task; the next start follows it")
				return
			case err == nil || errors.As(err, &te):
				exit = st.ExitStatus
				if exit == "" {
					exit = "unknown: stopped without an exit status"
				}
			case proxmox.IsNotFound(err):
				exit = "unknown: the host no longer knows the task"
			default:
				log.Warn("cannot follow a Proxmox task; trying again later", "err", err, "retry_in", followRetry)
				select {
				case <-ctx.Done():
					return
				case <-time.After(followRetry):
				}
				continue
			}
			a.recordTaskEnd(runID, upid.String(), exit)
			line := store.LogLine{Level: "INFO", Msg: "followed task ended", Attrs: attrsJSON([]slog.Attr{
				slog.String("upid", upid.String()), slog.String("exit_status", exit)})}
			if err := a.store.AppendLog(context.Background(), runID, line); err != nil {
				log.Warn("noting the task's end in the run's log failed", "err", err)
			}
			log.Info("followed task ended", "exit_status", exit)
			if a.hooks.followed != nil {
				a.hooks.followed(upid.String())
			}
			return
		}
	})
}

// requeue queues the runs a previous process accepted and never started,
// oldest first, on the playbooks as they load now (lifecycle step 5). A
// run accepted by an agent talking to another Proxmox (origin.go), a
// run whose playbook does not load, or whose recorded parameters no longer
// pass its declaration, is refused with the reason. A secret parameter is
// recorded redacted, so a run given one cannot be queued again: it is
// refused saying so, and the hub triggers it again under a new id.
func (a *Agent) requeue() {
	ctx := context.Background()
	runs, err := a.store.List(ctx, store.Filter{Status: runstate.Queued})
	if err != nil {
		a.log.Error("listing the runs left queued failed; they stay queued until the next start", "err", err)
		return
	}
	slices.Reverse(runs) // List is newest first
	for _, r := range runs {
		if why := a.foreign(r.Origin); why != "" {
			// Accepted for another host: its parameters name that host's
			// guests. It never started, so nothing of it is undone.
			a.log.Warn("a run queued before the restart was accepted for another Proxmox; refused", "run", r.ID, "playbook", r.Playbook, "reason", why)
			a.finishUnstarted(r.ID, runstate.Refused, engine.KindParams, "accepted to be "+why+"; it never started: trigger it again on this host")
			a.metrics.runFinished(r.Playbook, string(runstate.Refused), 0)
			continue
		}
		pb := a.registry.Get(r.Playbook)
		if pb == nil {
			a.finishUnstarted(r.ID, runstate.Refused, engine.KindParams, fmt.Sprintf("playbook %q does not load at the agent's start; the run queued before the restart cannot run", r.Playbook))
			a.metrics.runFinished(r.Playbook, string(runstate.Refused), 0)
			continue
		}
		params, msg := a.recordedParams(pb, r)
		if msg != "" {
			a.finishUnstarted(r.ID, runstate.Refused, engine.KindParams, msg)
			a.metrics.runFinished(r.Playbook, string(runstate.Refused), 0)
			continue
		}
		a.log.Info("run queued before the restart is queued again", "run", r.ID, "playbook", r.Playbook, "source", string(r.Source))
		sig, attrs := a.carriedSignature(r, pb)
		a.launch(r, pb, params, false, sig, append([]any{"requeued", true}, attrs...)...)
	}
}

// recordedParams coerces a run's recorded parameters against pb's
// declaration, or says why they cannot be. A secret parameter is recorded
// redacted; its value comes from the run's sealed secrets (the state key
// opens them), and a run without them — recorded by an older agent, or
// its store copied without state.key — is refused saying so.
func (a *Agent) recordedParams(pb *engine.Playbook, r store.Run) (*engine.Params, string) {
	var m map[string]json.RawMessage
	if len(r.Params) > 0 {
		if err := json.Unmarshal(r.Params, &m); err != nil {
			return nil, "the recorded parameters cannot be read: " + err.Error()
		}
	}
	var secrets map[string]string
	if len(r.Secrets) > 0 {
		plain, err := a.openSealed(r.Secrets)
		if err == nil {
			err = json.Unmarshal(plain, &secrets)
		}
		if err != nil {
			return nil, "the run's secret parameters cannot be opened: " + err.Error()
		}
	}
	redacted, _ := json.Marshal(engine.Redacted)
	for _, p := range pb.Decl.Params {
		if p.Type.Kind != engine.KindSecret || string(m[p.Name]) != string(redacted) {
			continue
		}
		v, ok := secrets[p.Name]
		if !ok {
			return nil, "parameter " + p.Name + " is secret and recorded only redacted, so the run cannot run after the restart; trigger it again"
		}
		m[p.Name], _ = json.Marshal(v)
	}
	params, err := pb.Decl.Coerce(nil, m)
	if err != nil {
		return nil, "the parameters recorded before the restart no longer pass the playbook's declaration: " + err.Error()
	}
	return params, ""
}
