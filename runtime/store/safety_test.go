package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// TestPendingOps: a pending operation is recorded open, resolved once
// (a second resolution is ErrFinished), and listed.
func TestPendingOps(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := PendingOp{ID: "p-1", Run: "r-1", Playbook: "decommission", Guest: 100, What: "delete lxc 100", Blob: []byte(`{"op":"decommission"}`), Created: at, Expires: at.Add(time.Hour)}
	if err := s.AddPending(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPending(ctx, p); err == nil {
		t.Error("a second AddPending with the same id succeeded")
	}
	open, err := s.PendingOps(ctx, true, 0)
	if err != nil || len(open) != 1 || open[0].What != p.What || string(open[0].Blob) != string(p.Blob) || !open[0].Created.Equal(at) {
		t.Fatalf("PendingOps(open) = %+v, %v", open, err)
	}
	if err := s.ResolvePending(ctx, "p-1", PendingApproved, "approved by SHA256:x", "r-2"); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "ResolvePending twice", s.ResolvePending(ctx, "p-1", PendingRefused, "", ""), ErrFinished, "is approved")
	checkErr(t, "ResolvePending of none", s.ResolvePending(ctx, "p-9", PendingRefused, "", ""), ErrNotFound, "p-9")
	if open, _ := s.PendingOps(ctx, true, 0); len(open) != 0 {
		t.Errorf("open after approval: %+v", open)
	}
	got, err := s.Pending(ctx, "p-1")
	if err != nil || got.State != PendingApproved || got.NewRun != "r-2" || got.Resolved.IsZero() {
		t.Errorf("Pending = %+v, %v", got, err)
	}
}

// TestParkedRun: a parked run goes back to running, finishes from
// pending_signature, and is interrupted by a restart.
func TestParkedRun(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := create(t, s, "decommission", at)
	checkErr(t, "park a queued run", s.SetParked(ctx, r.ID, true), ErrStarted, "queued")
	if err := s.MarkStarted(ctx, r.ID, "", "", at); err != nil {
		t.Fatal(err)
	}
	if err := s.SetParked(ctx, r.ID, true); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, r.ID).Status; got != runstate.PendingSignature {
		t.Fatalf("status = %s; want pending_signature", got)
	}
	if err := s.SetParked(ctx, r.ID, false); err != nil {
		t.Fatal(err)
	}
	s.SetParked(ctx, r.ID, true)
	if err := s.Finish(ctx, r.ID, FinishInfo{Status: runstate.TimedOut}); err != nil {
		t.Fatalf("Finish a parked run = %v", err)
	}
	r2 := create(t, s, "decommission", at)
	s.MarkStarted(ctx, r2.ID, "", "", at)
	s.SetParked(ctx, r2.ID, true)
	rec, err := s.RecoverInterrupted(ctx, at)
	if err != nil || len(rec) != 1 || get(t, s, r2.ID).Status != runstate.Interrupted {
		t.Fatalf("RecoverInterrupted = %v, %v; want the parked run interrupted", ids(rec), err)
	}
}

func TestAudit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i, run := range []string{"r-1", "r-2", "r-1"} {
		e, _ := json.Marshal(map[string]any{"n": i})
		if err := s.AppendAudit(ctx, time.Time{}, run, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Audit(ctx, 0, "", 0)
	if err != nil || len(all) != 3 {
		t.Fatalf("Audit = %v, %v", all, err)
	}
	after, _ := s.Audit(ctx, all[0].Seq, "", 0)
	mine, _ := s.Audit(ctx, 0, "r-1", 0)
	if len(after) != 2 || len(mine) != 2 || string(mine[1].Entry) != `{"n":2}` {
		t.Errorf("Audit(after first) = %d, Audit(r-1) = %+v", len(after), mine)
	}
	if err := s.AppendAudit(ctx, time.Time{}, "r-1", json.RawMessage("{")); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("AppendAudit(bad JSON) = %v", err)
	}
}
