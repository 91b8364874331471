package proxmox

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGuestKindsListingShared: lookups arriving while a listing is in
// flight wait for it instead of sending their own; a fresh one always
// sends its own; a waiter whose context ends stops waiting; the sender's
// context error is not handed to a waiter whose context is fine.
func TestGuestKindsListingShared(t *testing.T) {
	var k GuestKinds
	release := make(chan struct{})
	var fetches atomic.Int32
	want := []Resource{{Type: "qemu", VMID: 200, Node: "pve"}, {Type: "lxc", VMID: 101, Node: "pve2"}}
	slow := func(context.Context) ([]Resource, error) {
		fetches.Add(1)
		<-release
		return want, nil
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if rs, err := k.Listing(t.Context(), false, slow); err != nil || len(rs) != 2 {
			t.Errorf("sender: %v %v", rs, err)
		}
	})
	for fetches.Load() == 0 { // wait until the sender is in flight
		runtime.Gosched()
	}
	for range 10 {
		wg.Go(func() {
			if rs, err := k.Listing(t.Context(), false, slow); err != nil || len(rs) != 2 {
				t.Errorf("waiter: %v %v", rs, err)
			}
		})
	}
	for joined := 0; joined < 10; { // wait until every waiter waits
		runtime.Gosched()
		k.mu.Lock()
		joined = k.joined
		k.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := k.Listing(ctx, false, slow); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled waiter got %v, want context.Canceled", err)
	}
	if rs, err := k.Listing(t.Context(), true, func(context.Context) ([]Resource, error) { fetches.Add(1); return want[:1], nil }); err != nil || len(rs) != 1 {
		t.Errorf("fresh listing = %v %v, want its own", rs, err)
	}
	close(release)
	wg.Wait()
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (one shared, one fresh)", n)
	}

	// The sender's cancellation: a waiter with a live context lists itself.
	k = GuestKinds{}
	started, stop := make(chan struct{}), make(chan struct{})
	sctx, scancel := context.WithCancel(t.Context())
	wg.Go(func() {
		_, _ = k.Listing(sctx, false, func(ctx context.Context) ([]Resource, error) {
			close(started)
			<-stop
			return nil, context.Canceled
		})
	})
	<-started
	var got []Resource
	var gerr error
	var w sync.WaitGroup
	w.Go(func() {
		got, gerr = k.Listing(t.Context(), false, func(context.Context) ([]Resource, error) { return want, nil })
	})
	scancel()
	close(stop)
	w.Wait()
	wg.Wait()
	if gerr != nil || len(got) != 2 {
		t.Errorf("waiter after the sender's cancel = %v %v, want its own listing", got, gerr)
	}

	// Learning keeps only the node's guests; Forget drops one.
	k.LearnResources("pve", want)
	if kind, ok := k.Get(200); !ok || kind != QEMU {
		t.Errorf("Get(200) = %q %v", kind, ok)
	}
	if _, ok := k.Get(101); ok {
		t.Error("a guest of another node was remembered")
	}
	k.Forget(200)
	if _, ok := k.Get(200); ok {
		t.Error("Forget(200) kept it")
	}
}
