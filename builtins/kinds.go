package builtins

import (
	"context"
	"fmt"
	"sync"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// One guest surface for both kinds. Proxmox VE keeps containers and VMs
// under different paths (/nodes/{node}/lxc, /nodes/{node}/qemu) but gives
// every vmid to exactly one guest (pve-cluster Cluster.pm
// check_vmid_unused), so the proxmox module takes a vmid and acts on
// whichever kind it is:
//
//   - The kind is looked up, never guessed from the number: the first
//     guest operation of a run lists the node's guests (both kinds) and
//     remembers every kind for the rest of the run; a vmid not seen yet
//     lists them again.
//   - A vmid that is no guest is asked of PVE as a container, so the
//     answer is PVE's own not-found error ("Configuration file
//     'nodes/pve/lxc/123.conf' does not exist"), which IsNotFound and
//     catch() classify.
//   - A restore learns the kind from its archive; delete_guest forgets it.
//   - Options of one kind are refused for the other with a message naming
//     both ([kindOnly]).

// guestKinds is a run's memory of guest kinds, kept on the run's thread
// ([SetEnv] puts an empty one there). Builtins of one run may run on
// several goroutines (monitors), hence the mutex.
type guestKinds struct {
	mu sync.Mutex
	m  map[int]proxmox.GuestKind
}

func (k *guestKinds) get(vmid int) (proxmox.GuestKind, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kind, ok := k.m[vmid]
	return kind, ok
}

func (k *guestKinds) set(vmid int, kind proxmox.GuestKind) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[int]proxmox.GuestKind)
	}
	k.m[vmid] = kind
}

func (k *guestKinds) forget(vmid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, vmid)
}

// learn remembers the kinds of a guest listing.
func (k *guestKinds) learn(gs []proxmox.Guest) {
	for _, g := range gs {
		if g.Type.Valid() {
			k.set(g.VMID, g.Type)
		}
	}
}

const kindsKey = "felhom.kinds"

// kindsOf is the thread's memory of guest kinds; a thread without one
// (a test calling a builtin directly) gets a fresh one per call, which
// only means looking up again.
func kindsOf(thread *starlark.Thread) *guestKinds {
	if k, ok := thread.Local(kindsKey).(*guestKinds); ok {
		return k
	}
	return new(guestKinds)
}

// guestKind is the kind of guest vmid, looked up as described above; found
// is false when the node has no such guest (kind is then LXC).
func guestKind(thread *starlark.Thread, ctx context.Context, api guestLister, vmid int) (kind proxmox.GuestKind, found bool, err error) {
	kinds := kindsOf(thread)
	if kind, ok := kinds.get(vmid); ok {
		return kind, true, nil
	}
	gs, err := api.Guests(ctx)
	if err != nil {
		return "", false, fmt.Errorf("look up guest %d: %w", vmid, err)
	}
	kinds.learn(gs)
	if kind, ok := kinds.get(vmid); ok {
		return kind, true, nil
	}
	if err := elsewhere(ctx, api, vmid); err != nil {
		return "", false, err
	}
	return proxmox.LXC, false, nil
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
