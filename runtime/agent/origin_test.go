package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// TestResumeOnlyAgainstTheSameHost: a run interrupted against one
// Proxmox (a simulator over TLS standing in for a host, or serve --sim's
// simulator) and recovered by an agent on the same state directory that
// talks to another host ends failed, naming both, neither resumed nor
// undone: not one request of it reaches the other host, and runs resume
// and runs abandon refuse it. Against the same host it still resumes.
func TestResumeOnlyAgainstTheSameHost(t *testing.T) {
	for _, tt := range []struct {
		name   string
		decl   string // the playbook's declaration: resume or undo
		first  func(*Config)
		same   bool   // the second agent talks to the first one's host
		origin string // what the error says the run was made against; "" for host A's target
	}{
		{name: "same host resumes", decl: "resume = True", same: true},
		{name: "another host: not resumed", decl: "resume = True"},
		{name: "another host: not undone", decl: ""},
		{name: "the simulator, then a host", decl: "resume = True", first: func(c *Config) { c.Origin = SimOrigin }, origin: "the simulator"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			simA := pvesim.New()
			// Long enough that the stop comes while the snapshot runs, also
			// on a loaded machine.
			simA.TaskDuration = time.Second
			hostA := newSimHost(t, simA)
			files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, tt.decl)}
			var mods []func(*Config)
			if tt.first != nil {
				mods = append(mods, tt.first)
			}
			id, state := interruptDuringTask(t, hostA, files, "snap", mods...)
			recorded := hostA.client.Target()
			if tt.origin != "" {
				recorded = SimOrigin
			}
			st := openStore(t, state)
			r, err := st.Get(context.Background(), id)
			st.Close()
			if err != nil || r.Origin != recorded || len(r.Tasks) != 1 {
				t.Fatalf("run's origin = %q, %d tasks, %v; want %q and the snapshot's task", r.Origin, len(r.Tasks), err, recorded)
			}
			open := !r.Tasks[0].Done()

			if tt.same {
				ta := hostA.agent(files, inState(state))
				run, _ := ta.wait(id)
				if run.Status != "succeeded" || run.Resumes != 1 {
					t.Fatalf("run on its own host = %s %q, %d resumes; want succeeded after one resume", run.Status, run.Error, run.Resumes)
				}
				hostA.expectGuest(101, 3, "resumed on its own host")
				return
			}

			simB := pvesim.New()
			hostB := newSimHost(t, simB)
			ta := hostB.agent(files, inState(state))
			run, _ := ta.wait(id)
			from := tt.origin
			if from == "" {
				from = hostA.client.Target()
			}
			want := "made against " + from + "; this agent talks to " + hostB.client.Target() + ": not resumed and not undone"
			if run.Origin != recorded {
				t.Errorf("the local API shows origin %q; want %q", run.Origin, recorded)
			}
			if run.Status != "failed" || run.ErrorKind != engine.KindInterrupt || !strings.Contains(run.Error, want) ||
				!strings.Contains(run.Error, "the agent stopped while the run was running; made against") || run.Resumes != 0 {
				t.Fatalf("run on another host = %s %s %q, %d resumes; want failed, interrupted, saying %q", run.Status, run.ErrorKind, run.Error, run.Resumes, want)
			}
			// The snapshot's task, when the first agent's stop left it open
			// (it may have seen it end first), is not followed on host B.
			if len(run.Tasks) != 1 || open && (!strings.HasPrefix(run.Tasks[0].ExitStatus, "unknown: made against "+from) ||
				!strings.HasSuffix(run.Tasks[0].ExitStatus, ": not followed")) {
				t.Errorf("run's tasks = %+v (open at the stop: %v); want its snapshot's task, recorded as not followed on the other host if it was open", run.Tasks, open)
			}
			lapi := localAPI{ta.Agent}
			for name, do := range map[string]func(context.Context, string) error{"resume": lapi.Resume, "abandon": lapi.Abandon} {
				if err := do(context.Background(), id); !errors.Is(err, api.ErrConflict) {
					t.Errorf("runs %s of the failed run = %v; want a conflict", name, err)
				}
			}
			if err := ta.stop(); err != nil {
				t.Fatal(err)
			}
			// Host B was asked nothing but the health probe's version and
			// cluster status (health.go).
			if n, probes := simB.Requests(), simB.RouteRequests("GET /version")+simB.RouteRequests("GET /cluster/status"); n != probes {
				t.Errorf("host B got %d requests, %d of them the health probe; want only the probe", n, probes)
			}
			if simB.MutatingRequests() != 0 || simB.Mutations(101) != 0 {
				t.Errorf("host B got %d mutating requests; want none", simB.MutatingRequests())
			}
			// Host A keeps what the run did there once its task ends:
			// nothing undone on either host.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				g, _ := simA.Guest(101)
				if simA.Mutations(101) == 1 && len(g.Snapshots) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("host A: guest 101 saw %d mutations, has snapshots %v; want the run's snapshot only", simA.Mutations(101), g.Snapshots)
				}
			}
		})
	}
}

// TestQueuedOnlyOnTheSameHost: a run accepted and still queued when the
// agent stops records the host it was accepted for; an agent on the same
// state directory that talks to another host refuses it, naming both, and
// sends that host nothing of it. On the same host it runs.
func TestQueuedOnlyOnTheSameHost(t *testing.T) {
	for _, same := range []bool{true, false} {
		t.Run(map[bool]string{true: "same host runs it", false: "another host refuses it"}[same], func(t *testing.T) {
			simA := pvesim.New()
			simA.TaskDuration = inFlight
			hostA := newSimHost(t, simA)
			files := map[string]string{"snap.star": agentPlaybook("snap", snapFlow, "")}
			ta := hostA.agent(files, pastGrace)
			ta.start("snap", nil)
			queued := ta.start("snap", nil) // behind the first: the playbook is not concurrent
			hostA.waitMutations(101, 1)
			if err := ta.stop(); err != nil {
				t.Fatal(err)
			}
			st := openStore(t, ta.state)
			r, err := st.Get(context.Background(), queued.ID)
			st.Close()
			if err != nil || r.Status != "queued" || r.Origin != hostA.client.Target() {
				t.Fatalf("the queued run = %s, origin %q, %v; want queued for %q", r.Status, r.Origin, err, hostA.client.Target())
			}

			host := hostA
			if !same {
				host = newSimHost(t, pvesim.New())
			}
			before := host.sim.MutatingRequests()
			tb := host.agent(files, inState(ta.state))
			run, _ := tb.wait(queued.ID)
			if same {
				if run.Status != "succeeded" {
					t.Fatalf("the queued run on its own host = %s %q; want succeeded", run.Status, run.Error)
				}
				return
			}
			want := "accepted to be made against " + hostA.client.Target() + "; this agent talks to " + host.client.Target() + "; it never started"
			if run.Status != "refused" || !strings.Contains(run.Error, want) {
				t.Fatalf("the queued run on another host = %s %q; want refused, saying %q", run.Status, run.Error, want)
			}
			if n := host.sim.MutatingRequests() - before; n != 0 {
				t.Errorf("the other host got %d mutating requests; want none", n)
			}
		})
	}
}
