package builtins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// fakeDelivery delivers to every container but 200 (a VM) and 555
// (missing).
type fakeDelivery struct{}

func (fakeDelivery) DeliverBootstrap(_ context.Context, vmid int) (BootstrapDelivery, error) {
	switch vmid {
	case 200:
		return BootstrapDelivery{}, errors.New("guest 200 is a QEMU VM: the guest API serves containers only")
	case 555:
		return BootstrapDelivery{}, errors.New("guest 555 does not exist on this node")
	}
	return BootstrapDelivery{VMID: vmid, Bootstrap: fmt.Sprintf("/var/lib/felhom-agent/guests/%d/bootstrap.json", vmid), Mount: "mp255", Attached: true, Changed: true}, nil
}

// EnsureBootstrap keeps 101's file (nothing changed) and delivers the
// others'.
func (f fakeDelivery) EnsureBootstrap(ctx context.Context, vmid int) (BootstrapDelivery, error) {
	d, err := f.DeliverBootstrap(ctx, vmid)
	d.Changed = vmid != 101
	if !d.Changed {
		d.Mount = ""
	}
	return d, err
}

func TestGuestEnsureBootstrap(t *testing.T) {
	env := &Env{Context: context.Background(), Logger: slog.New(slog.DiscardHandler), Guests: fakeDelivery{}}
	g, err := runStar(t, env, `
a, b = guest.ensure_bootstrap(101), guest.ensure_bootstrap(102)
r = (a.changed, a.mount, b.changed, b.mount)
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := g["r"].String(); got != `(False, "", True, "mp255")` {
		t.Errorf("ensure = %s", got)
	}
	if _, err := runStar(t, env, `guest.ensure_bootstrap(200)`); err == nil || !strings.Contains(err.Error(), "guest.ensure_bootstrap: guest 200 is a QEMU VM") {
		t.Errorf("a VM: %v", err)
	}
	env.Guests = nil
	if g, err := runStar(t, env, `r = guest.ensure_bootstrap(101)`); err != nil || g["r"].String() != "None" {
		t.Errorf("without a guest API: %v, %v; want None", g["r"], err)
	}
}

func TestGuestDeliverBootstrap(t *testing.T) {
	env := &Env{Context: context.Background(), Logger: slog.New(slog.DiscardHandler), Guests: fakeDelivery{}}
	g, err := runStar(t, env, `
d = guest.deliver_bootstrap(101)
r = (d.vmid, d.bootstrap, d.mount, d.attached)
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := g["r"].String(); got != `(101, "/var/lib/felhom-agent/guests/101/bootstrap.json", "mp255", True)` {
		t.Errorf("delivery = %s", got)
	}
	for _, c := range []struct{ src, want string }{
		{`guest.deliver_bootstrap(200)`, "guest.deliver_bootstrap: guest 200 is a QEMU VM"},
		{`guest.deliver_bootstrap(555)`, "guest.deliver_bootstrap: guest 555 does not exist"},
		{`guest.deliver_bootstrap(99)`, "guest.deliver_bootstrap: for parameter vmid"},
		{`guest.deliver_bootstrap()`, "missing argument for vmid"},
	} {
		if _, err := runStar(t, env, c.src); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want %q", c.src, err, c.want)
		}
	}
	// Without a guest API: None, nothing minted.
	env.Guests = nil
	g, err = runStar(t, env, `r = guest.deliver_bootstrap(101)`)
	if err != nil || g["r"].String() != "None" {
		t.Errorf("without a guest API: %v, %v; want None", g["r"], err)
	}
}
