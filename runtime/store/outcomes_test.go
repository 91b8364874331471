package store

import (
	"context"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	finish := func(playbook string, status runstate.Status, at time.Time) {
		r := create(t, s, playbook, at)
		if err := s.Finish(ctx, r.ID, FinishInfo{Status: status, Error: "x", At: at.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	finish("backup", runstate.Succeeded, t0)
	finish("backup", runstate.Failed, t0.Add(time.Hour))
	finish("monitor", runstate.Succeeded, t0)
	finish("restore", runstate.TimedOut, t0)
	create(t, s, "queued-only", t0)

	got, err := s.Outcomes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Outcome{
		{Playbook: "backup", Status: runstate.Failed, Ended: t0.Add(time.Hour + time.Minute), LastSuccess: t0.Add(time.Minute)},
		{Playbook: "monitor", Status: runstate.Succeeded, Ended: t0.Add(time.Minute), LastSuccess: t0.Add(time.Minute)},
		{Playbook: "restore", Status: runstate.TimedOut, Ended: t0.Add(time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("Outcomes = %+v; want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Playbook != w.Playbook || g.Status != w.Status || !g.Ended.Equal(w.Ended) || !g.LastSuccess.Equal(w.LastSuccess) {
			t.Errorf("Outcomes[%d] = %+v; want %+v", i, g, w)
		}
	}
}
