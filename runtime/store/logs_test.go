package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func TestLogs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := create(t, s, "backup", t0).ID
	line := func(msg string) LogLine {
		return LogLine{Run: "ignored", Seq: 99, Time: t0.Add(time.Second), Level: "INFO", Msg: msg}
	}
	if err := s.AppendLog(ctx, id, line("one"), line("two"),
		LogLine{Level: "WARN", Msg: "three", Attrs: []byte(`{"vmid":101}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, id); err != nil {
		t.Fatalf("AppendLog with no lines = %v; want a no-op", err)
	}
	// The run's end does not close its log.
	if err := s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(ctx, id, line("four"), line("five")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		id       string
		after    int64
		limit    int
		want     []string
		wantIs   error
		wantText string
	}{
		{name: "all", id: id, want: []string{"1 one", "2 two", "3 three", "4 four", "5 five"}},
		{name: "page", id: id, after: 1, limit: 2, want: []string{"2 two", "3 three"}},
		{name: "follow from the last seen", id: id, after: 3, want: []string{"4 four", "5 five"}},
		{name: "caught up", id: id, after: 5, want: nil},
		{name: "unknown run", id: "r-none", wantIs: ErrNotFound, wantText: "r-none"},
		{name: "negative limit", id: id, limit: -1, wantIs: ErrInvalid, wantText: "limit -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, err := s.Logs(ctx, tt.id, tt.after, tt.limit)
			checkErr(t, "Logs", err, tt.wantIs, tt.wantText)
			var got []string
			for _, l := range lines {
				got = append(got, fmt.Sprint(l.Seq, " ", l.Msg))
				if l.Run != tt.id {
					t.Errorf("line %d Run = %q; want %q", l.Seq, l.Run, tt.id)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Logs(%s, %d, %d) = %q; want %q", tt.id, tt.after, tt.limit, got, tt.want)
			}
		})
	}

	all, err := s.Logs(ctx, id, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l := all[0]; !l.Time.Equal(t0.Add(time.Second)) || l.Level != "INFO" || l.Attrs != nil {
		t.Errorf("line 1 = %+v; want time %v, INFO, no attrs", l, t0.Add(time.Second))
	}
	if l := all[2]; l.Time.IsZero() || l.Level != "WARN" || string(l.Attrs) != `{"vmid":101}` {
		t.Errorf("line 3 = %+v; want a time of now, WARN, attrs {vmid:101}", l)
	}
}

func TestAppendLogRefusals(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := create(t, s, "backup", t0).ID
	checkErr(t, "AppendLog(unknown run)", s.AppendLog(ctx, "r-none", LogLine{Msg: "x"}), ErrNotFound, "r-none")
	// A bad line refuses the whole batch.
	err := s.AppendLog(ctx, id, LogLine{Msg: "fine"}, LogLine{Msg: "bad", Attrs: []byte(`{"a":`)})
	checkErr(t, "AppendLog(bad attrs)", err, ErrInvalid, "lines[1].Attrs is not valid JSON")
	if lines, err := s.Logs(ctx, id, 0, 0); err != nil || len(lines) != 0 {
		t.Errorf("Logs after a refused batch = %d lines, %v; want none", len(lines), err)
	}
	// Numbering continues without a gap after the refusal.
	if err := s.AppendLog(ctx, id, LogLine{Msg: "first"}); err != nil {
		t.Fatal(err)
	}
	if lines, _ := s.Logs(ctx, id, 0, 0); len(lines) != 1 || lines[0].Seq != 1 {
		t.Errorf("Logs = %+v; want one line with Seq 1", lines)
	}
}

func TestAppendLogConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := create(t, s, "a", t0).ID, create(t, s, "b", t0).ID
	const writers, batches, per = 4, 5, 3
	var wg sync.WaitGroup
	for w := range writers {
		for _, id := range []string{a, b} {
			wg.Go(func() {
				for i := range batches {
					batch := make([]LogLine, per)
					for j := range batch {
						batch[j] = LogLine{Msg: fmt.Sprintf("w%d b%d l%d", w, i, j)}
					}
					if err := s.AppendLog(ctx, id, batch...); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, id := range []string{a, b} {
		lines, err := s.Logs(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != writers*batches*per {
			t.Fatalf("run %s has %d lines; want %d", id, len(lines), writers*batches*per)
		}
		for i, l := range lines {
			if l.Seq != int64(i+1) {
				t.Fatalf("line %d has Seq %d; want gapless numbering", i, l.Seq)
			}
			// A batch stays together, in order.
			if i%per != 0 && l.Msg[:len(l.Msg)-1] != lines[i-1].Msg[:len(l.Msg)-1] {
				t.Errorf("line %d %q does not follow %q of its batch", l.Seq, l.Msg, lines[i-1].Msg)
			}
		}
	}
}

func TestLogTail(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := create(t, s, "backup", t0).ID
	empty := create(t, s, "backup", t0).ID
	var lines []LogLine
	for i := 1; i <= 7; i++ {
		lines = append(lines, LogLine{Level: "INFO", Msg: fmt.Sprint("line ", i)})
	}
	if err := s.AppendLog(ctx, id, lines...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		n    int
		want []int64 // Seqs
	}{
		{id, 3, []int64{5, 6, 7}},
		{id, 7, []int64{1, 2, 3, 4, 5, 6, 7}},
		{id, 100, []int64{1, 2, 3, 4, 5, 6, 7}},
		{id, 1, []int64{7}},
		{id, 0, nil},
		{id, -1, nil},
		{empty, 5, nil},
	}
	for _, tt := range tests {
		got, err := s.LogTail(ctx, tt.id, tt.n)
		if err != nil {
			t.Fatalf("LogTail(%s, %d): %v", tt.id, tt.n, err)
		}
		var seqs []int64
		for _, l := range got {
			seqs = append(seqs, l.Seq)
		}
		if !slices.Equal(seqs, tt.want) {
			t.Errorf("LogTail(%s, %d) = seqs %v; want %v", tt.id, tt.n, seqs, tt.want)
		}
	}
	if _, err := s.LogTail(ctx, "r-nope", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("LogTail of an unknown run = %v; want ErrNotFound", err)
	}
}

// TestAppendLogGroupCommit: appends of many runs that arrive while a
// commit is in progress are committed together, in one transaction; each
// call returns once its lines are durable; one call for an unknown run
// fails alone and the others' lines are kept.
func TestAppendLogGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const runs = 20
	ids := make([]string, runs)
	for i := range ids {
		ids[i] = create(t, s, fmt.Sprint("p", i), t0).ID
	}
	// The first leader waits until every other call is queued behind it.
	var once sync.Once
	s.logs.beforeBatch = func() {
		once.Do(func() {
			for {
				s.logs.mu.Lock()
				n := len(s.logs.queue)
				s.logs.mu.Unlock()
				if n == runs+1 { // its own call, the others and the unknown run's
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	before := s.logs.commits.Load()
	errs := make([]error, runs+1)
	var wg sync.WaitGroup
	for i := range runs + 1 {
		wg.Go(func() {
			id := "r-unknown"
			if i < runs {
				id = ids[i]
			}
			errs[i] = s.AppendLog(ctx, id, LogLine{Msg: "one"}, LogLine{Msg: "two"})
		})
	}
	wg.Wait()
	if n := s.logs.commits.Load() - before; n > 2 {
		t.Errorf("%d appends took %d commits; want them grouped into at most 2", runs+1, n)
	}
	if !errors.Is(errs[runs], ErrNotFound) {
		t.Errorf("append to an unknown run = %v; want ErrNotFound", errs[runs])
	}
	for i, id := range ids {
		if errs[i] != nil {
			t.Errorf("append to run %s = %v; want it committed beside the unknown run's failure", id, errs[i])
		}
		lines, err := s.Logs(ctx, id, 0, 0)
		if err != nil || len(lines) != 2 || lines[0].Msg != "one" || lines[1].Seq != 2 {
			t.Errorf("run %s log = %+v, %v; want its two lines, numbered 1 and 2", id, lines, err)
		}
	}
	s.logs.mu.Lock()
	idle := !s.logs.committing && len(s.logs.queue) == 0
	s.logs.mu.Unlock()
	if !idle {
		t.Error("no call is waiting, yet the group commit still has a leader or a queue")
	}
}

// TestAppendLogAfterClose: a commit that fails fails its calls, and the
// next call leads a commit of its own.
func TestAppendLogAfterClose(t *testing.T) {
	s := newStore(t)
	id := create(t, s, "p", t0).ID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendLog(context.Background(), id, LogLine{Msg: "late"}); err == nil {
		t.Error("AppendLog on a closed store succeeded")
	}
	if err := s.AppendLog(context.Background(), id, LogLine{Msg: "later"}); err == nil {
		t.Error("a second AppendLog on a closed store succeeded (the group commit must not stay stuck)")
	}
}
