package agent

import (
	"context"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// Who follows a run's log live, which decides whether its task waits read
// the tasks' logs (builtins.ProgressOptions.Followers): a run nobody
// follows makes no log request. A follower is
//   - a follow stream of the local API (`felhom-agent run` through the
//     agent, `runs follow`), for as long as it is open;
//   - a guest asking for its backup's phase, and the hub reading a run it
//     started (GET /v1/runs/{id}, which carries the log's tail): each
//     such read follows the run for followLease, the reader's next poll
//     renewing it.
//
// Every new follower and every read asks for news: the task's log is read
// at the wait's next poll, not only at its own pace.

// followLease is how long one read by a guest or the hub follows a run.
const followLease = 30 * time.Second

// follows is a live run's followers. The zero value is nobody.
type follows struct {
	streams atomic.Int32 // open follow streams
	until   atomic.Int64 // Unix nanoseconds the last lease runs to
	asks    atomic.Uint64
}

// now is 0 when nobody follows, else a number each ask changes.
func (f *follows) now() uint64 {
	if f.streams.Load() == 0 && time.Now().UnixNano() >= f.until.Load() {
		return 0
	}
	return f.asks.Load() + 1
}

// lease follows the run for d from now.
func (f *follows) lease(d time.Duration) {
	f.until.Store(time.Now().Add(d).UnixNano())
	f.asks.Add(1)
}

// stream follows the run until done is called (once).
func (f *follows) stream() (done func()) {
	f.streams.Add(1)
	f.asks.Add(1)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			f.streams.Add(-1)
		}
	}
}

// runFollowers is the agent as every run's builtins.Followers.
type runFollowers struct{ a *Agent }

var _ builtins.Followers = runFollowers{}

func (r runFollowers) Follows(ctx context.Context) uint64 {
	if lr := r.a.liveRun(engine.RunID(ctx)); lr != nil {
		return lr.follows.now()
	}
	return 0
}

// liveRun is run id in flight, or nil.
func (a *Agent) liveRun(id string) *liveRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live[id]
}

// followRead is a guest's or the hub's read of run id: it follows the run
// for followLease, if the run is in flight.
func (a *Agent) followRead(id string) {
	if lr := a.liveRun(id); lr != nil {
		lr.follows.lease(followLease)
	}
}
