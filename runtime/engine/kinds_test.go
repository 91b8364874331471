package engine_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
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
			srv, err := sim.Start("")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			tok, err := proxmox.ParseToken(srv.Token)
			if err != nil {
				t.Fatal(err)
			}
			c, err := proxmox.New(proxmox.Config{Endpoint: srv.Endpoint, Node: srv.Node, Token: tok, Fingerprint: srv.Fingerprint})
			if err != nil {
				t.Fatal(err)
			}
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
			run := func(step string) *engine.Result {
				params, err := pb.Decl.Coerce(map[string]string{"step": step}, nil)
				if err != nil {
					t.Fatal(err)
				}
				return e.Run(context.Background(), pb, params, engine.RunOptions{ID: "kinds-" + step})
			}

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

func kindOf(sp pvesim.GuestSpec) proxmox.GuestKind {
	if sp.Type == "qemu" {
		return proxmox.QEMU
	}
	return proxmox.LXC
}
