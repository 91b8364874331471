package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/plan"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
)

// backend is what runs act on: the Proxmox client and, when enabled, the
// fenced host operations — of the configured host, or of an in-process
// simulated one (--sim).
type backend struct {
	Env    builtins.Env
	Client *proxmox.Client
	// ReadOnly is a client of the same host that refuses every method
	// but GET before sending it: what plans read the host through.
	ReadOnly *proxmox.Client
	// Sim and Server are set with --sim.
	Sim    *pvesim.Sim
	Server *pvesim.Server

	// privileged is the fenced operations' configuration and runner,
	// when they are enabled (or simulated).
	privileged *proxmox.PrivilegedConfig
	runner     proxmox.Runner
}

// attacher is the fenced bootstrap attach with root as its only root
// (the state directory's guests directory), or nil when privileged
// operations are off.
func (be *backend) attacher(root string) (*proxmox.Privileged, error) {
	if be.privileged == nil {
		return nil, nil
	}
	cfg := *be.privileged
	cfg.BootstrapRoot = root
	p, err := proxmox.NewPrivileged(cfg, be.runner)
	if err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	return p, nil
}

// openBackend builds the backend from the configuration, or, with sim, a
// simulator with its default world served over TLS on loopback, a client
// pinned to its certificate, and the host module answered by the
// simulator's root tools (as if privileged operations were enabled). With
// sim and no configured tunnel, monitor.tunnel checks the simulator's own
// endpoint.
func openBackend(g *Globals, sim bool, logger *slog.Logger) (*backend, error) {
	be := &backend{}
	var cfg proxmox.Config
	var runner proxmox.Runner
	if sim {
		be.Sim = pvesim.New()
		srv, err := be.Sim.Start("")
		if err != nil {
			return nil, err
		}
		be.Server = srv
		if cfg, err = srv.ClientConfig(); err != nil {
			be.Close()
			return nil, err
		}
		runner = be.Sim.RootRunner()
		if g.Tunnel == "" {
			u, _ := url.Parse(srv.Endpoint)
			be.Env.Tunnel = u.Host
		}
	} else {
		var err error
		if cfg, err = g.Proxmox.ClientConfig(); err != nil {
			return nil, err
		}
	}
	client, err := proxmox.New(cfg, proxmox.WithLogger(logger))
	if err != nil {
		be.Close()
		return nil, err
	}
	if be.ReadOnly, err = proxmox.New(cfg, proxmox.WithLogger(logger), proxmox.WithReadOnly()); err != nil {
		be.Close()
		return nil, err
	}
	// No playbook reaches the host around the safety gate: a change on a
	// context without one fails (proxmox.ErrNoGate).
	client.RequireGate()
	be.Client = client
	be.Env.Proxmox = client
	// The progress of every task wait of this process shares one budget
	// of task-log reads (builtins/progress.go).
	be.Env.Progress.Budget = builtins.NewReadBudget(progressReadEvery)
	if be.Env.Tunnel == "" {
		be.Env.Tunnel = g.Tunnel
	}
	if sim || g.Privileged.Enabled {
		pc := proxmox.PrivilegedConfig{
			MountPrefix: g.Privileged.MountPrefix,
			Sudo:        g.Privileged.Sudo && !sim,
		}
		priv, err := proxmox.NewPrivileged(pc, runner)
		if err != nil {
			be.Close()
			return nil, err
		}
		priv.RequireGate()
		be.Env.Host = priv
		be.privileged, be.runner = &pc, runner
	}
	return be, nil
}

// progressReadEvery is the process's budget of task-log reads while tasks
// are awaited: at most 5 a second, however many runs wait.
const progressReadEvery = 200 * time.Millisecond

// Close stops the simulator, if any.
func (be *backend) Close() {
	if be.Server != nil {
		_ = be.Server.Close()
	}
}

// planner plans runs against the backend's host through its read-only
// client (runtime/plan), with the configuration's limits; desired, when
// set, is what hub.desired_state() reads in the plan (a serving agent's
// desired state, so that a plan of reconcile converges to it).
func (be *backend) planner(g *Globals, sim bool, runLog *slog.Logger, desired func() builtins.DesiredSource) func(ctx context.Context, pb *engine.Playbook, params *engine.Params) (*plan.Report, error) {
	return func(ctx context.Context, pb *engine.Playbook, params *engine.Params) (*plan.Report, error) {
		cfg := plan.Config{
			MaxSteps:      g.Runtime.MaxSteps,
			MaxMemory:     g.Runtime.engineMemory(),
			Logger:        runLog,
			PrivilegedRun: sim || g.Privileged.Enabled,
			MountPrefix:   g.Privileged.MountPrefix,
		}
		if desired != nil {
			cfg.Desired = desired()
		}
		// The gate a run would meet: this configuration's scratch guests
		// and min_backups (with --sim, its scratch guest too).
		sc, err := g.Safety.agentConfig("", sim)
		if err != nil {
			return nil, err
		}
		cfg.Policy = safety.Policy{MinBackups: sc.MinBackups, Scratch: sc.ScratchVMIDs}
		return plan.Run(ctx, be.ReadOnly, pb, params, cfg)
	}
}
