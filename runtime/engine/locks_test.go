package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestGuestLocksSerializeInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g GuestLocks
		ctx := context.WithValue(context.Background(), runIDKey{}, "r1")
		unlock, err := g.LockGuest(ctx, 101)
		if err != nil {
			t.Fatal(err)
		}
		// Another guest is independent.
		other, err := g.LockGuest(context.Background(), 102)
		if err != nil {
			t.Fatal(err)
		}
		other()

		order := make(chan int, 3)
		for i := range 3 {
			go func() {
				u, err := g.LockGuest(context.Background(), 101)
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				time.Sleep(time.Second) // hold it for a while of fake time
				u()
			}()
			synctest.Wait() // waiter i is queued before waiter i+1 arrives
		}
		unlock()
		unlock() // a second unlock is harmless
		for want := range 3 {
			if got := <-order; got != want {
				t.Errorf("waiter %d got the lock in turn %d", got, want)
			}
		}
		time.Sleep(time.Second) // the last holder's turn ends
		synctest.Wait()
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.guests) != g.idle {
			t.Errorf("%d guest entries after every unlock, %d of them idle; want all idle", len(g.guests), g.idle)
		}
		for vmid, l := range g.guests {
			if l.refs != 0 || l.holder != "" || len(l.held) != 0 {
				t.Errorf("guest %d's idle entry: %d refs, holder %q, %d in its slot; want none", vmid, l.refs, l.holder, len(l.held))
			}
		}
	})
}

func TestGuestLocksBoundedWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tests := []struct {
			name    string
			maxWait time.Duration
			ctx     func() (context.Context, context.CancelFunc)
			wantErr string
			is      error
			took    time.Duration
		}{
			{"caller's deadline", 0, func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Minute)
			}, "waiting for guest 101 (held by run holder): context deadline exceeded", context.DeadlineExceeded, time.Minute},
			{"max wait", 30 * time.Second, func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			}, "waiting for guest 101 (held by run holder): guest is locked by another run (waited 30s)", ErrGuestBusy, 30 * time.Second},
			{"refuse at once", -1, func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			}, "waiting for guest 101 (held by run holder): guest is locked by another run", ErrGuestBusy, 0},
		}
		for _, tt := range tests {
			g := &GuestLocks{MaxWait: tt.maxWait}
			unlock, err := g.LockGuest(context.WithValue(context.Background(), runIDKey{}, "holder"), 101)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx()
			start := time.Now()
			_, err = g.LockGuest(ctx, 101)
			cancel()
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, tt.is) {
				t.Errorf("%s: LockGuest = %v; want %q wrapping %v", tt.name, err, tt.wantErr, tt.is)
			}
			if took := time.Since(start); took != tt.took {
				t.Errorf("%s: waited %s; want %s", tt.name, took, tt.took)
			}
			unlock()
			// The failed waiter left nothing behind: the guest is free.
			u, err := g.LockGuest(context.Background(), 101)
			if err != nil {
				t.Errorf("%s: guest not free after unlock: %v", tt.name, err)
			} else {
				u()
			}
		}
	})
}

func TestGuestLocksCancelledWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g GuestLocks
		unlock, _ := g.LockGuest(context.Background(), 7)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			_, err := g.LockGuest(ctx, 7)
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "waiting for guest 7: ") {
			t.Errorf("cancelled waiter = %v", err)
		}
		unlock()
	})
}

// TestGuestLocksIdleEntries: a released guest keeps its entry for the
// next lock, at most maxIdleLocks of them; an idle entry locked again is
// held (a second lock waits), and one released twice is released once.
func TestGuestLocksIdleEntries(t *testing.T) {
	var g GuestLocks
	ctx := context.Background()
	for vmid := range 2 * maxIdleLocks {
		unlock, err := g.LockGuest(ctx, vmid)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		unlock()
	}
	if len(g.guests) != maxIdleLocks || g.idle != maxIdleLocks {
		t.Fatalf("after %d guests locked and released: %d entries, %d idle; want %d and %d", 2*maxIdleLocks, len(g.guests), g.idle, maxIdleLocks, maxIdleLocks)
	}
	l := g.guests[0]
	unlock, err := g.LockGuest(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if g.guests[0] != l || g.idle != maxIdleLocks-1 || l.refs != 1 {
		t.Errorf("guest 0 locked again: same entry %v, %d idle, %d refs; want the same entry, %d idle, 1 ref", g.guests[0] == l, g.idle, l.refs, maxIdleLocks-1)
	}
	g.MaxWait = -1
	if _, err := g.LockGuest(ctx, 0); !errors.Is(err, ErrGuestBusy) {
		t.Errorf("second lock of a held idle entry = %v; want ErrGuestBusy", err)
	}
	unlock()
	if g.idle != maxIdleLocks || len(g.guests) != maxIdleLocks {
		t.Errorf("after release: %d entries, %d idle; want %d each", len(g.guests), g.idle, maxIdleLocks)
	}
}
