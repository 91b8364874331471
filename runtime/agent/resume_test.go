package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// inFlight is how long the tasks of the tests that stop an agent while a
// task runs take: long enough that a loaded machine cannot finish the task
// between the test seeing it start and the stop (300 ms could).
const inFlight = 1500 * time.Millisecond

// snapFlow is snapshot → rollback → delete of guest 101, the snapshot's
// removal registered as its compensation.
const snapFlow = `    proxmox.snapshot(101, "durable")
    undo(proxmox.delete_snapshot, 101, "durable")
    proxmox.rollback(101, "durable")
    proxmox.delete_snapshot(101, "durable")
    return "done"`

// interruptDuringTask starts playbook name on a first agent on host (each
// mod adjusting its configuration), stops that agent past its grace period
// while the run's first task runs on the host, and returns the run's id
// and the state directory.
func interruptDuringTask(t *testing.T, host *simHost, files map[string]string, name string, mods ...func(*Config)) (string, string) {
	t.Helper()
	ta := host.agent(files, append([]func(*Config){pastGrace}, mods...)...)
	run := ta.start(name, nil)
	host.waitMutations(101, 1)
	// The host has the request; the run records the task's UPID once the
	// answer is back. Stopping in between would leave a call with its
	// intent and no task, which is TestReconcileAfterCrashBeforeTheUPID's
	// case, not this helper's.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		j, err := ta.store.Journal(context.Background(), run.ID)
		if err == nil && len(j) > 0 && j[len(j)-1].UPID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal = %+v, %v; want the snapshot's UPID recorded while its task runs", j, err)
		}
	}
	if err := ta.stop(); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, ta.state)
	r, err := st.Get(context.Background(), run.ID)
	if err != nil || r.Status != runstate.Interrupted {
		t.Fatalf("run after a stop past the grace period = %+v, %v; want interrupted", r, err)
	}
	j, err := st.Journal(context.Background(), run.ID)
	if err != nil || len(j) == 0 || j[len(j)-1].UPID == "" || j[len(j)-1].Outcome != nil {
		t.Fatalf("journal = %+v, %v; want the snapshot pending with its UPID", j, err)
	}
	st.Close()
	return run.ID, ta.state
}

// checkUndoneJournal checks that run id's journal holds the snapshot, the
// undo mark and the snapshot's journaled removal.
func checkUndoneJournal(t *testing.T, ta *testAgent, id string) {
	t.Helper()
	j, err := ta.store.Journal(context.Background(), id)
	if err != nil || len(j) != 3 || j[1].Builtin != store.UndoMark || j[2].Builtin != "proxmox.delete_snapshot" || j[2].Outcome == nil {
		t.Errorf("journal = %+v, %v; want the snapshot, the undo mark, and the journaled compensation", j, err)
	}
}

func TestResumeAfterStopPastGrace(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "resume = True")}
	id, state := interruptDuringTask(t, host, files, "snap")

	ta := host.agent(files, inState(state))
	run, _ := ta.wait(id)
	if run.Status != "succeeded" || string(run.Result) != `"done"` || run.Resumes != 1 || run.Replayed != 1 {
		t.Fatalf("resumed run = %s %q %s, %d resumes, %d replayed; want succeeded after one resume, the snapshot's task waited for",
			run.Status, run.Error, run.Result, run.Resumes, run.Replayed)
	}
	// snapshot, rollback, delete: each sent once.
	host.expectGuest(101, 3, "nothing sent twice")
}

func TestUndoAfterStopOfARunThatDoesNotResume(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "")}
	id, state := interruptDuringTask(t, host, files, "snap")

	ta := host.agent(files, inState(state))
	run, _ := ta.wait(id)
	if run.Status != "failed" || run.ErrorKind != engine.KindInterrupt || !strings.Contains(run.Error, "the agent stopped while the run was running") ||
		!strings.Contains(run.Error, "undone: 1 compensation") {
		t.Fatalf("run = %s %s %q; want failed, interrupted, with its snapshot undone", run.Status, run.ErrorKind, run.Error)
	}
	// The snapshot (waited for, not sent again) and its removal.
	host.expectGuest(101, 2, "snapshot, then its undo")
	checkUndoneJournal(t, ta, id)
}

func TestReconcileAdoptsATaskWhoseAnswerWasLost(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 20 * time.Millisecond
	host := newSimHost(t, sim)
	// The host starts the snapshot's task, and the answer never arrives.
	if err := sim.AddFault(pvesim.Fault{Kind: pvesim.FaultDrop, Method: "POST", Path: "/nodes/*/lxc/101/snapshot", Count: 1, After: true}); err != nil {
		t.Fatal(err)
	}
	ta := host.agent(map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "resume = True")})
	run, _ := ta.wait(ta.start("snap", nil).ID)
	if run.Status != "succeeded" || run.Adopted != 1 {
		t.Fatalf("run = %s %q, %d adopted; want succeeded with the lost answer's task adopted", run.Status, run.Error, run.Adopted)
	}
	host.expectGuest(101, 3, "the snapshot not sent again")
	// The adopted task is the run's, recorded with its end like the others.
	rec, err := ta.store.Get(context.Background(), run.ID)
	if err != nil || len(rec.Tasks) != 3 || !strings.Contains(rec.Tasks[0].UPID, ":vzsnapshot:101:") {
		t.Fatalf("the run's tasks = %+v, %v; want the adopted snapshot and the two after it", rec.Tasks, err)
	}
	for _, tk := range rec.Tasks {
		if !tk.Done() {
			t.Errorf("task %s has no recorded end", tk.UPID)
		}
	}
}

func TestQueuedSecretSurvivesRestart(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	files := map[string]string{"snap.star": agentPlaybook("snap", `    proxmox.snapshot(101, "s" + str(len(ctx.params.token)))
    return len(ctx.params.token)`, `params = {"token": param.secret()}`)}
	ta := host.agent(files, pastGrace)
	const secret = "hunter2-very-secret"
	first := ta.start("snap", map[string]any{"token": "abc"})
	queued := ta.start("snap", map[string]any{"token": secret})
	host.waitMutations(101, 1)
	if err := ta.stop(); err != nil {
		t.Fatal(err)
	}
	ta = host.agent(files, inState(ta.state))
	if r, _ := ta.wait(first.ID); r.Status != "failed" || r.ErrorKind != engine.KindInterrupt {
		t.Errorf("the run interrupted in flight = %s %s %q; want failed, interrupted (it does not resume)", r.Status, r.ErrorKind, r.Error)
	}
	r, _ := ta.wait(queued.ID)
	if r.Status != "succeeded" || string(r.Result) != fmt.Sprint(len(secret)) {
		t.Fatalf("the queued run with a secret parameter = %s %q %s; want succeeded with its secret (was: refused after a restart)", r.Status, r.Error, r.Result)
	}
	st, err := ta.store.Get(context.Background(), queued.ID)
	if err != nil || st.Secrets != nil || strings.Contains(string(st.Params), secret) {
		t.Errorf("record after the end: secrets %v, params %s, %v; want the sealed secrets cleared and the params redacted", st.Secrets, st.Params, err)
	}
}

// TestReconcileAfterCrashBeforeTheUPID: the journal's snapshot call has
// its intent and no task (as a stop between sending it and recording its
// UPID leaves it; here its task is detached from the call, as a store
// written before the UPID's one record holds it): the resume finds the
// task in the node's task list and adopts it, never sending the snapshot
// again.
func TestReconcileAfterCrashBeforeTheUPID(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "resume = True")}
	id, state := interruptDuringTask(t, host, files, "snap")
	st := openStore(t, state)
	j, err := st.Journal(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DetachTasks(context.Background(), id, j[len(j)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if j, _ := st.Journal(context.Background(), id); j[len(j)-1].UPID != "" {
		t.Fatalf("the detached call still has its task %s", j[len(j)-1].UPID)
	}
	st.Close()

	ta := host.agent(files, inState(state))
	run, _ := ta.wait(id)
	if run.Status != "succeeded" || run.Adopted != 1 || run.Reissued != 0 {
		t.Fatalf("resumed run = %s %q, %d adopted, %d re-issued; want succeeded with the snapshot's task adopted", run.Status, run.Error, run.Adopted, run.Reissued)
	}
	host.expectGuest(101, 3, "the snapshot not sent again")
}

func TestCreatedGuestsFromTheJournal(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 10 * time.Millisecond
	host := newSimHost(t, sim)
	ta := host.agent(map[string]string{"make.star": agentPlaybook("make", `    golden = [v for v in proxmox.content("local", content = "backup") if v.vmid == 9000][0]
    proxmox.restore(130, golden.volid, storage = "local-lvm", unique = True)
    proxmox.snapshot(101, "not-a-creation")
    return 130`, "")})
	run, _ := ta.wait(ta.start("make", nil).ID)
	if run.Status != "succeeded" {
		t.Fatalf("run = %s %q", run.Status, run.Error)
	}
	got, err := ta.CreatedGuests(context.Background(), run.ID)
	if err != nil || len(got) != 1 || got[0] != 130 {
		t.Errorf("CreatedGuests = %v, %v; want [130] (the restore, not the snapshot)", got, err)
	}
}

// TestAbandonARunThatWaits: a resumable run interrupted again after each
// of its automatic resumes (a crash loop) is left interrupted by the
// next start; the operator's runs abandon replays it to where it stopped
// and runs its compensations: it fails, and the guest is as before it.
func TestAbandonARunThatWaits(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "resume = True")}
	id, state := interruptDuringTask(t, host, files, "snap")
	// Each automatic resume interrupted again, as a crash while resuming
	// leaves it (recovery moves the run back to interrupted).
	st := openStore(t, state)
	for range autoResumes {
		if err := st.Resume(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if err := st.Interrupt(context.Background(), id, "the agent stopped while the run was running", store.JournalCounts{}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	ta := host.agent(files, inState(state))
	r, err := ta.store.Get(context.Background(), id)
	if err != nil || r.Status != runstate.Interrupted || r.Resumes != autoResumes {
		t.Fatalf("run after the start = %s, %d resumes, %v; want it waiting, interrupted, after %d resumes", r.Status, r.Resumes, err, autoResumes)
	}
	// The snapshot's task, in flight at the stop, ends on the host; the
	// run goes no further while it waits.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		g, _ := sim.Guest(101)
		if len(g.Snapshots) == 1 && sim.Mutations(101) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest 101 has snapshots %v after %d mutations; want the run's one, waiting for the operator", g.Snapshots, sim.Mutations(101))
		}
	}
	lapi := localAPI{ta.Agent}
	if err := lapi.Abandon(context.Background(), "no-such-run"); err == nil {
		t.Error("abandoning an unknown run succeeded")
	}
	if err := lapi.Abandon(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	run, _ := ta.wait(id)
	if run.Status != "failed" || run.ErrorKind != engine.KindInterrupt || !strings.Contains(run.Error, "abandoned by the operator (runs abandon)") ||
		!strings.Contains(run.Error, "undone: 1 compensation") {
		t.Fatalf("abandoned run = %s %s %q; want failed, interrupted, abandoned, its snapshot undone", run.Status, run.ErrorKind, run.Error)
	}
	// The snapshot (waited for, not sent again) and its removal; no
	// rollback: the abandoned run does not go on.
	host.expectGuest(101, 2, "snapshot, then its undo")
	// Abandoning it again: it is no longer interrupted.
	if err := lapi.Abandon(context.Background(), id); !errors.Is(err, api.ErrConflict) {
		t.Errorf("abandoning the finished run again = %v; want a conflict", err)
	}
	checkUndoneJournal(t, ta, id)
}

// TestDivergenceAfterUpgrade: a run interrupted past the grace period
// resumes on an agent whose builtins answer differently (an upgrade the
// version store cannot hide: it keeps the playbook, not the agent). The
// replay reaches a call whose arguments differ from the journal's; the
// run fails naming the position and both calls, and the compensations
// registered before it run: the guest is as before the run.
func TestDivergenceAfterUpgrade(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = inFlight
	host := newSimHost(t, sim)
	// upgraded.vmid() is the agent's own answer, not journaled (Pure): the
	// old agent says 101, the new one 102.
	upgraded := func(vmid int) *builtins.Table {
		return &builtins.Table{Name: "upgraded", Doc: "A builtin an agent upgrade changed.", Effect: builtins.Reads, Funcs: []builtins.Func{{
			Name: "vmid", Sig: "vmid()", Doc: "The guest.", Journal: builtins.Pure,
			Fn: func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				return starlark.MakeInt(vmid), starlark.UnpackArgs(b.Name(), args, kwargs)
			},
		}}}
	}
	flow := `    proxmox.snapshot(101, "durable")
    undo(proxmox.delete_snapshot, 101, "durable")
    proxmox.guest(upgraded.vmid())
    proxmox.rollback(101, "durable")
    return "done"`
	files := map[string]string{"snap.star": agentPlaybook("snap", flow, "resume = True")}
	with := func(vmid int) func(*Config) {
		return func(c *Config) { c.Loader.Tables = append(slices.Clip(c.Loader.Tables), upgraded(vmid)) }
	}
	old := host.agent(files, with(101), pastGrace)
	run := old.start("snap", nil)
	host.waitMutations(101, 2) // the rollback in flight
	if err := old.stop(); err != nil {
		t.Fatal(err)
	}
	// The rollback in flight at the stop ends on the host.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if g, _ := sim.Guest(101); g.Lock == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("guest 101 stays locked")
		}
	}

	ta := host.agent(files, with(102), inState(old.state))
	r, _ := ta.wait(run.ID)
	if r.Status != "failed" || r.ErrorKind != "replay" || !strings.Contains(r.Error, "non-deterministic replay at ") ||
		!strings.Contains(r.Error, "snap.star:4:18: journal has proxmox.guest (arguments ") ||
		!strings.Contains(r.Error, "playbook called proxmox.guest (arguments ") ||
		!strings.Contains(r.Error, "undone: 1 compensation") {
		t.Fatalf("resumed run = %s %s %q; want failed on the divergence at proxmox.guest, its snapshot undone", r.Status, r.ErrorKind, r.Error)
	}
	// snapshot, rollback (waited for, not sent again), the snapshot's removal.
	host.expectGuest(101, 3, "snapshot, rollback, then the undo")
}
