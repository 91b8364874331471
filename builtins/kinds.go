package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// One guest surface for both kinds. Proxmox VE keeps containers and VMs
// under different paths (/nodes/{node}/lxc, /nodes/{node}/qemu) but gives
// every vmid to exactly one guest (pve-cluster Cluster.pm
// check_vmid_unused), so the proxmox module takes a vmid and acts on
// whichever kind it is:
//
//   - The kind is looked up, never guessed from the number, and what is
//     looked up is remembered process-wide: the client's memory
//     ([proxmox.Client.Kinds], shared by every run) holds only kinds PVE
//     answered. A vmid it does not hold is looked up with one request,
//     GET /cluster/resources?type=vm (pve-manager API2/Cluster.pm
//     resources: the kind of every guest of the cluster and its node,
//     from pmxcfs's vmlist), which concurrent lookups share; its answer
//     about the other guests of the node is remembered too.
//   - A remembered kind is verified by PVE's answer: an operation that
//     PVE answers "Configuration file 'nodes/pve/qemu-server/123.conf'
//     does not exist" ([proxmox.IsNoGuestConfig]: no guest of that kind
//     with that vmid here; such a request started nothing) forgets the
//     kind and looks the guest up once more with a listing of its own. A
//     guest now of the other kind is acted on again as that kind; one on
//     another node of the cluster gets a *proxmox.GuestElsewhereError;
//     otherwise PVE's answer stands.
//   - A vmid that is no guest is asked of PVE as a container, so the
//     answer is PVE's own not-found error ("Configuration file
//     'nodes/pve/lxc/123.conf' does not exist"), which IsNotFound and
//     catch() classify; one on another node is refused naming that node.
//     A read asks it as itself; a mutation looks once more and asks with
//     a status read ([mutationKind]), so nothing is checked, gated or sent
//     for a guest that does not exist.
//   - A restore PVE accepted remembers the kind of its archive;
//     delete_guest forgets it.
//   - Options of one kind are refused for the other with a message naming
//     both ([kindOnly]).
//
// A client that keeps no memory (a test's fake) gets one per run, kept on
// the run's thread ([SetEnv] puts an empty one there).

const kindsKey = "felhom.kinds"

// kindMemory is a client that remembers its node's guest kinds
// (*proxmox.Client does).
type kindMemory interface {
	Kinds() *proxmox.GuestKinds
}

// kindsOf is the memory of guest kinds for api: the client's own, else
// the thread's; a thread without one (a test calling a builtin directly)
// gets a fresh one per call, which only means looking up again.
func kindsOf(thread *starlark.Thread, api any) *proxmox.GuestKinds {
	if km, ok := api.(kindMemory); ok {
		if k := km.Kinds(); k != nil {
			return k
		}
	}
	if k, ok := thread.Local(kindsKey).(*proxmox.GuestKinds); ok {
		return k
	}
	return new(proxmox.GuestKinds)
}

// guestKind is the kind of guest vmid, looked up as described above; found
// is false when the node has no such guest (kind is then LXC).
func guestKind(thread *starlark.Thread, ctx context.Context, api resourceLister, vmid int) (kind proxmox.GuestKind, found bool, err error) {
	kinds := kindsOf(thread, api)
	if kind, ok := kinds.Get(vmid); ok {
		return kind, true, nil
	}
	return lookUp(ctx, kinds, api, vmid, false)
}

// mutationKind is the kind of guest vmid for a mutation, as guestKind
// has it, except for a vmid no node lists: it is looked up afresh (a
// listing shared with other runs may predate the guest), and one still
// unlisted is asked of PVE with a status read, whose answer for a guest
// that does not exist is PVE's own not-found error ("Configuration file
// 'nodes/pve/lxc/123.conf' does not exist"). So a mutation of a guest that
// does not exist is refused with that answer before its options are
// checked against a kind it does not have, before the safety gate asks an
// operator to sign for it, and before anything is sent. The extra requests
// are made only for a vmid that is no guest.
func mutationKind(thread *starlark.Thread, ctx context.Context, api guestReader, vmid int) (proxmox.GuestKind, error) {
	kind, found, err := guestKind(thread, ctx, api, vmid)
	if err != nil || found {
		return kind, err
	}
	if kind, found, err = lookUp(ctx, kindsOf(thread, api), api, vmid, true); err != nil || found {
		return kind, err
	}
	if _, err := api.GuestStatus(ctx, proxmox.LXC, vmid); err != nil {
		return "", fmt.Errorf("no node of the cluster has guest %d: %w", vmid, err)
	}
	return proxmox.LXC, nil // a container that answers, though not listed yet
}

// lookUp lists the cluster's guests (a shared listing unless fresh),
// remembers the kinds of the node's, and answers guest vmid's: found
// false (kind LXC) when no node has it, a *proxmox.GuestElsewhereError
// when another node has it.
func lookUp(ctx context.Context, kinds *proxmox.GuestKinds, api resourceLister, vmid int, fresh bool) (kind proxmox.GuestKind, found bool, err error) {
	rs, err := kinds.Listing(ctx, fresh, func(ctx context.Context) ([]proxmox.Resource, error) {
		return api.ClusterResources(ctx, "vm")
	})
	if err != nil {
		return "", false, fmt.Errorf("look up guest %d: %w", vmid, err)
	}
	here := api.Node()
	kinds.LearnResources(here, rs)
	for _, r := range rs {
		if r.VMID != vmid || !proxmox.GuestKind(r.Type).Valid() {
			continue
		}
		if r.Node != here {
			return "", false, &proxmox.GuestElsewhereError{VMID: vmid, Kind: proxmox.GuestKind(r.Type), Node: r.Node, Here: here}
		}
		return proxmox.GuestKind(r.Type), true, nil
	}
	return proxmox.LXC, false, nil
}

// relook is what follows an operation on guest vmid as kind that failed
// with err. When err is PVE's answer that no guest of that kind has the
// vmid here (or, for a container, that none is running with it, which
// stop and shutdown answer before reading the config), it forgets the
// kind and looks the guest up afresh: again is
// true with the guest's kind when it now is of the other kind (the
// caller acts once more), and replace is a *proxmox.GuestElsewhereError
// (wrapping err) when another node has it. Otherwise err stands (again
// false, replace nil).
func relook(thread *starlark.Thread, ctx context.Context, api resourceLister, vmid int, kind proxmox.GuestKind, err error) (now proxmox.GuestKind, again bool, replace error) {
	stale := proxmox.IsNoGuestConfig(err) || kind == proxmox.LXC && proxmox.IsContainerNotRunning(err)
	if err == nil || !stale || ctx.Err() != nil {
		return kind, false, nil
	}
	kinds := kindsOf(thread, api)
	kinds.Forget(vmid)
	now, found, lerr := lookUp(ctx, kinds, api, vmid, true)
	if ee, ok := lerr.(*proxmox.GuestElsewhereError); ok {
		ee.Err = err // PVE's own answer, for the record
		return kind, false, ee
	}
	if lerr != nil || !found || now == kind {
		return kind, false, nil
	}
	return now, true, nil
}

// resourceLister reads the cluster's resource index: every guest of every
// node, with the node it is on.
type resourceLister interface {
	Node() string
	ClusterResources(ctx context.Context, typ string) ([]proxmox.Resource, error)
}

// locate finds guest vmid in the cluster's resource index.
func locate(ctx context.Context, api resourceLister, vmid int) (proxmox.Resource, bool, error) {
	rs, err := api.ClusterResources(ctx, "vm")
	if err != nil {
		return proxmox.Resource{}, false, fmt.Errorf("locate guest %d in the cluster: %w", vmid, err)
	}
	for _, r := range rs {
		if r.VMID == vmid && proxmox.GuestKind(r.Type).Valid() {
			return r, true, nil
		}
	}
	return proxmox.Resource{}, false, nil
}

// elsewhere is a *proxmox.GuestElsewhereError when guest vmid, which this
// node does not have, is on another node of the cluster (it migrated, or
// it is that node's agent's): flows then say so instead of PVE's bare
// "Configuration file ... does not exist". Nil when no node has it, when
// api cannot read the cluster, or when the cluster cannot be read.
func elsewhere(ctx context.Context, api any, vmid int) error {
	rl, ok := api.(resourceLister)
	if !ok {
		return nil
	}
	r, found, err := locate(ctx, rl, vmid)
	if err != nil || !found || r.Node == rl.Node() {
		return nil
	}
	return &proxmox.GuestElsewhereError{VMID: vmid, Kind: proxmox.GuestKind(r.Type), Node: r.Node, Here: rl.Node()}
}

// kindName is how messages name a kind.
func kindName(k proxmox.GuestKind) string {
	if k == proxmox.QEMU {
		return "a QEMU VM"
	}
	return "an LXC container"
}

// kindOnly is the refusal of an option that only applies to kind want,
// for guest vmid, which is of kind got.
func kindOnly(option string, want proxmox.GuestKind, vmid int, got proxmox.GuestKind) error {
	wantName := "QEMU VMs"
	if want == proxmox.LXC {
		wantName = "LXC containers"
	}
	return fmt.Errorf("%s applies only to %s; guest %d is %s", option, wantName, vmid, kindName(got))
}
