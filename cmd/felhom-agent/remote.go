package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/internal/suggest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/plan"
)

// The commands in this file talk to a serving agent (felhom-agent serve)
// over its local API socket; they never touch the run store or Proxmox
// themselves. Output is for people unless --json asks for machine output.

// remoteFlags are the flags every client command takes.
type remoteFlags struct {
	Socket string `help:"${socket_help}" placeholder:"PATH" config:"socket"`
	JSON   bool   `name:"json" help:"Print JSON instead of text." env:"-"`
	UTC    bool   `name:"utc" help:"Show times in UTC instead of the local time zone." env:"-"`
}

func (f *remoteFlags) client() *api.Client { return api.NewClient(f.socket()) }

// socket is --socket, or where a serving agent's socket is by default
// (dirs.go).
func (f *remoteFlags) socket() string {
	if f.Socket == "" {
		f.Socket = hostDirs().socket().Dir
	}
	return f.Socket
}

// session opens the agent's client with a context that SIGINT and SIGTERM
// cancel; done releases both.
func (f *remoteFlags) session() (cl *api.Client, ctx context.Context, done func()) {
	cl = f.client()
	ctx, stop := signalContext()
	return cl, ctx, func() { stop(); cl.Close() }
}

// signalContext ends on SIGINT or SIGTERM, so following a run can be
// interrupted without killing the run. Tests replace it to interrupt
// without a signal.
var signalContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// resolveRun reads run id — a full id or a unique prefix — so that the
// commands after it use the full id.
func resolveRun(ctx context.Context, cl *api.Client, id string) (api.Run, error) {
	return cl.Run(ctx, id)
}

// RunsCmd groups the run-history commands; "runs" alone lists.
type RunsCmd struct {
	List    RunsListCmd    `cmd:"" default:"withargs" help:"List recent runs, newest first."`
	Show    RunsShowCmd    `cmd:"" help:"Show one run: its status word first, then details and log."`
	Follow  RunsFollowCmd  `cmd:"" help:"Stream a run's log until it ends; exit 1 unless it succeeded."`
	Cancel  RunsCancelCmd  `cmd:"" help:"Ask a run in flight to stop (its undo() compensations run)."`
	Resume  RunsResumeCmd  `cmd:"" help:"Resume an interrupted run from its journal (same id, parameters and version)."`
	Abandon RunsAbandonCmd `cmd:"" help:"Undo an interrupted run: replay it to where it stopped, run its compensations, and fail it."`
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Playbook, paint(g, statusText(r)), r.Source,
			timeText(r.Created, c.UTC), took(r), clip.Line(r.Error, 60))
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
	ID string `arg:"" help:"Run id, or a unique prefix of one." predictor:"run"`
}

// Run shows: the status word alone on the first line (scripts read it),
// then the details, the tasks and the whole log.
func (c *RunsShowCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	run, err := resolveRun(ctx, cl, c.ID)
	if err != nil {
		return err
	}
	lines, err := allLogs(ctx, cl, run.ID)
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
	fmt.Fprintln(w, paint(g, run.Status))
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
	fmt.Fprintf(w, "created:   %s\n", timeText(run.Created, c.UTC))
	if run.QueuePosition > 0 {
		fmt.Fprintf(w, "queued:    place %d in playbook %s's queue (it runs when the runs before it have ended)\n", run.QueuePosition, run.Playbook)
	}
	if run.Started != nil {
		fmt.Fprintf(w, "started:   %s\n", timeText(*run.Started, c.UTC))
	}
	if run.Ended != nil {
		fmt.Fprintf(w, "ended:     %s (took %s)\n", timeText(*run.Ended, c.UTC), took(run))
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
		fmt.Fprintf(w, "  %s\n", logText(g, l, c.UTC))
	}
	return nil
}

// RunsFollowCmd streams a run's log.
type RunsFollowCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id, or a unique prefix of one." predictor:"run"`
}

// Run follows until the run ends; the exit code is 1 unless it succeeded.
// An interrupt (Ctrl-C) detaches: the run goes on, and the exit code is 0.
func (c *RunsFollowCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	run, err := resolveRun(ctx, cl, c.ID)
	if err != nil {
		return err
	}
	return followRun(g, cl, run.ID, c.JSON, c.UTC)
}

// followRun prints run id's log as it is written, then how it ended. An
// interrupt stops following, not the run: it says so and returns nil.
func followRun(g *Globals, cl *api.Client, id string, asJSON, utc bool) error {
	ctx, stop := signalContext()
	defer stop()
	enc := json.NewEncoder(g.stdout)
	var out io.Writer = g.stdout
	var board *liveStatus
	if !asJSON && isTerminal(g.stdout) {
		board = newLiveStatus(g.stdout)
		out = board
	}
	run, err := cl.Follow(ctx, id, func(l api.LogLine) error {
		if asJSON {
			return enc.Encode(api.FollowEvent{Log: &l})
		}
		if ev, ok := lineEvent(l); ok && board != nil && board.Event(ev) {
			return nil
		}
		_, err := fmt.Fprintln(out, logText(g, l, utc))
		return err
	})
	if board != nil {
		board.Close()
	}
	if err != nil && ctx.Err() != nil {
		fmt.Fprintf(g.stderr, "detached; run %s goes on (felhom-agent runs follow %s)\n", id, id)
		return nil
	}
	if err != nil {
		return err
	}
	if asJSON {
		if err := enc.Encode(api.FollowEvent{Run: &run}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "%s %s (run %s, took %s)\n", paint(g, strings.ToUpper(run.Status)), run.Playbook, run.ID, took(run))
		if run.Error != "" {
			fmt.Fprintf(g.stdout, "  error: %s\n", run.Error)
		}
	}
	if run.Status != "succeeded" {
		return failed(fmt.Errorf("run %s %s", run.ID, run.Status))
	}
	return nil
}

// plan asks the agent for the plan of each playbook the name resolved to.
func (c *TriggerCmd) plan(ctx context.Context, g *Globals, cl *api.Client, target triggerTarget, strs map[string]string) error {
	var failedPlans []string
	for _, pb := range target.playbooks {
		raw, err := cl.Plan(ctx, api.TriggerRequest{Playbook: pb.Name, Args: strs})
		if err != nil {
			return explainAPIParamError(err, target.playbooks)
		}
		var r plan.Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("plan of %s: %w", pb.Name, err)
		}
		if err := printPlan(g.stdout, &r, c.JSON); err != nil {
			return err
		}
		if r.Status != "succeeded" {
			failedPlans = append(failedPlans, pb.Name)
		}
	}
	if len(failedPlans) > 0 {
		return failed(fmt.Errorf("a run of %s would not succeed", strings.Join(failedPlans, ", ")))
	}
	return nil
}

// RunsCancelCmd cancels a run.
type RunsCancelCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id, or a unique prefix of one." predictor:"run"`
}

// Run asks the agent to cancel the run and returns at once; the run is
// recorded as cancelled once it has stopped.
func (c *RunsCancelCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	run, err := resolveRun(ctx, cl, c.ID)
	if err != nil {
		return err
	}
	run, err = cl.Cancel(ctx, run.ID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, run)
	}
	fmt.Fprintf(g.stdout, "cancelling run %s (%s, %s)\n", run.ID, run.Playbook, run.Status)
	return nil
}

// RunsResumeCmd resumes an interrupted run.
type RunsResumeCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id, or a unique prefix of one." predictor:"run"`
}

// Run asks the agent to resume the run and returns at once.
func (c *RunsResumeCmd) Run(g *Globals) error { return resumeRun(g, c.remoteFlags, c.ID, false) }

// RunsAbandonCmd undoes an interrupted run.
type RunsAbandonCmd struct {
	remoteFlags
	ID string `arg:"" help:"Run id, or a unique prefix of one." predictor:"run"`
}

// Run asks the agent to undo the run and returns at once.
func (c *RunsAbandonCmd) Run(g *Globals) error { return resumeRun(g, c.remoteFlags, c.ID, true) }

func resumeRun(g *Globals, f remoteFlags, id string, abandon bool) error {
	cl, ctx, done := f.session()
	defer done()
	run, err := resolveRun(ctx, cl, id)
	if err != nil {
		return err
	}
	if run, err = cl.Resume(ctx, run.ID, abandon); err != nil {
		return err
	}
	if f.JSON {
		return writeJSON(g.stdout, run)
	}
	verb := "resuming"
	if abandon {
		verb = "undoing"
	}
	fmt.Fprintf(g.stdout, "%s run %s (%s, %s)\n", verb, run.ID, run.Playbook, run.Status)
	return nil
}

// TriggerCmd starts runs on the serving agent, by trigger name or by
// playbook name.
type TriggerCmd struct {
	remoteFlags
	Name   string   `arg:"" help:"Trigger name (every playbook answering it runs), or a playbook name." predictor:"trigger"`
	Param  []string `short:"p" sep:"none" help:"Parameter NAME=VALUE (repeatable); lists are comma-separated or a JSON array." placeholder:"NAME=VALUE" env:"-"`
	Follow bool     `short:"f" help:"Stream the runs' logs until they end; exit 1 unless all succeeded." env:"-"`
	Plan   bool     `help:"Start nothing: print what a run of each playbook would do (felhom-agent plan, on the serving agent); exit 1 unless all would succeed." env:"-"`
}

// warnStale tells the operator on stderr about each started run whose
// playbook's file on disk does not load: the run gets the last good
// version, which the agent keeps serving, not the edit just saved.
func warnStale(g *Globals, pbs []api.Playbook, runs []api.Run) {
	for _, run := range runs {
		for _, p := range pbs {
			if p.Name == run.Playbook && p.LoadError != "" {
				fmt.Fprintf(g.stderr, "warning: %s does not load, so run %s runs its last good version %s: %s\n", p.File, run.ID, run.Version, p.LoadError)
			}
		}
	}
}

// Run resolves the name — a trigger first, then a playbook, saying which —
// and triggers; the runs are recorded with source "cli". Values go as the strings they were typed; the agent
// coerces them against each declaration exactly as `felhom-agent run`
// does.
func (c *TriggerCmd) Run(g *Globals) error {
	strs, err := paramArgs(c.Param)
	if err != nil {
		return err
	}
	cl, ctx, done := c.session()
	defer done()
	pbs, err := cl.Playbooks(ctx)
	if err != nil {
		return err
	}
	target, err := resolveTrigger(c.Name, pbs)
	if err != nil {
		return err
	}
	if c.Plan {
		return c.plan(ctx, g, cl, target, strs)
	}
	var runs []api.Run
	if target.byTrigger {
		runs, err = cl.StartTrigger(ctx, api.TriggerRequest{Trigger: c.Name, Args: strs, Source: "cli"})
	} else {
		var run api.Run
		run, err = cl.Trigger(ctx, api.TriggerRequest{Playbook: c.Name, Args: strs, Source: "cli"})
		runs = []api.Run{run}
	}
	if err != nil {
		return explainAPIParamError(err, target.playbooks)
	}
	if c.JSON && !c.Follow {
		// One run is its object, as ever; a trigger several playbooks
		// answer is the array of their runs.
		if len(runs) == 1 {
			return writeJSON(g.stdout, runs[0])
		}
		return writeJSON(g.stdout, runs)
	}
	if !c.JSON {
		for _, run := range runs {
			fmt.Fprintf(g.stdout, "started run %s (%s, %s)\n", run.ID, run.Playbook, target.how(run.Playbook))
		}
	}
	warnStale(g, pbs, runs)
	if !c.Follow {
		return nil
	}
	var errs []error
	for _, run := range runs {
		if err := followRun(g, cl, run.ID, c.JSON, c.UTC); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	if len(errs) > 1 {
		return failed(errors.Join(errs...))
	}
	return nil
}

// triggerTarget is what a trigger command's name resolved to.
type triggerTarget struct {
	name      string
	byTrigger bool           // a trigger name; else a playbook name
	playbooks []api.Playbook // the playbooks it starts
}

// how says, for a run's recap, how the name led to the playbook.
func (t triggerTarget) how(playbook string) string {
	if t.byTrigger {
		return "by trigger " + t.name
	}
	return "by playbook name; no trigger is called " + t.name
}

// resolveTrigger finds what name means among the agent's playbooks: the
// serving playbooks answering trigger name, else the serving playbook of
// that name. Neither is an error with the nearest names and the list.
func resolveTrigger(name string, pbs []api.Playbook) (triggerTarget, error) {
	t := triggerTarget{name: name}
	var triggers, names []string
	for _, pb := range pbs {
		if pb.Version == "" {
			continue // never loaded: it serves nothing
		}
		names = append(names, pb.Name)
		for _, tr := range pb.Triggers {
			if !slices.Contains(triggers, tr) {
				triggers = append(triggers, tr)
			}
			if tr == name {
				t.byTrigger = true
				t.playbooks = append(t.playbooks, pb)
			}
		}
	}
	if t.byTrigger {
		return t, nil
	}
	for _, pb := range pbs {
		if pb.Version != "" && pb.Name == name {
			t.playbooks = []api.Playbook{pb}
			return t, nil
		}
	}
	slices.Sort(triggers)
	var b strings.Builder
	fmt.Fprintf(&b, "no trigger or playbook is called %q", name)
	if near := suggest.Nearest(name, append(slices.Clone(triggers), names...)); len(near) > 0 {
		fmt.Fprintf(&b, "; did you mean %s?", strings.Join(near, " or "))
	}
	fmt.Fprintf(&b, "\n  triggers:  %s\n  playbooks: %s", dash(strings.Join(triggers, ", ")), dash(strings.Join(names, ", ")))
	return t, errors.New(b.String())
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

// logText renders a log line: "15:04:05 CET INFO  msg key=value ...",
// keys sorted, values as JSON with durations and fractions rounded.
func logText(g *Globals, l api.LogLine, utc bool) string {
	return fmt.Sprintf("%s %s %s", clockText(l.Time, utc), paintLevel(g, fmt.Sprintf("%-5s", l.Level)), humanAttrs(l))
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
	return humanDuration(end.Sub(*r.Started))
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
