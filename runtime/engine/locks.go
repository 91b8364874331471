package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

// ErrGuestBusy is wrapped by [GuestLocks.LockGuest] when MaxWait passes
// while another run holds the guest.
var ErrGuestBusy = errors.New("guest is locked by another run")

// GuestLocks serializes mutations of one guest across concurrent runs: a
// mutating builtin holds the guest's lock for the whole operation,
// including the wait for its Proxmox task. Waiters in this process are
// served in arrival order. The zero value is ready to use, holds locks
// within this process only, and never times out on its own.
type GuestLocks struct {
	// MaxWait bounds how long LockGuest waits for a guest another run
	// holds; the error then wraps ErrGuestBusy. 0 means until the
	// caller's context ends; a negative value means not at all (refuse
	// at once).
	MaxWait time.Duration
	// Dir, when set, makes the locks host-wide: a guest's lock is also
	// flock(LOCK_EX) on Dir/VMID.lock (hostlocks.go), so runs of other
	// processes using the same Dir are excluded too. Dir is created
	// (mode 0770) on first use. "" means this process only.
	Dir string

	mu     sync.Mutex
	guests map[int]*guestLock // held, awaited, and at most maxIdleLocks idle
	idle   int                // entries in guests nobody holds or awaits
}

var _ builtins.GuestLocker = (*GuestLocks)(nil)

type guestLock struct {
	held   chan struct{} // capacity 1: full while a run holds the guest
	refs   int           // holder and waiters; the entry is dropped at 0
	holder string        // run id of the holder, for messages
}

// LockGuest blocks until vmid is free, ctx ends or MaxWait passes. The
// returned unlock releases the guest; calling it more than once is safe.
// The error names the guest and the run holding it, and wraps ctx's error
// or ErrGuestBusy.
func (g *GuestLocks) LockGuest(ctx context.Context, vmid int) (unlock func(), err error) {
	var deadline time.Time
	if g.MaxWait > 0 {
		deadline = time.Now().Add(g.MaxWait)
	}
	local, err := g.lockLocal(ctx, vmid)
	if err != nil || g.Dir == "" {
		return local, err
	}
	host, err := g.lockHost(ctx, vmid, deadline, g.MaxWait < 0)
	if err != nil {
		local()
		return nil, err
	}
	return sync.OnceFunc(func() {
		host()
		local()
	}), nil
}

// lockLocal takes vmid's lock among this process's runs.
func (g *GuestLocks) lockLocal(ctx context.Context, vmid int) (unlock func(), err error) {
	g.mu.Lock()
	if g.guests == nil {
		g.guests = map[int]*guestLock{}
	}
	l := g.guests[vmid]
	switch {
	case l == nil:
		l = &guestLock{held: make(chan struct{}, 1)}
		g.guests[vmid] = l
	case l.refs == 0:
		g.idle--
	}
	l.refs++
	// A free guest is taken in the same section (the send cannot block:
	// it either fills the empty slot or finds it full).
	select {
	case l.held <- struct{}{}:
		l.holder = RunID(ctx)
		g.mu.Unlock()
		return (&localHold{g: g, vmid: vmid, l: l}).unlock, nil
	default:
	}
	g.mu.Unlock()

	if err := g.wait(ctx, l); err != nil {
		g.mu.Lock()
		holder := l.holder
		g.release(vmid, l)
		g.mu.Unlock()
		if holder == "" {
			return nil, fmt.Errorf("waiting for guest %d: %w", vmid, err)
		}
		return nil, fmt.Errorf("waiting for guest %d (held by run %s): %w", vmid, holder, err)
	}
	g.mu.Lock()
	l.holder = RunID(ctx)
	g.mu.Unlock()
	return (&localHold{g: g, vmid: vmid, l: l}).unlock, nil
}

// localHold is one hold of a guest's local lock; its unlock releases it
// once, however often it is called (a later call must not release the
// lock a later holder took).
type localHold struct {
	g    *GuestLocks
	vmid int
	l    *guestLock
	done atomic.Bool
}

func (h *localHold) unlock() {
	if h.done.Swap(true) {
		return
	}
	g, l := h.g, h.l
	g.mu.Lock()
	defer g.mu.Unlock()
	l.holder = ""
	// The slot is full (this hold fills it), so the receive does not
	// block; a waiter blocked sending fills it again at once.
	<-l.held
	g.release(h.vmid, l)
}

// maxIdleLocks bounds the guests' lock entries kept while nobody holds or
// awaits them: a guest locked again, the usual run, finds its entry in the
// map as it left it, without making one and its channel or changing the
// map (BenchmarkFlowInterleaved). Beyond the bound an entry going idle is
// dropped, so a host of many guests keeps at most this many idle.
const maxIdleLocks = 64

// wait takes the lock l, which another run holds, within the limits.
func (g *GuestLocks) wait(ctx context.Context, l *guestLock) error {
	if g.MaxWait < 0 {
		return ErrGuestBusy
	}
	var expired <-chan time.Time
	if g.MaxWait > 0 {
		t := time.NewTimer(g.MaxWait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case l.held <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return fmt.Errorf("%w (waited %s)", ErrGuestBusy, g.MaxWait)
	}
}

// release drops a holder's or waiter's reference to l, with g.mu held.
func (g *GuestLocks) release(vmid int, l *guestLock) {
	if l.refs--; l.refs == 0 {
		// No holder and no waiter: held is empty, the entry as new.
		if g.idle < maxIdleLocks {
			g.idle++
			return
		}
		delete(g.guests, vmid)
	}
}
