package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// One view of every run: `felhom-agent run` against the real host goes
// through the serving agent when one serves (its store, queue, limits and
// guest locks; recorded with source "cli"), and runs in-process only when
// none does, taking the same host-wide guest locks. It never opens the
// agent's store itself.

// agentProbe bounds the question "does an agent serve?".
const agentProbe = 3 * time.Second

// reloadWait is how long a console run waits for the agent to take the
// edit of a file just saved (its hot reload) before refusing.
const reloadWait = 5 * time.Second

// servingAgent returns a client of the agent serving at socket, or nil
// when none serves there (no socket, or nothing listening). An agent that
// is there but cannot be asked is an error: running beside it, unrecorded,
// is what this path exists to prevent.
func servingAgent(ctx context.Context, socket string) (*api.Client, []api.Playbook, error) {
	cl := api.NewClient(socket)
	pctx, cancel := context.WithTimeout(ctx, agentProbe)
	defer cancel()
	pbs, err := cl.Playbooks(pctx)
	switch {
	case err == nil:
		return cl, pbs, nil
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		cl.Close()
		return nil, nil, nil
	}
	cl.Close()
	if errors.Is(err, syscall.EACCES) {
		return nil, nil, fmt.Errorf("an agent's socket is at %s, but this user may not connect to it (%w): run as root or as a member of the agent's group, so the run goes through the agent", socket, err)
	}
	return nil, nil, fmt.Errorf("an agent's socket is at %s, but the agent did not answer: %w; a run is never made beside a serving agent (stop it, or set socket to another agent's)", socket, err)
}

// agentPlaybook finds pb in the agent's playbooks at pb's version,
// waiting a little for the agent to take an edit it has not yet; an
// agent that serves another version, or no such playbook, is an error
// saying what to do.
func agentPlaybook(ctx context.Context, cl *api.Client, pbs []api.Playbook, pb *engine.Playbook, socket string) (api.Playbook, error) {
	deadline := time.Now().Add(reloadWait)
	for {
		var found *api.Playbook
		for i := range pbs {
			if pbs[i].Name == pb.Name {
				found = &pbs[i]
			}
		}
		switch {
		case found != nil && found.Version == pb.Version:
			return *found, nil
		case time.Now().After(deadline) || found == nil:
			return api.Playbook{}, versionMismatch(found, pb, socket)
		}
		select {
		case <-ctx.Done():
			return api.Playbook{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		var err error
		if pbs, err = cl.Playbooks(ctx); err != nil {
			return api.Playbook{}, err
		}
	}
}

// versionMismatch says why the serving agent will not run this file.
func versionMismatch(found *api.Playbook, pb *engine.Playbook, socket string) error {
	if found == nil {
		return fmt.Errorf("the agent serving at %s has no playbook %s: a run from the console goes through it, and it runs the playbooks of its own directory; put %s there (it is taken at once), or try it with --sim", socket, pb.Name, pb.Path)
	}
	serving := "no version (it does not load)"
	if found.Version != "" {
		serving = "version " + engine.ShortVersion(found.Version)
	}
	msg := fmt.Sprintf("the agent serving at %s runs playbook %s at %s (%s), but %s is version %s", socket, pb.Name, serving, found.File, pb.Path, pb.ShortVersion())
	if found.LoadError != "" {
		msg += "; the agent refused its last edit:\n" + found.LoadError
	} else {
		msg += "; save this file as the agent's " + found.File + " and it is taken at once, or try it with --sim"
	}
	return errors.New(msg)
}

// runThrough starts pb on the serving agent, streams its log to standard
// error as an in-process run would, and prints the same summary. The
// first interrupt cancels the run (as it would in-process) and waits for
// it to stop; a second detaches, leaving the run to the agent.
func (c *RunCmd) runThrough(g *Globals, cl *api.Client, ap api.Playbook, pb *engine.Playbook, args map[string]string, socket string) error {
	ctx := context.Background()
	run, err := cl.Trigger(ctx, api.TriggerRequest{Playbook: pb.Name, Version: pb.Version, Args: args, Source: "cli"})
	if err != nil {
		return explainAPIParamError(err, []api.Playbook{ap})
	}
	fmt.Fprintf(g.stderr, "run %s goes through the agent serving at %s (recorded, queued and locked with its runs: felhom-agent runs show %s)\n", run.ID, socket, run.ID)

	followCtx, detach := context.WithCancel(ctx)
	defer detach()
	done := make(chan struct{})
	defer close(done)
	sigs, stop := interrupts()
	defer stop()
	go func() {
		select {
		case <-sigs:
		case <-done:
			return
		}
		if _, err := cl.Cancel(ctx, run.ID); err == nil {
			fmt.Fprintf(g.stderr, "cancelling run %s; interrupt again to detach (the run then goes on)\n", run.ID)
		}
		select {
		case <-sigs:
			detach()
		case <-done:
		}
	}()

	h := g.logger(g.stderr).Handler()
	end, err := cl.Follow(followCtx, run.ID, func(l api.LogLine) error {
		return h.Handle(ctx, logRecord(l))
	})
	if err != nil && followCtx.Err() != nil {
		fmt.Fprintf(g.stderr, "detached; run %s goes on (felhom-agent runs follow %s)\n", run.ID, run.ID)
		return nil
	}
	if err != nil {
		return err
	}
	s := agentSummary(end)
	s.Agent = socket
	if err := printSummary(g, &s, c.JSON); err != nil {
		return err
	}
	switch end.Status {
	case "succeeded":
		return nil
	case "refused":
		return errors.New(end.Error)
	}
	return failed(fmt.Errorf("run %s %s", end.ID, end.Status))
}

// interrupts delivers SIGINT and SIGTERM; stop stops it. Tests replace it
// to interrupt without a signal.
var interrupts = func() (<-chan os.Signal, func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return sigs, func() { signal.Stop(sigs) }
}

// logRecord is a recorded log line as the slog record the in-process run
// would have logged, so that both print alike (text or JSON).
func logRecord(l api.LogLine) slog.Record {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	r := slog.NewRecord(l.Time, level, l.Msg, 0)
	var attrs map[string]json.RawMessage
	if len(l.Attrs) > 0 && json.Unmarshal(l.Attrs, &attrs) == nil {
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			var v any
			dec := json.NewDecoder(bytes.NewReader(attrs[k]))
			dec.UseNumber()
			if dec.Decode(&v) != nil {
				v = string(attrs[k])
			}
			r.AddAttrs(slog.Any(k, v))
		}
	}
	return r
}

// agentSummary is the recap of a finished run as the agent recorded it.
// The agent counts Proxmox requests for all its runs together
// (felhom_proxmox_requests_total), not per run: the summary leaves them
// unknown (null) rather than saying 0.
func agentSummary(r api.Run) summary {
	s := summary{
		Run: r.ID, Playbook: r.Playbook, Version: engine.ShortVersion(r.Version), Status: r.Status,
		Kind: r.ErrorKind, Error: r.Error, Tasks: []string{},
	}
	if r.Started != nil && r.Ended != nil {
		s.Duration = r.Ended.Sub(*r.Started).Seconds()
	}
	if len(r.Result) > 0 {
		s.Result = r.Result
	}
	for _, t := range r.Tasks {
		s.Tasks = append(s.Tasks, t.UPID)
		if t.Started != nil && t.Ended != nil {
			s.TaskWaiting += t.Ended.Sub(*t.Started).Seconds()
		}
	}
	return s
}
