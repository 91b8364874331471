package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/internal/suggest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// PlaybooksCmd groups the playbook commands; "playbooks" alone lists.
type PlaybooksCmd struct {
	List PlaybooksListCmd `cmd:"" default:"withargs" help:"List the serving agent's playbooks."`
	Show PlaybooksShowCmd `cmd:"" help:"Show one playbook: doc, parameters, triggers, schedule, version, last run, load error."`
}

// PlaybooksListCmd lists the serving agent's playbooks.
type PlaybooksListCmd struct {
	remoteFlags
}

// Run prints one row per playbook file: name, version, schedule, next
// timer tick, hub triggers and the last load error (the previous good
// version keeps serving meanwhile).
func (c *PlaybooksListCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	pbs, err := cl.Playbooks(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, pbs)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSCHEDULE\tNEXT RUN\tTRIGGERS\tPARAMS\tLOAD ERROR")
	for _, p := range pbs {
		next := "-"
		if p.NextRun != nil {
			next = timeText(*p.NextRun, c.UTC)
		}
		names := make([]string, len(p.Params))
		for i, prm := range p.Params {
			names[i] = prm.Name
			if len(prm.Default) == 0 {
				names[i] += "*" // required
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, versionText(p), dash(p.Schedule), next,
			dash(strings.Join(p.Triggers, ",")), dash(strings.Join(names, ",")), dash(clip.Line(p.LoadError, 80)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return nil
}

// PlaybooksShowCmd shows one playbook.
type PlaybooksShowCmd struct {
	remoteFlags
	Name string `arg:"" help:"Playbook name." predictor:"playbook"`
}

// playbookDetail is `playbooks show --json`: the playbook as the agent
// lists it, with its last run and last successful run.
type playbookDetail struct {
	api.Playbook
	LastRun       *api.Run `json:"last_run,omitempty"`
	LastSucceeded *api.Run `json:"last_succeeded,omitempty"`
}

// Run prints the playbook's doc, parameters (type, default, doc; * marks
// the required), triggers, schedule with its zone and next ticks,
// version, last run and last load error.
func (c *PlaybooksShowCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	pbs, err := cl.Playbooks(ctx)
	if err != nil {
		return err
	}
	var d playbookDetail
	found := false
	var names []string
	for _, p := range pbs {
		names = append(names, p.Name)
		if p.Name == c.Name {
			d.Playbook, found = p, true
		}
	}
	if !found {
		msg := fmt.Sprintf("no playbook is called %q", c.Name)
		if near := suggest.Nearest(c.Name, names); len(near) > 0 {
			msg += "; did you mean " + strings.Join(near, " or ") + "?"
		}
		return errors.New(msg + "\n  playbooks: " + dash(strings.Join(names, ", ")))
	}
	if runs, err := cl.Runs(ctx, api.ListFilter{Playbook: c.Name, Limit: 1}); err != nil {
		return err
	} else if len(runs) > 0 {
		d.LastRun = &runs[0]
	}
	if d.LastRun != nil && d.LastRun.Status != "succeeded" {
		if runs, err := cl.Runs(ctx, api.ListFilter{Playbook: c.Name, Status: "succeeded", Limit: 1}); err != nil {
			return err
		} else if len(runs) > 0 {
			d.LastSucceeded = &runs[0]
		}
	}
	if c.JSON {
		return writeJSON(g.stdout, d)
	}

	w := g.stdout
	p := d.Playbook
	fmt.Fprintf(w, "%s (%s)\n", p.Name, p.File)
	if doc := strings.TrimSpace(p.Doc); doc != "" {
		fmt.Fprintf(w, "\n  %s\n\n", strings.ReplaceAll(doc, "\n", "\n  "))
	}
	fmt.Fprintf(w, "version:   %s\n", versionText(p))
	fmt.Fprintf(w, "triggers:  %s\n", dash(strings.Join(p.Triggers, ", ")))
	if p.Schedule == "" {
		fmt.Fprintln(w, "schedule:  -")
	} else {
		zone := p.Zone
		if zone == "Local" {
			zone = "the agent's local time zone"
		}
		fmt.Fprintf(w, "schedule:  %s (in %s)\n", p.Schedule, zone)
		if p.NextRun != nil {
			fmt.Fprintf(w, "next run:  %s\n", timeText(*p.NextRun, c.UTC))
		}
		for i, t := range p.NextRuns {
			if i == 0 && p.NextRun != nil && t.Equal(*p.NextRun) {
				continue
			}
			fmt.Fprintf(w, "           %s\n", timeText(t, c.UTC))
		}
	}
	if len(p.Params) == 0 {
		fmt.Fprintln(w, "params:    -")
	} else {
		fmt.Fprintln(w, "params:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, prm := range p.Params {
			def := "required: " + passFlag(prm.Name, prm.Type)
			if len(prm.Default) > 0 {
				def = "default " + string(prm.Default)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", prm.Name, prm.Type, def, prm.Doc)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "last run:  %s\n", runLine(g, d.LastRun, c.UTC))
	if d.LastSucceeded != nil {
		fmt.Fprintf(w, "last ok:   %s\n", runLine(g, d.LastSucceeded, c.UTC))
	}
	if p.LoadError != "" {
		fmt.Fprintf(w, "load error (the last good version keeps serving):\n  %s\n", strings.ReplaceAll(p.LoadError, "\n", "\n  "))
	}
	return nil
}

// runLine is one run in a line: "r-... succeeded 2026-01-02 03:00:00 CET (took 21.8s)".
func runLine(g *Globals, r *api.Run, utc bool) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%s %s %s (took %s)", r.ID, paint(g, r.Status), timeText(r.Created, utc), took(*r))
	if r.Error != "" {
		s += ": " + clip.Line(r.Error, 80)
	}
	return s
}

// versionText is a playbook's version as people read it, saying when it
// is the last good version served from the version store because the file
// on disk does not load.
func versionText(p api.Playbook) string {
	v := dash(engine.ShortVersion(p.Version))
	if p.Saved {
		v += " (last good, saved)"
	}
	return v
}
