package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/plan"
)

// PlanCmd prints what a run of a playbook would do, without changing
// anything: the host is read through a client that refuses every method
// but GET, mirrored into a simulated host, and the playbook runs against
// the mirror (runtime/plan). Exit code 0: the run would succeed; 1: it
// would fail; 2: the playbook did not load, a parameter was refused, or
// the configuration is wrong; 3: the Proxmox API did not answer.
type PlanCmd struct {
	Playbook string   `arg:"" help:"Playbook file to plan." type:"existingfile"`
	Param    []string `short:"p" sep:"none" help:"Parameter NAME=VALUE (repeatable); lists are comma-separated." placeholder:"NAME=VALUE" env:"-"`
	Sim      bool     `help:"Plan against the default simulated Proxmox VE host instead of the configured one." env:"-"`
	JSON     bool     `name:"json" help:"Print the plan as one JSON object." env:"-"`
}

// Run loads, checks parameters, mirrors the host and plans.
func (c *PlanCmd) Run(g *Globals) error {
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The mirror run's own log is for debugging the plan.
	runLog := slog.New(slog.DiscardHandler)
	if g.LogLevel == "debug" {
		runLog = g.logger(g.stderr)
	}
	be, err := openBackend(g, c.Sim, runLog)
	if err != nil {
		return err
	}
	defer be.Close()
	r, err := be.planner(g, c.Sim, runLog, nil)(ctx, pb, params)
	switch {
	case err != nil && proxmox.IsUnreachable(err) && ctx.Err() == nil:
		return &exitError{code: exitUnreachable, err: fmt.Errorf("plan: %s is unreachable: %w", g.Proxmox.Endpoint, err)}
	case err != nil:
		return err
	}
	if err := printPlan(g.stdout, r, c.JSON); err != nil {
		return err
	}
	if r.Status != "succeeded" {
		return failed(fmt.Errorf("the run would end %s", r.Status))
	}
	return nil
}

func printPlan(w io.Writer, r *plan.Report, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return r.WriteText(w)
}
