package agent

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestFollows: a run is followed while a stream is open and for
// followLease after each guest's or hub's read; each new follower and
// each read changes the answer, so the wait reads at its next poll.
func TestFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f follows
		if f.now() != 0 {
			t.Fatal("a run nobody follows is followed")
		}
		f.lease(followLease)
		first := f.now()
		if first == 0 {
			t.Fatal("a read does not follow the run")
		}
		time.Sleep(followLease / 2)
		f.lease(followLease)
		if again := f.now(); again == 0 || again == first {
			t.Errorf("a second read: %d after %d; want followed, and news", again, first)
		}
		time.Sleep(followLease)
		if f.now() != 0 {
			t.Errorf("followed %v after the last read; want not after %v", followLease, followLease)
		}
		done := f.stream()
		time.Sleep(time.Hour)
		if f.now() == 0 {
			t.Error("an open stream does not follow the run")
		}
		done()
		done() // once
		if f.now() != 0 || f.streams.Load() != 0 {
			t.Errorf("followed after its only stream closed (streams %d)", f.streams.Load())
		}
	})
}
