package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Resume after an interruption: a run the agent's stop interrupted (a
// crash, kill -9, a stop past the grace period) waits, interrupted, for
// the next start. Then, with the playbook version it started with (from
// the version store, even when the file changed or broke since) and its
// recorded parameters:
//
//   - a playbook that declares resume = True resumes: the run re-executes
//     from the top, each builtin call answered from its journal, then goes
//     on live (runJournal);
//   - another is replayed to where it stopped (builtins.ErrReplayStop)
//     and its compensations run, so it ends failed with what it did
//     undone.
//
// `runs resume ID` does the first, `runs abandon ID` the second, for an
// interrupted run. A run that cannot be resumed (its version is not in
// the store, its parameters no longer load) fails saying why.
//
// A run already resumed autoResumes times and interrupted again (an agent
// that crashes while it resumes it, a crash loop) is not resumed at the
// start: it waits, interrupted, for the operator's runs resume or runs
// abandon.

// autoResumes is how many resumes of one run the agent's starts make on
// their own.
const autoResumes = 3

// resumption is what a resumed run's execution needs.
type resumption struct {
	entries  []store.JournalEntry
	undoOnly bool   // replay to where it stopped, then undo
	reason   string // why the body stops there (the run's error)
}

func (r *resumption) what() string {
	if r.undoOnly {
		return "run replayed from its journal to where it stopped, to undo it"
	}
	return "run resumes from its journal"
}

// resumeInterrupted resumes (or undoes) every interrupted run, oldest
// first, once the playbooks have loaded (lifecycle step 5).
func (a *Agent) resumeInterrupted() {
	runs, err := a.store.List(context.Background(), store.Filter{Status: runstate.Interrupted})
	if err != nil {
		a.log.Error("listing the interrupted runs failed; they wait for the next start or runs resume", "err", err)
		return
	}
	slices.Reverse(runs) // List is newest first
	for _, r := range runs {
		if a.foreign(r.Origin) != "" {
			_ = a.resumeRun(r, false) // ends it failed, saying why
			continue
		}
		if r.Resumes >= autoResumes {
			a.log.Warn("an interrupted run was interrupted again after each of its automatic resumes; it waits for runs resume or runs abandon",
				"run", r.ID, "playbook", r.Playbook, "resumes", r.Resumes)
			continue
		}
		_ = a.resumeRun(r, false)
	}
}

// errNotInterrupted is a resume or abandon of a run that is not waiting.
var errNotInterrupted = errors.New("is not interrupted")

// resumeRun resumes r, or with abandon replays it into its undo.
func (a *Agent) resumeRun(r store.Run, abandon bool) error {
	ctx := context.Background()
	if r.Status != runstate.Interrupted {
		return fmt.Errorf("run %s is %s: %w", r.ID, r.Status, errNotInterrupted)
	}
	end := func(msg, detail string) error {
		a.log.Error("an interrupted run can be neither resumed nor undone", "run", r.ID, "playbook", r.Playbook, "reason", msg)
		a.recordFinish(r.ID, store.FinishInfo{Status: runstate.Failed, ErrorKind: engine.KindInterrupt, Error: r.Error + "; " + detail})
		a.metrics.runFinished(r.Playbook, string(runstate.Failed), 0)
		return errors.New(msg)
	}
	fail := func(msg string) error { return end(msg, "it cannot be resumed or undone: "+msg) }
	if why := a.foreign(r.Origin); why != "" {
		// Its journal holds another host's answers and its compensations
		// would act on guests of this one it never touched: nothing of it
		// is sent here.
		why += ": not resumed and not undone"
		return end(why, why)
	}
	pb, err := a.versionOf(ctx, r)
	if err != nil {
		return fail(err.Error())
	}
	params, msg := a.recordedParams(pb, r)
	if msg != "" {
		return fail(msg)
	}
	entries, err := a.store.Journal(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("run %s: %w", r.ID, err)
	}
	res := &resumption{entries: entries, undoOnly: abandon || !pb.Decl.Resume, reason: r.Error}
	if abandon {
		res.reason = "abandoned by the operator (runs abandon) after: " + r.Error
	}
	if res.undoOnly && len(entries) == 0 {
		// It made no journaled call: nothing of it reached the outside
		// world, so there is nothing to undo and no replay to make.
		a.log.Info("an interrupted run made no call that changes anything; it ends without a replay", "run", r.ID, "playbook", r.Playbook)
		a.recordFinish(r.ID, store.FinishInfo{Status: runstate.Failed, ErrorKind: engine.KindInterrupt,
			Error: res.reason + "; it had made no call to Proxmox or the host, so nothing needed undoing"})
		a.metrics.runFinished(r.Playbook, string(runstate.Failed), 0)
		return nil
	}
	if err := a.store.Resume(ctx, r.ID); err != nil {
		return fmt.Errorf("run %s: %w", r.ID, err)
	}
	a.log.Info(res.what(), "run", r.ID, "playbook", r.Playbook, "version", pb.ShortVersion(), "journal_entries", len(entries), "resumes", r.Resumes+1)
	sig, attrs := a.carriedSignature(r, pb)
	if a.launchResumed(r, pb, params, false, res, sig, append([]any{"resumed", r.Resumes + 1}, attrs...)...) == nil {
		// Draining: back to interrupted, for the next start.
		_ = a.store.Interrupt(ctx, r.ID, r.Error, store.JournalCounts{})
	}
	return nil
}

// versionOf is the playbook version run r started with: the one serving,
// or else the one the version store keeps.
func (a *Agent) versionOf(ctx context.Context, r store.Run) (*engine.Playbook, error) {
	if r.Version == "" {
		return nil, errors.New("the run records no playbook version")
	}
	file := ""
	if pb := a.registry.Get(r.Playbook); pb != nil {
		if pb.Version == r.Version {
			return pb, nil
		}
		file = pb.File
	}
	if file == "" {
		good, err := a.store.GoodVersions(ctx)
		if err != nil {
			return nil, err
		}
		for f, g := range good {
			if g.Playbook == r.Playbook {
				file = f
			}
		}
	}
	if file == "" {
		return nil, fmt.Errorf("playbook %q is not loaded and the store names no file for it", r.Playbook)
	}
	files, err := a.store.GetVersion(ctx, r.Version)
	if err != nil {
		return nil, fmt.Errorf("version %s of playbook %q is not in the version store: %w", engine.ShortVersion(r.Version), r.Playbook, err)
	}
	pb, err := a.registry.Loader().LoadSaved(file, files)
	if err != nil {
		return nil, fmt.Errorf("version %s of playbook %q does not load: %w", engine.ShortVersion(r.Version), r.Playbook, err)
	}
	if pb.Name != r.Playbook {
		return nil, fmt.Errorf("version %s of %s declares %q, not %q", engine.ShortVersion(r.Version), file, pb.Name, r.Playbook)
	}
	return pb, nil
}

// CreatedGuests returns the guests whose creation run's journal records
// (each proxmox.restore that started its task), in the order it created
// them: what "created by this run" means for the safety gate and for
// undo.
func (a *Agent) CreatedGuests(ctx context.Context, run string) ([]int, error) {
	upids, err := a.store.JournalUPIDs(ctx, run, "proxmox.restore")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, u := range upids {
		upid, err := proxmox.ParseUPID(u)
		if err != nil {
			continue
		}
		if vmid, err := strconv.Atoi(upid.ID); err == nil && !slices.Contains(out, vmid) {
			out = append(out, vmid)
		}
	}
	return out, nil
}
