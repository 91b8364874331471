package store

import (
	"context"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func TestGuestIndex(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC) // shadows the package t0 on purpose
	events := []GuestEvent{
		{VMID: 101, Kind: GuestBackup, At: t0, OK: true, Run: "r-1", Detail: "ok 1"},
		{VMID: 101, Kind: GuestBackup, At: t0.Add(24 * time.Hour), OK: false, Run: "r-2", Detail: "failed"},
		{VMID: 101, Kind: GuestBackup, At: t0.Add(time.Hour), OK: true, Run: "r-old", Detail: "late record of an older one"},
		{VMID: 101, Kind: GuestRestoreDrill, At: t0, OK: true, Run: "r-3"},
		{VMID: 102, Kind: GuestBackup, At: t0, OK: false, Run: "r-4"},
	}
	for _, e := range events {
		if err := s.IndexGuest(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := s.GuestIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := idx[101][GuestBackup]
	if b.Last.Run != "r-2" || b.Last.OK || b.LastOK.Run != "r-old" || !b.LastOK.At.Equal(t0.Add(time.Hour)) {
		t.Errorf("101 backup = %+v; want last r-2 (failed), last ok r-old", b)
	}
	if d := idx[101][GuestRestoreDrill]; d.Last.Run != "r-3" || d.LastOK.Run != "r-3" {
		t.Errorf("101 drill = %+v", d)
	}
	if e := idx[102][GuestBackup]; e.Last.Run != "r-4" || !e.LastOK.At.IsZero() {
		t.Errorf("102 backup = %+v; want no success", e)
	}
	if err := s.IndexGuest(ctx, GuestEvent{VMID: 1, Kind: "snapshot"}); err == nil {
		t.Error("an unknown kind was indexed")
	}
}

func TestHubState(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, ok, err := s.HubState(ctx, "channel"); ok || err != nil {
		t.Fatalf("HubState on an empty store = %v, %v", ok, err)
	}
	for _, v := range []string{`{"generation":1}`, `{"generation":2}`} {
		if err := s.SetHubState(ctx, "channel", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok, err := s.HubState(ctx, "channel"); !ok || err != nil || string(v) != `{"generation":2}` {
		t.Fatalf("HubState = %s %v %v", v, ok, err)
	}
}

func TestEndedSince(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // shadows the package t0
	var ids []string
	for i := range 5 {
		runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceAPI}, []NewRun{{Playbook: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		id := runs[0].ID
		ids = append(ids, id)
		if i == 4 {
			break // one run stays unfinished
		}
		if err := s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded, At: t0.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	runs, more, err := s.EndedSince(ctx, time.Time{}, "", 3)
	if err != nil || len(runs) != 3 || more != 1 || runs[0].ID != ids[0] || runs[2].ID != ids[2] {
		t.Fatalf("EndedSince(start, 3) = %v, %d, %v", runs, more, err)
	}
	last := runs[2]
	runs, more, err = s.EndedSince(ctx, last.Ended, last.ID, 3)
	if err != nil || len(runs) != 1 || more != 0 || runs[0].ID != ids[3] {
		t.Fatalf("EndedSince(after third) = %v, %d, %v", runs, more, err)
	}
}
