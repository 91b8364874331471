package proxmox

import (
	"context"
	"errors"
	"sync"
)

// GuestKinds is a memory of which kind each vmid of one node is, for
// callers that act on a guest by vmid alone (the builtins' proxmox module,
// builtins/kinds.go). It only ever holds kinds that PVE itself answered
// (a guest listing, the cluster's resource index, a restore it accepted),
// and it is a hint, never the truth: its users act on a remembered kind
// and [GuestKinds.Forget] it as soon as PVE answers that no guest of that
// kind has the vmid ([IsNoGuestConfig]). The zero value is empty and
// ready; it is safe for concurrent use.
//
// A [Client] holds one for its node ([Client.Kinds]), shared by every run
// of the process: kinds learnt by one run save the next its lookup.
type GuestKinds struct {
	mu     sync.Mutex
	m      map[int]GuestKind
	flight *resourceFlight // the cluster listing in flight, shared by lookups
	joined int             // lookups that waited for another's listing (tests read it)
}

// resourceFlight is one GET /cluster/resources?type=vm that several
// lookups wait for.
type resourceFlight struct {
	done chan struct{}
	rs   []Resource
	err  error
}

// Get is the remembered kind of vmid.
func (k *GuestKinds) Get(vmid int) (GuestKind, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kind, ok := k.m[vmid]
	return kind, ok
}

// Set remembers that vmid is a guest of kind (ignored unless kind is
// valid).
func (k *GuestKinds) Set(vmid int, kind GuestKind) {
	if !kind.Valid() {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[int]GuestKind)
	}
	k.m[vmid] = kind
}

// Forget drops what is remembered of vmid.
func (k *GuestKinds) Forget(vmid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, vmid)
}

// Learn remembers the kinds of a guest listing of the node.
func (k *GuestKinds) Learn(gs []Guest) {
	for _, g := range gs {
		k.Set(g.VMID, g.Type)
	}
}

// LearnResources remembers the kinds of the guests of node in a listing
// of the cluster's resources; guests of other nodes are not remembered.
func (k *GuestKinds) LearnResources(node string, rs []Resource) {
	for _, r := range rs {
		if r.Node == node {
			k.Set(r.VMID, GuestKind(r.Type))
		}
	}
}

// Listing is the cluster's guests as fetch lists them (GET
// /cluster/resources?type=vm). Callers that arrive while a listing is in
// flight wait for it rather than sending their own, so a thousand runs
// starting at once cost one request, unless fresh is set: then the
// listing is one begun by this call (an answer that must postdate what
// the caller just learnt from PVE). A waiter whose ctx ends stops
// waiting with ctx's error; the one sending the request sends it with its
// own ctx, and a waiter that gets the sender's context error tries once
// with its own.
func (k *GuestKinds) Listing(ctx context.Context, fresh bool, fetch func(context.Context) ([]Resource, error)) ([]Resource, error) {
	if fresh {
		return fetch(ctx)
	}
	k.mu.Lock()
	f := k.flight
	if f == nil {
		f = &resourceFlight{done: make(chan struct{})}
		k.flight = f
		k.mu.Unlock()
		f.rs, f.err = fetch(ctx)
		k.mu.Lock()
		k.flight = nil
		k.mu.Unlock()
		close(f.done)
		return f.rs, f.err
	}
	k.joined++
	k.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
		return fetch(ctx)
	}
	return f.rs, f.err
}

// Kinds is the client's memory of its node's guest kinds, shared by
// everyone using the client (see [GuestKinds]).
func (c *Client) Kinds() *GuestKinds { return c.kinds }
