package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkCreateRuns measures durable trigger acceptance: one hub
// trigger with one run per op, each committed with an fsync before the
// call returns (what a 202 costs).
func BenchmarkCreateRuns(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	params := []byte(`{"storage":"usb-backup","only":[101,102,103]}`)
	i := 0
	for b.Loop() {
		i++
		if _, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: fmt.Sprint("k-", i)},
			[]NewRun{{Playbook: "backup", Params: params}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "triggers/s")
}

// BenchmarkCreateRunsParallel is the same with concurrent callers: the
// single writer serialises them, so this shows the store's ceiling.
func BenchmarkCreateRunsParallel(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub}, []NewRun{{Playbook: "backup"}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "triggers/s")
}

// BenchmarkAppendLog measures durable log appends by batch size: one
// commit per call, so batching is what makes a chatty run cheap.
func BenchmarkAppendLog(b *testing.B) {
	for _, batch := range []int{1, 10, 100} {
		b.Run(fmt.Sprint("batch=", batch), func(b *testing.B) {
			ctx := context.Background()
			s := newStore(b)
			id := create(b, s, "backup", t0).ID
			lines := make([]LogLine, batch)
			for i := range lines {
				lines[i] = LogLine{Level: "INFO", Msg: "backed up", Attrs: []byte(`{"vmid":101,"took":"12s"}`)}
			}
			calls := 0
			for b.Loop() {
				calls++
				if err := s.AppendLog(ctx, id, lines...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(calls*batch)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkAppendLogRuns is many runs logging at once, each appending its
// own small batches (what 1,000 concurrent runs' log sinks do): the group
// commit writes the batches of all runs waiting in one transaction.
func BenchmarkAppendLogRuns(b *testing.B) {
	const runs, batch = 64, 4
	ctx := context.Background()
	s := newStore(b)
	ids := make([]string, runs)
	for i := range ids {
		ids[i] = create(b, s, fmt.Sprint("p", i), t0).ID
	}
	lines := make([]LogLine, batch)
	for i := range lines {
		lines[i] = LogLine{Level: "INFO", Msg: "backed up", Attrs: []byte(`{"vmid":101,"took":"12s"}`)}
	}
	var next atomic.Int64
	b.SetParallelism(runs / 2) // GOMAXPROCS × this many callers
	b.RunParallel(func(pb *testing.PB) {
		id := ids[int(next.Add(1)-1)%runs]
		for pb.Next() {
			if err := s.AppendLog(ctx, id, lines...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "lines/s")
}
