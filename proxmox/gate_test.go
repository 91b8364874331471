package proxmox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// gateObserver is an Observer that is also a MutationGate.
type gateObserver struct {
	refuse  error
	asked   []string
	started []proxmox.UPID
}

func (g *gateObserver) Request(proxmox.RequestInfo) {}
func (g *gateObserver) TaskStarted(u proxmox.UPID)  { g.started = append(g.started, u) }
func (g *gateObserver) TaskWaited(proxmox.UPID, time.Duration, proxmox.TaskStatus, error) {
}
func (g *gateObserver) BeforeMutation(_ context.Context, m proxmox.Mutation) error {
	g.asked = append(g.asked, m.Method+" "+m.Path+" storage="+m.Params.Get("storage"))
	return g.refuse
}
func (g *gateObserver) BeforeRoot(_ context.Context, op proxmox.RootOp) error {
	g.asked = append(g.asked, op.Op+" "+strings.Join(op.Argv[:2], " "))
	return g.refuse
}

// TestMutationGate: the gate is asked before every mutation, with its
// method and path; a refusal sends nothing and is ErrNotSent wrapping the
// gate's error, never ErrAmbiguous.
func TestMutationGate(t *testing.T) {
	f := newFake(t).on("POST /nodes/node1/vzdump", serveData(upidVzdump))
	c := fakeClient(t, f)

	g := &gateObserver{}
	ctx := proxmox.WithObserver(context.Background(), g)
	if _, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "usb-backup"}); err != nil {
		t.Fatalf("Vzdump with an approving gate: %v", err)
	}
	if len(g.asked) != 1 || g.asked[0] != "POST /nodes/node1/vzdump storage=usb-backup" || len(g.started) != 1 {
		t.Fatalf("gate asked %v, tasks started %v; want one POST /nodes/node1/vzdump and one task", g.asked, g.started)
	}

	full := errors.New("run store: database or disk is full")
	g = &gateObserver{refuse: full}
	ctx = proxmox.WithObserver(context.Background(), g)
	_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "usb-backup"})
	if !errors.Is(err, proxmox.ErrNotSent) || !errors.Is(err, full) || proxmox.IsAmbiguous(err) {
		t.Fatalf("Vzdump with a refusing gate = %v; want ErrNotSent wrapping the gate's error, not ambiguous", err)
	}
	if n := f.count("POST /nodes/node1/vzdump"); n != 1 {
		t.Errorf("%d vzdump POSTs reached the host; want 1 (the refused one must not be sent)", n)
	}
	if len(g.started) != 0 {
		t.Errorf("a refused mutation reported tasks %v", g.started)
	}
}

// TestRequireGate: a client (and a Privileged) told to require a gate
// sends nothing for a context without one — mutations and task stops
// alike — while reads go on.
func TestRequireGate(t *testing.T) {
	f := newFake(t).on("POST /nodes/node1/vzdump", serveData(upidVzdump))
	c := fakeClient(t, f)
	c.RequireGate()
	_, err := c.Vzdump(context.Background(), proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "usb-backup"})
	if !errors.Is(err, proxmox.ErrNoGate) || !errors.Is(err, proxmox.ErrNotSent) {
		t.Fatalf("Vzdump without a gate = %v; want ErrNoGate", err)
	}
	upid, _ := proxmox.ParseUPID(upidVzdump)
	if err := c.StopTask(context.Background(), upid); !errors.Is(err, proxmox.ErrNoGate) {
		t.Fatalf("StopTask without a gate = %v; want ErrNoGate", err)
	}
	if n := f.count("POST /nodes/node1/vzdump"); n != 0 {
		t.Errorf("%d POSTs reached the host; want 0", n)
	}
	g := &gateObserver{refuse: errors.New("not this run's task")}
	if err := c.StopTask(proxmox.WithObserver(context.Background(), g), upid); !errors.Is(err, proxmox.ErrNotSent) || len(g.asked) != 1 || !strings.HasPrefix(g.asked[0], "DELETE /nodes/pve1/tasks/") {
		t.Errorf("StopTask asked the gate %v", g.asked)
	}

	rec := &recordRunner{}
	p, err := proxmox.NewPrivileged(proxmox.PrivilegedConfig{}, rec)
	if err != nil {
		t.Fatal(err)
	}
	p.RequireGate()
	spec := proxmox.GoldenSpec{VMID: 900, Template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", Hostname: "golden", Storage: "local-lvm"}
	if err := p.CreateGoldenLXC(context.Background(), spec); !errors.Is(err, proxmox.ErrNoGate) {
		t.Fatalf("CreateGoldenLXC without a gate = %v; want ErrNoGate", err)
	}
	g = &gateObserver{refuse: errors.New("destructive")}
	if err := p.CreateGoldenLXC(proxmox.WithObserver(context.Background(), g), spec); !errors.Is(err, proxmox.ErrNotSent) {
		t.Fatalf("CreateGoldenLXC with a refusing gate = %v; want ErrNotSent", err)
	}
	if len(g.asked) != 1 || g.asked[0] != "host.create_golden pct create" {
		t.Errorf("root gate asked %v", g.asked)
	}
	if len(rec.argvs) != 0 {
		t.Errorf("root commands ran: %v", rec.argvs)
	}
}

type recordRunner struct{ argvs [][]string }

func (r *recordRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	r.argvs = append(r.argvs, argv)
	return nil, nil
}
