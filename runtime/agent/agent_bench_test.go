package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Benchmarks of the daemon. Run them one at a time, for example:
//
//	go test -run XXX -bench BenchmarkReloadLatency -benchtime 100x ./runtime
//	go test -run XXX -bench BenchmarkTrigger -benchtime 500x ./runtime
//	go test -run XXX -bench BenchmarkConcurrentRuns -benchtime 1x -timeout 10m ./runtime
//
// Latencies are reported as custom metrics (p50-ms, p99-ms); the ns/op
// figure of these benchmarks is wall time per edit, trigger or run batch.

// percentile returns the p-th percentile (0..1) of ds, sorting them.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

func reportLatency(b *testing.B, prefix string, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 0.5))/float64(time.Millisecond), prefix+"p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.99))/float64(time.Millisecond), prefix+"p99-ms")
}

// BenchmarkReloadLatency measures save-to-active: from the start of an
// editor-style save (write a temporary file, rename it over the playbook)
// to the moment the new version serves, debounce included.
func BenchmarkReloadLatency(b *testing.B) {
	for _, debounce := range []time.Duration{DefaultDebounce, 100 * time.Millisecond} { // today's default, and the old one
		b.Run(fmt.Sprintf("debounce=%s", debounce), func(b *testing.B) {
			src := func(i int) string {
				return "load(\"lib/words.star\", \"greeting\")\n\n" +
					agentPlaybook("hello", fmt.Sprintf("    return greeting() + %q", fmt.Sprint(i)), `schedule = "TZ=UTC 0 3 * * *", triggers = ["hello"]`)
			}
			ta := startAgent(b, map[string]string{
				"hello.star":     src(-1),
				"lib/words.star": "def greeting():\n    return \"hi\"\n",
			}, func(c *Config) { c.Debounce, c.Listen = debounce, "" })
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				saveRenaming(b, ta.dir, "hello.star", src(i))
				ta.waitReload(hasLoaded("hello"))
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportLatency(b, "", lat)
		})
	}
}

// BenchmarkTriggerToStart sends signed hub triggers one after another over
// real HTTP and measures, per trigger, the time from sending it to its
// run being recorded as started; accepted/s counts the 202s per second
// of sending (signature check, parameter coercion and the durable record
// included; the runs execute meanwhile).
func BenchmarkTriggerToStart(b *testing.B) {
	keys, priv := newHubKeys(b)
	ta := startAgent(b, map[string]string{
		"hello.star": agentPlaybook("hello", `    return ctx.params.n`, `triggers = ["hello"], concurrent = True, params = {"n": param.int(default = 0)}`),
	}, func(c *Config) { c.HubKeys = keys; c.Engine.MaxConcurrent = 64 })
	h := &hubClient{t: b, base: "http://" + ta.Addr().String(), keyID: "hub-1", priv: priv}
	sent := make([]time.Time, b.N)
	ids := make([]string, b.N)
	b.ResetTimer()
	begin := time.Now()
	for i := range b.N {
		sent[i] = time.Now()
		code, ans := h.trigger(fmt.Sprintf(`{"id": "bench-%d", "trigger": "hello", "params": {"n": %d}}`, i, i), nil)
		if code != http.StatusAccepted || len(ans.Runs) != 1 {
			b.Fatalf("trigger %d = %d %+v", i, code, ans)
		}
		ids[i] = ans.Runs[0].ID
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "accepted/s")
	if !ta.waitRuns(time.Minute) {
		b.Fatal("runs did not finish")
	}
	lat := make([]time.Duration, b.N)
	for i, id := range ids {
		r, err := ta.store.Get(context.Background(), id)
		if err != nil || r.Status != runstate.Succeeded {
			b.Fatalf("run %s: %+v %v", id, r, err)
		}
		lat[i] = r.Started.Sub(sent[i])
	}
	reportLatency(b, "start-", lat)
}

// BenchmarkTriggerThroughput sends signed triggers from several clients at
// once: accepted/s with signature checks and durable records.
func BenchmarkTriggerThroughput(b *testing.B) {
	keys, priv := newHubKeys(b)
	ta := startAgent(b, map[string]string{
		"hello.star": agentPlaybook("hello", `    return None`, `triggers = ["hello"], concurrent = True`),
	}, func(c *Config) { c.HubKeys = keys; c.Engine.MaxConcurrent = 64 })
	var seq atomic.Int64
	b.SetParallelism(4) // 4 x GOMAXPROCS clients
	b.ResetTimer()
	begin := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		h := &hubClient{t: b, base: "http://" + ta.Addr().String(), keyID: "hub-1", priv: priv}
		for pb.Next() {
			code, _ := h.trigger(fmt.Sprintf(`{"id": "tp-%d", "trigger": "hello"}`, seq.Add(1)), nil)
			if code != http.StatusAccepted {
				b.Errorf("trigger = %d", code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(begin).Seconds(), "accepted/s")
	b.StopTimer()
	ta.waitRuns(time.Minute)
}

// BenchmarkConcurrentRuns1000 starts 1,000 runs at once, each snapshotting
// its own guest of an in-process simulator whose tasks run 5 seconds, and
// reports the peak memory of the process (agent and simulator together),
// the simulator's requests per second while the runs wait, and the wall
// time until every run has been recorded as succeeded.
func BenchmarkConcurrentRuns1000(b *testing.B) {
	const runs, taskTime = 1000, 5 * time.Second
	sim := pvesim.New()
	sim.TaskDuration = taskTime
	for i := range runs {
		if err := sim.AddGuest(pvesim.GuestSpec{VMID: 1000 + i}); err != nil {
			b.Fatal(err)
		}
	}
	ta := newSimHost(b, sim).agent(map[string]string{
		"snap.star": agentPlaybook("snap", `    t = proxmox.snapshot(ctx.params.vmid, "bench%d" % ctx.params.round)
    return t.exitstatus`, `concurrent = True, params = {"vmid": param.int(), "round": param.int()}`),
	}, noListen, func(c *Config) { c.Engine.MaxConcurrent = runs })
	local := localAPI{ta.Agent}
	var peakHeap, peakSys, peakStack uint64
	var peakG int
	for round := range b.N {
		runtime.GC()
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Go(func() {
			var ms runtime.MemStats
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				runtime.ReadMemStats(&ms)
				peakHeap, peakSys, peakStack = max(peakHeap, ms.HeapInuse), max(peakSys, ms.Sys), max(peakStack, ms.StackInuse)
				peakG = max(peakG, runtime.NumGoroutine())
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		})
		reqs0, begin := sim.Requests(), time.Now()
		ids := make([]string, runs)
		var starts sync.WaitGroup
		for i := range runs {
			starts.Go(func() {
				run, err := local.Start(context.Background(), apiRequest("snap", map[string]any{"vmid": 1000 + i, "round": round}))
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = run.ID
			})
		}
		starts.Wait()
		started := time.Since(begin)
		if !ta.waitRuns(5 * time.Minute) {
			b.Fatal("runs did not finish")
		}
		wall := time.Since(begin)
		reqs := sim.Requests() - reqs0
		close(stop)
		sampler.Wait()
		for _, id := range ids {
			if r, err := ta.store.Get(context.Background(), id); err != nil || r.Status != runstate.Succeeded || len(r.Tasks) != 1 || !r.Tasks[0].Done() {
				b.Fatalf("run %s = %+v, %v", id, r, err)
			}
		}
		b.ReportMetric(float64(reqs)/wall.Seconds(), "sim-req/s")
		b.ReportMetric(float64(reqs)/runs, "req/run")
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(started.Seconds(), "all-started-s")
	}
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peakSys)/(1<<20), "peak-sys-MiB")
	b.ReportMetric(float64(peakStack)/(1<<20), "peak-stack-MiB")
	b.ReportMetric(float64(peakG), "peak-goroutines")
}

func apiRequest(playbook string, params map[string]any) api.TriggerRequest {
	req := api.TriggerRequest{Playbook: playbook, Params: map[string]json.RawMessage{}}
	for k, v := range params {
		b, _ := json.Marshal(v)
		req.Params[k] = b
	}
	return req
}
