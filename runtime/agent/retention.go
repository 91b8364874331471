package agent

import (
	"context"
	"time"
)

// pruneLoop applies the retention at start and then every PruneInterval
// until ctx ends. The store never deletes a run in flight or one whose
// task is still being followed.
func (a *Agent) pruneLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.PruneInterval)
	defer t.Stop()
	for {
		r := *a.retention.Load()
		n, err := a.store.Prune(ctx, r, time.Time{})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.Error("pruning old runs failed", "err", err)
		case n > 0:
			a.log.Info("pruned old runs", "runs", n, "keep", r.KeepLast, "max_age", r.MaxAge)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
