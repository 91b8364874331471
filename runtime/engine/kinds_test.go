package engine_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// kindsPlaybook returns what expr gives for guest 150.
const kindsPlaybook = `"""Acts on guest 150 as the step says."""

def run(ctx):
    step = ctx.params.step
    if step == "type":
        return proxmox.guest(150).type
    if step == "snapshot":
        return proxmox.snapshot(150, "s1").type
    if step == "set_config":
        t = proxmox.set_config(150, set = {"description": "x"})
        return "%s sync=%s" % (t.type, t.sync)
    if step == "shutdown":
        return proxmox.shutdown(150).type
    if step == "vmstate":
        return proxmox.snapshot(150, "s1", vmstate = True).type
    if step == "delete":
        return proxmox.delete_guest(150).type
    fail("unknown step " + step)

playbook(name = "kinds", run = run, params = {"step": param.string()})
`

// TestKindMemoryAcrossRuns: the client remembers guest kinds for every
// run of the process, and a remembered kind that PVE contradicts (the
// guest was deleted and recreated as the other kind, or migrated, between
// two runs) is looked up once more: the run acts on the right kind, or
// fails naming where the guest is, and a vmid with no guest gets PVE's
// own answer. All against the simulator over HTTPS.
func TestKindMemoryAcrossRuns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   int
		before  string // the guest's type in the first run
		change  pvesim.GuestSpec
		removed bool   // the guest is deleted, not recreated
		step    string // what the second run does
		want    string // its output, or
		wantErr string // its error
	}{
		{name: "container recreated as a VM", before: "lxc", change: pvesim.GuestSpec{VMID: 150, Type: "qemu"},
			step: "snapshot", want: `"qmsnapshot"`},
		{name: "VM recreated as a container", before: "qemu", change: pvesim.GuestSpec{VMID: 150},
			step: "set_config", want: `" sync=True"`},
		{name: "container recreated as a VM, config", before: "lxc", change: pvesim.GuestSpec{VMID: 150, Type: "qemu"},
			step: "set_config", want: `"qmconfig sync=False"`},
		{name: "container recreated as a running VM, shutdown", before: "lxc", change: pvesim.GuestSpec{VMID: 150, Type: "qemu", Running: true},
			step: "shutdown", want: `"qmshutdown"`},
		{name: "VM recreated as a running container, shutdown", before: "qemu", change: pvesim.GuestSpec{VMID: 150, Running: true},
			step: "shutdown", want: `"vzshutdown"`},
		{name: "container stopped, shutdown", before: "lxc", change: pvesim.GuestSpec{VMID: 150},
			step: "shutdown", wantErr: "500 CT 150 not running"},
		{name: "container recreated as a VM, read", before: "lxc", change: pvesim.GuestSpec{VMID: 150, Type: "qemu"},
			step: "type", want: `"qemu"`},
		{name: "VM deleted", before: "qemu", removed: true,
			step: "type", wantErr: "qemu-server/150.conf' does not exist"},
		{name: "container migrated", nodes: 2, before: "lxc", change: pvesim.GuestSpec{VMID: 150, Node: pvesim.ClusterNodeName(2)},
			step: "snapshot", wantErr: "guest 150 is on node pve2, not on node pve1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New()
			sim.Nodes = tc.nodes
			sim.TaskDuration = -1
			if err := sim.AddGuest(pvesim.GuestSpec{VMID: 150, Type: tc.before}); err != nil {
				t.Fatal(err)
			}
			run := kindsRunner(t, sim, context.Background())

			// The first run looks the kind up; the next acts on it at once.
			if res := run("type"); res.Status != runstate.Succeeded || string(res.Output) != `"`+tc.before+`"` {
				t.Fatalf("first run = %s %s: %s", res.Status, res.Output, res.Error)
			}
			q := sim.Requests()
			if res := run("type"); res.Status != runstate.Succeeded || string(res.Output) != `"`+tc.before+`"` {
				t.Fatalf("second run = %s %s: %s", res.Status, res.Output, res.Error)
			}
			if got := sim.Requests() - q; got != 1 {
				t.Errorf("a run reading a remembered guest made %d requests, want 1 (no lookup)", got)
			}

			if err := sim.RemoveGuest(150); err != nil {
				t.Fatal(err)
			}
			if !tc.removed {
				if err := sim.AddGuest(tc.change); err != nil {
					t.Fatal(err)
				}
			}
			res := run(tc.step)
			if tc.wantErr != "" {
				if res.Status != runstate.Failed || !strings.Contains(res.Error, tc.wantErr) {
					t.Fatalf("run after the change = %s: %q, want failed with %q", res.Status, res.Error, tc.wantErr)
				}
				return
			}
			if res.Status != runstate.Succeeded || string(res.Output) != tc.want {
				t.Fatalf("run after the change = %s %s: %s, want %s", res.Status, res.Output, res.Error, tc.want)
			}
			// The new kind is remembered: the next run asks nothing else.
			q = sim.Requests()
			if res := run("type"); res.Status != runstate.Succeeded || string(res.Output) != `"`+string(kindOf(tc.change))+`"` {
				t.Fatalf("last run = %s %s: %s", res.Status, res.Output, res.Error)
			}
			if got := sim.Requests() - q; got != 1 {
				t.Errorf("a run after the relookup made %d requests, want 1", got)
			}
		})
	}
}

// kindsRunner serves sim over TLS and returns a function that runs
// kindsPlaybook's step on an engine acting on it, with ctx.
func kindsRunner(t *testing.T, sim *pvesim.Sim, ctx context.Context) func(step string) *engine.Result {
	t.Helper()
	_, c := pvetest.Serve(t, sim)
	dir := t.TempDir()
	path := filepath.Join(dir, "kinds.star")
	if err := os.WriteFile(path, []byte(kindsPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	pb, err := engine.LoadFile(path, dir)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.NewEngine(engine.Config{Env: builtins.Env{Proxmox: c}, Logger: slog.New(slog.DiscardHandler)})
	return func(step string) *engine.Result {
		params, err := pb.Decl.Coerce(map[string]string{"step": step}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return e.Run(ctx, pb, params, engine.RunOptions{ID: "kinds-" + step})
	}
}

// TestMutationOfNoGuest: a mutation of a vmid no node has is refused with
// PVE's own not-found answer (a status read), after one fresh look at the
// cluster's guests: its options are not checked against a kind it does not
// have (was: "vmstate applies only to QEMU VMs; guest 150 is an LXC
// container"), the safety gate is never asked (was: a signature asked for
// deleting a guest that does not exist), and nothing is sent.
func TestMutationOfNoGuest(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = -1
	gate := &countingGate{}
	run := kindsRunner(t, sim, proxmox.WithObserver(context.Background(), gate))
	for _, step := range []string{"vmstate", "delete", "shutdown", "set_config"} {
		q := sim.Requests()
		res := run(step)
		if res.Status != runstate.Failed || !strings.Contains(res.Error, "no node of the cluster has guest 150: ") ||
			!strings.Contains(res.Error, "Configuration file 'nodes/demo-felhom/lxc/150.conf' does not exist") {
			t.Errorf("%s: run = %s %q; want failed with PVE's not-found for guest 150", step, res.Status, res.Error)
		}
		// The listing, the fresh one (the first may have begun before the
		// guest was made), the status read; nothing else.
		if got := sim.Requests() - q; got != 3 {
			t.Errorf("%s: %d requests; want two listings and a status read", step, got)
		}
	}
	if gate.n != 0 || sim.Mutations(150) != 0 {
		t.Errorf("the gate was asked %d times, the host saw %d mutations of 150; want neither", gate.n, sim.Mutations(150))
	}
}

// countingGate is an Observer and MutationGate that lets every mutation
// through and counts them.
type countingGate struct{ n int }

func (*countingGate) Request(proxmox.RequestInfo)                                       {}
func (*countingGate) TaskStarted(proxmox.UPID)                                          {}
func (*countingGate) TaskWaited(proxmox.UPID, time.Duration, proxmox.TaskStatus, error) {}
func (g *countingGate) BeforeMutation(context.Context, proxmox.Mutation) error {
	g.n++
	return nil
}

func kindOf(sp pvesim.GuestSpec) proxmox.GuestKind {
	if sp.Type == "qemu" {
		return proxmox.QEMU
	}
	return proxmox.LXC
}
