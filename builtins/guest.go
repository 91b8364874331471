package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"
)

// GuestTable is the guest module: what a playbook does for a guest's
// access to the guest API (runtime/guestapi, docs/guest-api.md). Its one
// builtin goes through [Env.Guests], which the daemon implements; the
// token it mints never reaches Starlark.
var GuestTable = &Table{
	Name: "guest",
	Doc:  "A container's access to the guest API: its token and bootstrap file (address, certificate pin, token), attached read-only at /etc/felhom-bootstrap. The token is never a Starlark value.",
	Funcs: []Func{
		{
			Name: "deliver_bootstrap", Journal: Once, Effect: Gated, Destructive: "when the mount point it would attach to holds another volume of a guest the run did not create (attaching would detach it)",
			Sig: `deliver_bootstrap(vmid)`,
			Doc: `Gives container vmid a new guest API token (its old one stops answering), writes its bootstrap file into the agent's state directory and attaches that directory to the container read-only (a fenced root operation) unless it is attached already. ` +
				`Returns a struct with vmid, bootstrap (the file's host path), mount ("mp9", or "" when nothing was attached now) and attached, or None — logging why — when the agent serves no guest API (as under felhom-agent run). Fails for a VM (VMs have no bind mounts for the file) and for a missing guest.`,
			Returns: guestDeliveryShape,
			Fn:      guestDeliver,
		},
		{
			Name: "ensure_bootstrap", Journal: Once, Effect: Gated, Destructive: "when the mount point it would attach to holds another volume of a guest the run did not create (attaching would detach it)",
			Sig: `ensure_bootstrap(vmid)`,
			Doc: `Makes sure container vmid has its bootstrap file, for a rerun on a guest already provisioned: a file that holds the guest's current token is kept with that token (rewritten only when the address, certificate pin, customer or hub it names changed; attached only when it is not); a missing or stale file, or a guest without a token, gets a new token as deliver_bootstrap. ` +
				`Returns the same struct as deliver_bootstrap, changed False when nothing was written, minted or attached, or None when the agent serves no guest API. Fails for a VM, for a missing guest and for a container whose lxc.idmap cannot be read.`,
			Returns: guestDeliveryShape,
			Fn:      guestEnsure,
		},
	},
	Waits: true,
}

var guestDeliveryShape = StructShape("guest delivery", "vmid", "bootstrap", "mount", "attached", "changed")

// GuestDelivery is the daemon's side of guest.deliver_bootstrap.
type GuestDelivery interface {
	// DeliverBootstrap mints guest vmid's token, writes and attaches its
	// bootstrap file, and says where; the token stays with it.
	DeliverBootstrap(ctx context.Context, vmid int) (BootstrapDelivery, error)
	// EnsureBootstrap keeps an intact bootstrap file and its token, and
	// delivers one as DeliverBootstrap otherwise.
	EnsureBootstrap(ctx context.Context, vmid int) (BootstrapDelivery, error)
}

// BootstrapDelivery is where a guest's bootstrap file went.
type BootstrapDelivery struct {
	VMID      int
	Bootstrap string // the file's path on the host
	Mount     string // the mount point that attached it now; "" for none
	Attached  bool
	Changed   bool // something was minted, written or attached now
}

func guestDeliver(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return guestDelivered(thread, b, args, kwargs, GuestDelivery.DeliverBootstrap)
}

func guestEnsure(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	return guestDelivered(thread, b, args, kwargs, GuestDelivery.EnsureBootstrap)
}

func guestDelivered(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple,
	deliver func(GuestDelivery, context.Context, int) (BootstrapDelivery, error)) (starlark.Value, error) {
	var vmid VMID
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "vmid", &vmid); err != nil {
		return nil, err
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if env.Guests == nil {
		env.Logger.Warn("guest."+b.Name()+": this process serves no guest API (guest_api.listen); no token was minted", "vmid", int(vmid))
		return starlark.None, nil
	}
	d, err := deliver(env.Guests, env.Context, int(vmid))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return newStruct(starlark.StringDict{
		"vmid":      starlark.MakeInt(d.VMID),
		"bootstrap": starlark.String(d.Bootstrap),
		"mount":     starlark.String(d.Mount),
		"attached":  starlark.Bool(d.Attached),
		"changed":   starlark.Bool(d.Changed),
	}), nil
}
