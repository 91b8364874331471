package agent

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Benchmarks of the journal, one at a time:
//
//	go test -run XXX -bench BenchmarkJournalCost -benchtime 3x ./runtime/agent
//	go test -run XXX -bench BenchmarkResume1000 -benchtime 10x ./runtime/agent
//
// BenchmarkJournalCost runs the snapshot → rollback → delete flow (three
// mutations, each waited for, plus the reads they make) on the simulator
// with and without the run's journal on the run store (synchronous=FULL),
// and reports the ratio of wall times and the cost per journaled call.

// journalRun runs pb once as run id of the agent's store, with the
// store-backed journal (journal true) or none, and returns its wall time
// and how many calls it journaled.
func journalRun(b *testing.B, ta *testAgent, pb *engine.Playbook, journal bool, entries []store.JournalEntry) (time.Duration, int, string) {
	b.Helper()
	ctx := context.Background()
	runs, _, err := ta.store.CreateRuns(ctx, store.Trigger{Source: store.SourceAPI}, []store.NewRun{{Playbook: pb.Name}})
	if err != nil {
		b.Fatal(err)
	}
	id := runs[0].ID
	if err := ta.store.MarkStarted(ctx, id, pb.Version, "", time.Time{}); err != nil {
		b.Fatal(err)
	}
	opts := engine.RunOptions{ID: id, Logger: slog.New(slog.DiscardHandler)}
	var j *runJournal
	if journal {
		j = newRunJournal(ta.Agent, id, entries, false)
		opts.Journal = j
	}
	start := time.Now()
	res := ta.engine.Run(ctx, pb, nil, opts)
	if j != nil {
		if err := j.flush(); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	if res.Status != runstate.Succeeded {
		b.Fatalf("run: %s %s", res.Status, res.Error)
	}
	n := 0
	if j != nil {
		n = len(j.entries)
	}
	return took, n, id
}

func BenchmarkJournalCost(b *testing.B) {
	for _, d := range []time.Duration{200 * time.Millisecond, 0} {
		b.Run(fmt.Sprintf("task=%s", d), func(b *testing.B) {
			sim := pvesim.New()
			sim.TaskDuration = d
			ta := newSimHost(b, sim).agent(map[string]string{"snap.star": agentPlaybook("snap", `    proxmox.snapshot(101, "bench")
    proxmox.rollback(101, "bench")
    proxmox.delete_snapshot(101, "bench")`, "")}, noListen)
			pb := ta.registry.Get("snap")
			var with, without time.Duration
			calls := 0
			b.ResetTimer()
			for range b.N {
				t, _, _ := journalRun(b, ta, pb, false, nil)
				without += t
				t, n, _ := journalRun(b, ta, pb, true, nil)
				with += t
				calls += n
			}
			b.ReportMetric(float64(with)/float64(without), "with/without")
			b.ReportMetric(float64(with-without)/float64(calls)/float64(time.Microsecond), "µs/journaled-call")
			b.ReportMetric(float64(calls)/float64(b.N), "journaled-calls/run")
		})
	}
}

// BenchmarkResume1000 is the replay of a run whose journal holds 1,000
// entries: the time from the resume's start to the run's end, every call
// answered from the journal.
func BenchmarkResume1000(b *testing.B) {
	sim := pvesim.New()
	ta := newSimHost(b, sim).agent(map[string]string{"reads.star": agentPlaybook("reads", `    for i in range(1000):
        proxmox.guest(101)`, "")}, noListen)
	pb := ta.registry.Get("reads")
	_, n, id := journalRun(b, ta, pb, true, nil)
	entries, err := ta.store.Journal(context.Background(), id)
	if err != nil || len(entries) != 1000 || n != 1000 {
		b.Fatalf("journal of the live run: %d entries (%d calls), %v; want 1000", len(entries), n, err)
	}
	before := sim.Requests()
	b.ResetTimer()
	var total time.Duration
	for range b.N {
		loaded, err := ta.store.Journal(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		ctx := context.Background()
		j := newRunJournal(ta.Agent, id, loaded, false)
		res := ta.engine.Run(ctx, pb, nil, engine.RunOptions{ID: id, Logger: slog.New(slog.DiscardHandler), Journal: j})
		if res.Status != runstate.Succeeded {
			b.Fatalf("replay: %s %s", res.Status, res.Error)
		}
		total += time.Since(start)
	}
	if after := sim.Requests(); after != before {
		b.Fatalf("the replay made %d requests; want none", after-before)
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(time.Millisecond), "ms/resume")
}
