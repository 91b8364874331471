package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// The commands in this file talk to a serving agent (felhom-agent serve)
// over its local API socket; they never touch the run store or Proxmox
// themselves. Output is for people unless --json asks for machine output.

// remoteFlags are the flags every client command takes.
type remoteFlags struct {
	Socket string `help:"Unix socket of the serving agent's local API." default:"/run/felhom-agent/agent.sock" placeholder:"PATH" config:"socket"`
	JSON   bool   `name:"json" help:"Print JSON instead of text." env:"-"`
}

func (f *remoteFlags) client() *api.Client { return api.NewClient(f.Socket) }

// session opens the agent's client with a context that SIGINT and SIGTERM
// cancel; done releases both.
func (f *remoteFlags) session() (cl *api.Client, ctx context.Context, done func()) {
	cl = f.client()
	ctx, stop := signalContext()
	return cl, ctx, func() { stop(); cl.Close() }
}

// signalContext ends on SIGINT or SIGTERM, so following a run can be
// interrupted without killing the run.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// RunsCmd groups the run-history commands; "runs" alone lists.
type RunsCmd struct {
	List   RunsListCmd   `cmd:"" default:"withargs" help:"List recent runs, newest first."`
	Show   RunsShowCmd   `cmd:"" help:"Show one run: its status word first, then details and log."`
	Follow RunsFollowCmd `cmd:"" help:"Stream a run's log until it ends; exit 1 unless it succeeded."`
	Cancel RunsCancelCmd `cmd:"" help:"Ask a run in flight to stop."`
}

// RunsListCmd lists runs.
type RunsListCmd struct {
	remoteFlags
	Playbook string `help:"Only runs of this playbook." env:"-"`
	Status   string `help:"Only runs with this status: ${status_names}." enum:"${statuses}" default:"" env:"-"`
	Limit    int    `help:"At most this many runs (1-1000)." default:"20" env:"-"`
	Before   string `help:"Only runs older than this run id: the next page (runs list prints it when there are more)." placeholder:"ID" env:"-"`
}

// Run lists.
func (c *RunsListCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	page, err := cl.RunsPage(ctx, api.ListFilter{Playbook: c.Playbook, Status: c.Status, Limit: c.Limit, Before: c.Before})
	if err != nil {
		return err
	}
	runs := page.Runs
	if c.JSON {
		return writeJSON(g.stdout, runs)
	}
	if page.Next != "" {
		defer fmt.Fprintf(g.stderr, "more runs: felhom-agent runs list --before %s\n", page.Next)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPLAYBOOK\tSTATUS\tSOURCE\tCREATED\tTOOK\tERROR")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, statusText(r), r.Source,
			r.Created.Local().Format(time.DateTime), took(r), clip.Line(r.Error, 60))
	}
	return tw.Flush()
}

// statusText is a run's status for a table: "queued #2" while it waits in
// its playbook's queue.
func statusText(r api.Run) string {
	if r.QueuePosition > 0 {
		return fmt.Sprintf("%s #%d", r.Status, r.QueuePosition)
	}
	return r.Status
}

// RunsShowCmd shows one run.
type RunsShowCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id."`
}

// Run shows: the status word alone on the first line (scripts read it),
// then the details, the tasks and the whole log.
func (c *RunsShowCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	run, err := cl.Run(ctx, c.ID)
	if err != nil {
		return err
	}
	lines, err := allLogs(ctx, cl, c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, struct {
			Run api.Run       `json:"run"`
			Log []api.LogLine `json:"log"`
		}{run, lines})
	}
	w := g.stdout
	fmt.Fprintln(w, run.Status)
	fmt.Fprintf(w, "run:       %s\n", run.ID)
	fmt.Fprintf(w, "playbook:  %s", run.Playbook)
	if run.Version != "" {
		fmt.Fprintf(w, " (version %s)", engine.ShortVersion(run.Version))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "source:    %s", run.Source)
	if run.Key != "" {
		fmt.Fprintf(w, " (%s)", run.Key)
	}
	fmt.Fprintln(w)
	if len(run.Params) > 0 && string(run.Params) != "{}" {
		fmt.Fprintf(w, "params:    %s\n", run.Params)
	}
	fmt.Fprintf(w, "created:   %s\n", run.Created.Local().Format(time.DateTime))
	if run.QueuePosition > 0 {
		fmt.Fprintf(w, "queued:    place %d in playbook %s's queue (it runs when the runs before it have ended)\n", run.QueuePosition, run.Playbook)
	}
	if run.Started != nil {
		fmt.Fprintf(w, "started:   %s\n", run.Started.Local().Format(time.DateTime))
	}
	if run.Ended != nil {
		fmt.Fprintf(w, "ended:     %s (took %s)\n", run.Ended.Local().Format(time.DateTime), took(run))
	}
	if run.Error != "" {
		kind := ""
		if run.ErrorKind != "" {
			kind = " [" + run.ErrorKind + "]"
		}
		fmt.Fprintf(w, "error:     %s%s\n", run.Error, kind)
	}
	if len(run.Result) > 0 {
		fmt.Fprintf(w, "result:    %s\n", run.Result)
	}
	if len(run.Tasks) > 0 {
		fmt.Fprintln(w, "tasks:")
		for _, t := range run.Tasks {
			fmt.Fprintf(w, "  %s  %s %s\n", t.UPID, t.Status, t.ExitStatus)
		}
	}
	fmt.Fprintln(w, "log:")
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", logText(l))
	}
	return nil
}

// RunsFollowCmd streams a run's log.
type RunsFollowCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id."`
}

// Run follows until the run ends; the exit code is 1 unless it succeeded.
func (c *RunsFollowCmd) Run(g *Globals) error {
	cl := c.client()
	defer cl.Close()
	return followRun(g, cl, c.ID, c.JSON)
}

// followRun prints run id's log as it is written, then how it ended.
func followRun(g *Globals, cl *api.Client, id string, asJSON bool) error {
	ctx, stop := signalContext()
	defer stop()
	enc := json.NewEncoder(g.stdout)
	run, err := cl.Follow(ctx, id, func(l api.LogLine) error {
		if asJSON {
			return enc.Encode(api.FollowEvent{Log: &l})
		}
		_, err := fmt.Fprintln(g.stdout, logText(l))
		return err
	})
	if err != nil {
		return err
	}
	if asJSON {
		if err := enc.Encode(api.FollowEvent{Run: &run}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "%s %s (run %s, took %s)\n", strings.ToUpper(run.Status), run.Playbook, run.ID, took(run))
		if run.Error != "" {
			fmt.Fprintf(g.stdout, "  error: %s\n", run.Error)
		}
	}
	if run.Status != "succeeded" {
		return failed(fmt.Errorf("run %s %s", run.ID, run.Status))
	}
	return nil
}

// RunsCancelCmd cancels a run.
type RunsCancelCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id."`
}

// Run asks the agent to cancel the run and returns at once; the run is
// recorded as cancelled once it has stopped.
func (c *RunsCancelCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	run, err := cl.Cancel(ctx, c.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, run)
	}
	fmt.Fprintf(g.stdout, "cancelling run %s (%s, %s)\n", run.ID, run.Playbook, run.Status)
	return nil
}

// TriggerCmd starts a run of a playbook on the serving agent.
type TriggerCmd struct {
	remoteFlags
	Name   string   `arg:"" help:"Name of the playbook to run."`
	Param  []string `short:"p" sep:"none" help:"Parameter NAME=VALUE (repeatable); lists are comma-separated or a JSON array." placeholder:"NAME=VALUE" env:"-"`
	Follow bool     `short:"f" help:"Stream the run's log until it ends; exit 1 unless it succeeded." env:"-"`
}

// Run triggers. Values go as the strings they were typed; the agent
// coerces them against the declaration exactly as `felhom-agent run` does.
func (c *TriggerCmd) Run(g *Globals) error {
	strs, err := paramArgs(c.Param)
	if err != nil {
		return err
	}
	cl, ctx, done := c.session()
	defer done()
	req := api.TriggerRequest{Playbook: c.Name, Args: strs}
	run, err := cl.Trigger(ctx, req)
	if err != nil {
		return err
	}
	if !c.Follow {
		if c.JSON {
			return writeJSON(g.stdout, run)
		}
		fmt.Fprintf(g.stdout, "started run %s (%s)\n", run.ID, run.Playbook)
		return nil
	}
	if !c.JSON {
		fmt.Fprintf(g.stdout, "started run %s (%s)\n", run.ID, run.Playbook)
	}
	return followRun(g, cl, run.ID, c.JSON)
}

// PlaybooksCmd lists the serving agent's playbooks.
type PlaybooksCmd struct {
	remoteFlags
}

// Run prints one row per playbook file: name, version, schedule, next
// timer tick, hub triggers and the last load error (the previous good
// version keeps serving meanwhile).
func (c *PlaybooksCmd) Run(g *Globals) error {
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
	fmt.Fprintln(tw, "NAME\tVERSION\tSCHEDULE\tNEXT RUN\tTRIGGERS\tLOAD ERROR")
	for _, p := range pbs {
		next := "-"
		if p.NextRun != nil {
			next = p.NextRun.Local().Format(time.DateTime)
		}
		version := dash(engine.ShortVersion(p.Version))
		if p.Saved {
			version += " (last good, saved)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, version, dash(p.Schedule), next,
			dash(strings.Join(p.Triggers, ",")), dash(clip.Line(p.LoadError, 80)))
	}
	return tw.Flush()
}

// allLogs reads run id's whole log, page by page.
func allLogs(ctx context.Context, cl *api.Client, id string) ([]api.LogLine, error) {
	const page = 1000
	var out []api.LogLine
	var after int64
	for {
		lines, err := cl.Logs(ctx, id, after, page)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
		if len(lines) < page {
			return out, nil
		}
		after = lines[len(lines)-1].Seq
	}
}

// logText renders a log line: "15:04:05 INFO msg key=value ...", keys
// sorted, values as JSON.
func logText(l api.LogLine) string {
	return fmt.Sprintf("%s %-5s %s", l.Time.Local().Format(time.TimeOnly), l.Level, l.Text())
}

// took is how long a run took (so far, while it runs).
func took(r api.Run) string {
	if r.Started == nil {
		return "-"
	}
	end := time.Now()
	if r.Ended != nil {
		end = *r.Ended
	}
	return end.Sub(*r.Started).Round(time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
