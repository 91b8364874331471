package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// RunCmd runs one playbook once, streaming its log to standard error and
// printing a summary (human, or one JSON object with --json) to standard
// output. Against the real host, with an agent serving on --socket, the
// run goes through that agent (delegate.go); otherwise it runs in this
// process with the host-wide guest locks. Exit code 0: succeeded; 1:
// failed, cancelled or timed out;
// 2: the playbook did not load, a parameter was refused, or the
// configuration is wrong; 3: the Proxmox API did not answer the start-up
// check within the read retry budget.
type RunCmd struct {
	Playbook string   `arg:"" help:"Playbook file to run." type:"existingfile"`
	Param    []string `short:"p" sep:"none" help:"Parameter NAME=VALUE (repeatable); lists are comma-separated." placeholder:"NAME=VALUE" env:"-"`
	Sim      bool     `help:"Run against an in-process simulated Proxmox VE host (no host needed); never through a serving agent." env:"-"`
	JSON     bool     `name:"json" help:"Log JSON lines and print the summary as one JSON object." env:"-"`
	Socket   string   `help:"${socket_help} With an agent serving there, the run goes through it; without, it runs here, taking the same guest locks." placeholder:"PATH" config:"socket"`
}

// Run loads, checks parameters, runs and summarizes.
func (c *RunCmd) Run(g *Globals) error {
	if c.JSON {
		g.LogFormat = "json"
	}
	logger, closeStatus := g.statusLogger(g.stderr)
	defer closeStatus()

	pb, err := loadPlaybook(g.Playbooks, c.Playbook)
	if err != nil {
		return err
	}
	strs, err := paramArgs(c.Param)
	if err != nil {
		return err
	}
	params, err := pb.Decl.Coerce(strs, nil)
	if err != nil {
		return explainParamErrors(err, pb.Decl)
	}

	if c.Socket == "" {
		c.Socket = hostDirs().socket().Dir
	}
	if !c.Sim {
		cl, pbs, err := servingAgent(context.Background(), c.Socket)
		if err != nil {
			return err
		}
		if cl != nil {
			defer cl.Close()
			ap, err := agentPlaybook(context.Background(), cl, pbs, pb, c.Socket)
			if err != nil {
				return err
			}
			return c.runThrough(g, cl, ap, pb, strs, c.Socket)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	be, err := openBackend(g, c.Sim, logger)
	if err != nil {
		return err
	}
	defer be.Close()
	// The run's output is its log, followed from start to end: its task
	// waits read the tasks' logs into it.
	be.Env.Progress.Followers = builtins.Followed
	if !c.Sim {
		// No agent serves: the same host-wide guest locks as its runs,
		// should one start meanwhile (or another console run).
		locks, err := hostGuestLocks(c.Socket)
		if err != nil {
			return err
		}
		be.Env.Locks = locks
	}
	// The recap counts every request the host receives, the preflight's
	// included.
	var rc recap
	if !c.Sim {
		// A wrong endpoint, token, TLS trust or node is a configuration
		// error (exit 2), found before the playbook starts rather than at
		// its first call; an API that does not answer, after the reads'
		// retry budget, is an outage (exit 3): the same command may work
		// later. The node's own version read costs what GET /version
		// does, and PVE refuses it for a node the host does not have.
		pctx, cancel := context.WithTimeout(proxmox.WithObserver(ctx, &rc), max(g.Proxmox.ReadRetryBudget, 0)+g.Proxmox.Timeout)
		_, err := be.Client.NodeVersion(pctx)
		if node, unknown := proxmox.IsUnknownNode(err); unknown && node == g.Proxmox.Node {
			err = unknownNode(pctx, be.Client, node, err)
			cancel()
			return err
		}
		cancel()
		switch {
		case err != nil && proxmox.IsUnreachable(err) && ctx.Err() == nil:
			return &exitError{code: exitUnreachable, err: fmt.Errorf("proxmox: %s is unreachable (the configuration looks sound; try again when the API answers): %w", g.Proxmox.Endpoint, err)}
		case err != nil:
			return fmt.Errorf("proxmox: cannot use %s: %w", g.Proxmox.Endpoint, err)
		}
	}

	eng := engine.NewEngine(engine.Config{
		Env:           be.Env,
		MaxSteps:      g.Runtime.MaxSteps,
		MaxConcurrent: g.Runtime.MaxConcurrent,
		MaxMemory:     g.Runtime.engineMemory(),
		Logger:        logger,
	})
	id := runstate.NewID(time.Now())
	gate, err := cliGate(g, be, c.Sim, id, pb, params, &rc, logger)
	if err != nil {
		return err
	}
	res := eng.Run(proxmox.WithObserver(ctx, gate), pb, params, engine.RunOptions{ID: id, Trigger: "cli"})
	closeStatus()
	// The refusal's pending operation, also when the playbook caught the
	// refusal and failed in its own words (selftest does).
	pending := gate.Refused()
	if re, ok := errors.AsType[*safety.RefusedError](res.Err); ok && re.Pending != nil {
		pending = re.Pending
	}
	if pending != nil && res.Status != runstate.Succeeded {
		fmt.Fprintf(g.stderr, "\n%s needs an operator's signature, and a run from the command line has nobody to ask.\n"+
			"Start it on the serving agent instead (felhom-agent trigger %s ...): it parks there as a pending operation,\n"+
			"which an operator signs and approves (felhom-agent pending, sign, approve). What it would sign:\n%s\n",
			pending.Effect.What, pb.Name, pending.Blob)
	}

	s := summary{
		Run: res.ID, Playbook: res.Playbook, Version: pb.ShortVersion(), Status: string(res.Status),
		Kind: res.Kind, Error: res.Error, Backtrace: res.Backtrace,
		Duration: res.Duration().Seconds(),
	}
	if len(res.Output) > 0 {
		s.Result = res.Output
	}
	rc.fill(&s)
	if err := printSummary(g, &s, c.JSON); err != nil {
		return err
	}
	switch res.Status {
	case runstate.Succeeded:
		return nil
	case runstate.Refused:
		return errors.New(res.Error)
	}
	return failed(fmt.Errorf("run %s %s", res.ID, res.Status))
}

// unknownNode is the start-up check's error for a proxmox.node the host
// does not have: it names the key and, read once more (GET /nodes, only on
// this path), the nodes the host has.
func unknownNode(ctx context.Context, c *proxmox.Client, node string, err error) error {
	have := "its nodes could not be listed"
	if nodes, lerr := c.Nodes(ctx); lerr == nil {
		names := make([]string, 0, len(nodes))
		for _, n := range nodes {
			names = append(names, n.Node)
		}
		have = "its nodes: " + strings.Join(names, ", ")
	}
	if ae, ok := errors.AsType[*proxmox.APIError](err); ok {
		err = ae // the client's own wording says less than this
	}
	return fmt.Errorf("proxmox.node: the host has no node %q (%s); set it to this host's node name, hostname -s: %w", node, have, err)
}

// seconds is a number of seconds as a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// paramArgs splits --param NAME=VALUE flags. A name given twice is an
// error rather than a silent override.
func paramArgs(args []string) (map[string]string, error) {
	out := make(map[string]string, len(args))
	for _, a := range args {
		name, value, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--param %q: want NAME=VALUE", a)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--param %s: given twice", name)
		}
		out[name] = value
	}
	return out, nil
}

// printSummary writes the recap: one JSON object, or a few aligned lines.
func printSummary(g *Globals, s *summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	w := g.stdout
	fmt.Fprintf(w, "\n%s %s (run %s, version %s)\n", paint(g, strings.ToUpper(s.Status)), s.Playbook, s.Run, s.Version)
	if s.Error != "" {
		fmt.Fprintf(w, "  error:     %s\n", s.Error)
		if s.Backtrace != "" {
			fmt.Fprintf(w, "  backtrace:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(s.Backtrace), "\n", "\n    "))
		}
	}
	fmt.Fprintf(w, "  duration:  %s\n", humanDuration(seconds(s.Duration)))
	if s.Requests != nil && s.Retries != nil {
		fmt.Fprintf(w, "  proxmox:   %s (%s), %s, %s waiting on tasks\n", plural(*s.Requests, "API request"), plural(*s.Retries, "retry"),
			plural(len(s.Tasks), "task"), humanDuration(seconds(s.TaskWaiting)))
	} else {
		fmt.Fprintf(w, "  proxmox:   %s, %s waiting on tasks (the agent counts API requests in its metrics)\n",
			plural(len(s.Tasks), "task"), humanDuration(seconds(s.TaskWaiting)))
	}
	if s.Agent != "" {
		fmt.Fprintf(w, "  through:   the agent serving at %s\n", s.Agent)
	}
	if s.Result != nil {
		b, err := json.MarshalIndent(s.Result, "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  result:    %s\n", b)
	}
	return nil
}
