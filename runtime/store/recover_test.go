package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func TestRecoverInterrupted(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	at := t0.Add(time.Hour)

	queued := create(t, s, "queued", t0).ID
	running := create(t, s, "running", t0.Add(time.Second)).ID
	done := create(t, s, "done", t0).ID
	cancelled := create(t, s, "cancelled", t0).ID
	for _, err := range []error{
		s.MarkStarted(ctx, running, "v1", t0),
		s.TaskStarted(ctx, running, upidA, t0),
		s.TaskFinished(ctx, upidA, "OK", t0),
		s.TaskStarted(ctx, running, upidB, t0),
		s.Finish(ctx, done, FinishInfo{Status: runstate.Succeeded, At: t0}),
		// A run cancelled while its task ran on: not interrupted, but its
		// task still needs following.
		s.TaskStarted(ctx, cancelled, "UPID:pve:1:2:3:vzcreate:103:root@pam:", t0),
		s.Finish(ctx, cancelled, FinishInfo{Status: runstate.Cancelled, Error: "cancelled by the operator", At: t0}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	got, err := s.RecoverInterrupted(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{running}) {
		t.Fatalf("RecoverInterrupted = %v; want only the running run %v", ids(got), running)
	}
	wantErr := map[string]string{
		running: "the agent stopped while the run was running",
	}
	for _, r := range got {
		if r.Status != runstate.Interrupted || !r.Ended.Equal(at) || r.Error != wantErr[r.ID] {
			t.Errorf("run %s: %s ended %v error %q; want interrupted, %v, %q", r.Playbook, r.Status, r.Ended, r.Error, at, wantErr[r.ID])
		}
		if stored := get(t, s, r.ID); !equalRun(stored, r) {
			t.Errorf("returned %+v; stored %+v", r, stored)
		}
	}
	if tasks := got[0].Tasks; len(tasks) != 2 || !tasks[0].Done() || tasks[1].Done() || tasks[1].UPID != upidB {
		t.Errorf("running run's tasks = %+v; want %s done and %s open", tasks, upidA, upidB)
	}
	if r := get(t, s, done); r.Status != runstate.Succeeded {
		t.Errorf("finished run became %s", r.Status)
	}
	if r := get(t, s, cancelled); r.Status != runstate.Cancelled || r.Error != "cancelled by the operator" {
		t.Errorf("cancelled run became %s %q", r.Status, r.Error)
	}
	// A queued run never started: it stays queued, for the caller to run.
	if r := get(t, s, queued); r.Status != runstate.Queued || !r.Ended.IsZero() {
		t.Errorf("queued run became %s (ended %v); want still queued", r.Status, r.Ended)
	}
	// Interrupted is final: nothing runs it again.
	checkErr(t, "Finish(interrupted)", s.Finish(ctx, running, FinishInfo{Status: runstate.Succeeded}), ErrFinished, "interrupted")

	open, err := s.OpenTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var openIDs []string
	for _, o := range open {
		openIDs = append(openIDs, o.UPID)
	}
	if want := []string{upidB, "UPID:pve:1:2:3:vzcreate:103:root@pam:"}; !slices.Equal(slices.Sorted(slices.Values(openIDs)), slices.Sorted(slices.Values(want))) {
		t.Errorf("OpenTasks = %v; want %v", openIDs, want)
	}

	// A second start finds nothing left to interrupt.
	if again, err := s.RecoverInterrupted(ctx, at.Add(time.Hour)); err != nil || len(again) != 0 {
		t.Errorf("second RecoverInterrupted = %v, %v; want none", ids(again), err)
	}
	if r := get(t, s, running); !r.Ended.Equal(at) {
		t.Errorf("second recovery moved Ended to %v", r.Ended)
	}
}

func TestRecoverInterruptedEmpty(t *testing.T) {
	s := newStore(t)
	if got, err := s.RecoverInterrupted(context.Background(), time.Time{}); err != nil || got != nil {
		t.Errorf("RecoverInterrupted on an empty store = %v, %v; want nil, nil", got, err)
	}
}
