package builtins

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// BenchmarkWaitProgress measures, in fake time, what following a task's
// log costs the host: log reads and status polls per task for one
// followed wait on a task of each duration (and for one nobody follows:
// no read), and, for 100 followed waits at once sharing the process's
// budget (one read per 200ms), the log reads per second of all of them
// together.
//
//	go test -run '^$' -bench BenchmarkWaitProgress -benchtime 1x ./builtins/
func BenchmarkWaitProgress(b *testing.B) {
	for _, who := range []struct {
		name string
		f    Followers
	}{{"followed", Followed}, {"nobody", nil}} {
		for _, d := range []time.Duration{5 * time.Second, time.Minute, 10 * time.Minute, time.Hour} {
			b.Run(fmt.Sprintf("lone/%s/%s", who.name, d), func(b *testing.B) {
				for range b.N {
					synctest.Test(&testing.T{}, func(t *testing.T) {
						_, env, paths := pipeRigPaths(t, d, logtest.New())
						env.Progress.Followers = who.f
						if _, err := runStar(t, env, `proxmox.vzdump(101, storage = "usb-backup")`); err != nil {
							b.Fatal(err)
						}
						b.ReportMetric(float64(logReads(paths)), "log-reads/task")
						b.ReportMetric(float64(countPaths(paths.Paths(), "/status")), "polls/task")
					})
				}
			})
		}
	}
	b.Run("100-at-once/10m", func(b *testing.B) {
		for range b.N {
			synctest.Test(&testing.T{}, func(t *testing.T) {
				sim, env, paths := pipeRigPaths(t, 10*time.Minute, logtest.New())
				for i := range 100 {
					if err := sim.AddGuest(pvesim.GuestSpec{VMID: 1000 + i, Running: true}); err != nil {
						b.Fatal(err)
					}
				}
				env.Progress.Budget = NewReadBudget(200 * time.Millisecond)
				env.Progress.Followers = Followed
				start := time.Now()
				var wg sync.WaitGroup
				for i := range 100 {
					wg.Go(func() {
						e := *env
						if _, err := runStar(t, &e, fmt.Sprintf(`proxmox.snapshot(%d, "bench")`, 1000+i)); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(logReads(paths))/time.Since(start).Seconds(), "log-reads/s")
			})
		}
	})
}

func logReads(p *pathLog) int { return countPaths(p.Paths(), "/log") }
