package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestTimers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	s := openAt(t, path)
	steps := []struct {
		name     string
		mark     time.Time // zero: no mark in this step
		wantLast time.Time
		wantOK   bool
	}{
		{name: "never fired", wantOK: false},
		{name: "first mark", mark: t0, wantLast: t0, wantOK: true},
		{name: "later mark moves it", mark: t0.Add(time.Hour), wantLast: t0.Add(time.Hour), wantOK: true},
		{name: "earlier mark is ignored", mark: t0.Add(time.Minute), wantLast: t0.Add(time.Hour), wantOK: true},
	}
	for _, st := range steps {
		if !st.mark.IsZero() {
			if err := s.TimerMark(ctx, "backup", st.mark); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
		}
		last, ok, err := s.TimerLast(ctx, "backup")
		if err != nil || ok != st.wantOK || !last.Equal(st.wantLast) {
			t.Errorf("%s: TimerLast = %v, %v, %v; want %v, %v", st.name, last, ok, err, st.wantLast, st.wantOK)
		}
	}
	if _, ok, _ := s.TimerLast(ctx, "other"); ok {
		t.Error("TimerLast(other) found a mark; want none: jobs are separate")
	}
	checkErr(t, "TimerMark(empty job)", s.TimerMark(ctx, "", t0), ErrInvalid, "job is empty")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The mark survives a restart: that is what catch-up needs.
	s2 := openAt(t, path)
	if last, ok, err := s2.TimerLast(ctx, "backup"); err != nil || !ok || !last.Equal(t0.Add(time.Hour)) {
		t.Errorf("after reopen TimerLast = %v, %v, %v; want %v", last, ok, err, t0.Add(time.Hour))
	}
}
