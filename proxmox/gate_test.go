package proxmox_test

import (
	"context"
	"errors"
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
func (g *gateObserver) BeforeMutation(_ context.Context, method, path string) error {
	g.asked = append(g.asked, method+" "+path)
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
	if len(g.asked) != 1 || g.asked[0] != "POST /nodes/node1/vzdump" || len(g.started) != 1 {
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
