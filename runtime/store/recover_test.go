package store

import (
	"context"
	"database/sql"
	"path/filepath"
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
		s.MarkStarted(ctx, running, "v1", "", t0),
		s.TaskStarted(ctx, running, 0, upidA, t0),
		s.TaskFinished(ctx, upidA, "OK", t0),
		s.TaskStarted(ctx, running, 0, upidB, t0),
		s.Finish(ctx, done, FinishInfo{Status: runstate.Succeeded, At: t0}),
		// A run cancelled while its task ran on: not interrupted, but its
		// task still needs following.
		s.TaskStarted(ctx, cancelled, 0, "UPID:pve:1:2:3:vzcreate:103:root@pam:", t0),
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
		// Interrupted is not final: the run has not ended, it waits to
		// resume or be undone.
		if r.Status != runstate.Interrupted || !r.Ended.IsZero() || r.Error != wantErr[r.ID] {
			t.Errorf("run %s: %s ended %v error %q; want interrupted, not ended, %q", r.Playbook, r.Status, r.Ended, r.Error, wantErr[r.ID])
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

	// A second start (the first did not resume it) finds it still
	// waiting, unchanged.
	if again, err := s.RecoverInterrupted(ctx, at.Add(time.Hour)); err != nil || !slices.Equal(ids(again), []string{running}) || again[0].Error != wantErr[running] {
		t.Errorf("second RecoverInterrupted = %v, %v; want the interrupted run again", ids(again), err)
	}

	// It resumes (counted), is interrupted again by a stop, and ends.
	if err := s.Resume(ctx, running); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "Resume(running)", s.Resume(ctx, running), ErrStarted, "running")
	if err := s.Interrupt(ctx, running, "the agent stopped while the run was running", JournalCounts{Replayed: 3, Adopted: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx, running); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, running, FinishInfo{Status: runstate.Succeeded, Counts: JournalCounts{Replayed: 5, Reissued: 1}}); err != nil {
		t.Fatal(err)
	}
	r := get(t, s, running)
	if r.Status != runstate.Succeeded || r.Resumes != 2 || r.Replayed != 8 || r.Adopted != 1 || r.Reissued != 1 || r.Error != "" {
		t.Errorf("resumed run = %s resumes %d counts %+v error %q; want succeeded after 2 resumes, 8 replayed, 1 adopted, 1 re-issued", r.Status, r.Resumes, r.JournalCounts, r.Error)
	}
	checkErr(t, "Resume(succeeded)", s.Resume(ctx, running), ErrFinished, "succeeded")
	checkErr(t, "Interrupt(succeeded)", s.Interrupt(ctx, running, "x", JournalCounts{}), ErrFinished, "succeeded")
}

func TestJournalStore(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := create(t, s, "p", t0).ID
	intent := t0.Add(time.Minute)
	entries := []JournalEntry{
		{Seq: 1, Builtin: "proxmox.guest", Digest: "d1", Pos: "p.star:3:18", Outcome: []byte(`{"v":["N"]}`)},
		{Seq: 2, Builtin: "proxmox.restore", Digest: "d2", Pos: "p.star:4:20", Intent: intent},
	}
	if err := s.WriteJournal(ctx, id, entries); err != nil {
		t.Fatal(err)
	}
	// The restore's task, recorded with its call: the journal reads its
	// UPID from the task's record.
	const upidC = "UPID:pve:00001000:0001E240:673D6A01:vzrestore:105:felhom@pve!agent:"
	entries[1].UPID = upidC
	if err := s.TaskStarted(ctx, id, 2, upidC, t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Journal(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Outcome) != `{"v":["N"]}` || got[1].Outcome != nil || !got[1].Intent.Equal(intent) || got[1].UPID != entries[1].UPID || got[1].Pos != "p.star:4:20" {
		t.Errorf("Journal = %+v; want both entries as written, the restore pending with its UPID", got)
	}
	// Another call at a written sequence number is refused, not overwritten.
	checkErr(t, "WriteJournal(other call)", s.WriteJournal(ctx, id, []JournalEntry{{Seq: 1, Builtin: "proxmox.start", Digest: "x"}}), ErrInvalid, "another call")
	checkErr(t, "WriteJournal(seq 0)", s.WriteJournal(ctx, id, []JournalEntry{{Seq: 0, Builtin: "proxmox.start"}}), ErrInvalid, "entry 0")
	if ups, err := s.JournalUPIDs(ctx, id, "proxmox.restore"); err != nil || len(ups) != 1 || ups[0] != entries[1].UPID {
		t.Errorf("JournalUPIDs = %v, %v; want the restore's UPID", ups, err)
	}
	if claimed, err := s.TaskClaimed(ctx, id, 3, entries[1].UPID); err != nil || !claimed {
		t.Errorf("TaskClaimed(the UPID of another entry) = %v, %v; want true", claimed, err)
	}
	if claimed, err := s.TaskClaimed(ctx, id, 2, entries[1].UPID); err != nil || claimed {
		t.Errorf("TaskClaimed(the entry's own UPID) = %v, %v; want false", claimed, err)
	}
	if claimed, err := s.TaskClaimed(ctx, id, 2, upidA); err != nil || claimed {
		t.Errorf("TaskClaimed(unknown) = %v, %v; want false", claimed, err)
	}
	other := create(t, s, "other", t0).ID
	if err := s.TaskStarted(ctx, other, 0, upidA, t0); err != nil {
		t.Fatal(err)
	}
	if claimed, err := s.TaskClaimed(ctx, id, 2, upidA); err != nil || !claimed {
		t.Errorf("TaskClaimed(another run's task) = %v, %v; want true", claimed, err)
	}
	// A task of the run recorded with no call (the observer saw no call in
	// flight) is not claimed, and recording it with its call attaches it.
	if err := s.TaskStarted(ctx, id, 0, upidB, t0); err != nil {
		t.Fatal(err)
	}
	if claimed, err := s.TaskClaimed(ctx, id, 3, upidB); err != nil || claimed {
		t.Errorf("TaskClaimed(the run's task of no call) = %v, %v; want false", claimed, err)
	}
	// The call sent afresh: its task is detached, the entry has none, and
	// the run still owns the task.
	if err := s.DetachTasks(ctx, id, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Journal(ctx, id); got[1].UPID != "" {
		t.Errorf("the detached call's UPID = %q; want none", got[1].UPID)
	}
	if ups, _ := s.JournalUPIDs(ctx, id, "proxmox.restore"); len(ups) != 0 {
		t.Errorf("JournalUPIDs after the detach = %v; want none", ups)
	}
	if r := get(t, s, id); len(r.Tasks) != 2 {
		t.Errorf("the run's tasks after the detach = %+v; want both still its own", r.Tasks)
	}
	// Its next task is the call's.
	const upidD = "UPID:pve:00001000:0001E241:673D6A02:qmrestore:105:felhom@pve!agent:"
	if err := s.TaskStarted(ctx, id, 2, upidD, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Journal(ctx, id); got[1].UPID != upidD {
		t.Errorf("the call's UPID = %q; want its newest task %s", got[1].UPID, upidD)
	}
}

func TestRecoverInterruptedEmpty(t *testing.T) {
	s := newStore(t)
	if got, err := s.RecoverInterrupted(context.Background(), time.Time{}); err != nil || got != nil {
		t.Errorf("RecoverInterrupted on an empty store = %v, %v; want nil, nil", got, err)
	}
}

// TestMigrateJournalUPIDs: a version-8 store, where the journal kept its
// own copy of each UPID, opens with every UPID in the task records: a
// task the observer recorded gets its call, and one only the journal held
// (an adopted task) becomes an open task of its run; the journal reads
// both back, and claims stay as they were.
func TestMigrateJournalUPIDs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:8] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	const (
		recorded = "UPID:pve:00001000:0001E240:673D6A01:vzsnapshot:101:root@pam:"
		adopted  = "UPID:pve:00001000:0001E241:673D6A02:vzrollback:101:root@pam:"
		noCall   = "UPID:pve:00001000:0001E242:673D6A03:vzstart:101:root@pam:"
	)
	for _, q := range []string{
		`PRAGMA user_version = 8`,
		`INSERT INTO runs (id, playbook, source, status, created) VALUES ('r-1', 'snap', 'cli', 'interrupted', 1)`,
		`INSERT INTO journal (run, seq, builtin, digest, intent, upid, outcome) VALUES
			('r-1', 1, 'proxmox.snapshot', 'd1', 10, '` + recorded + `', x'01'),
			('r-1', 2, 'proxmox.rollback', 'd2', 20, '` + adopted + `', NULL),
			('r-1', 3, 'proxmox.start', 'd3', 30, '', NULL)`,
		`INSERT INTO tasks (upid, run, started, ended, exit_status) VALUES
			('` + recorded + `', 'r-1', 11, 12, 'OK'), ('` + noCall + `', 'r-1', 31, NULL, '')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s := openAt(t, path)
	j, err := s.Journal(ctx, "r-1")
	if err != nil || len(j) != 3 || j[0].UPID != recorded || j[1].UPID != adopted || j[2].UPID != "" {
		t.Fatalf("Journal after the migration = %+v, %v; want the recorded and the adopted UPID, none for the third", j, err)
	}
	open, err := s.OpenTasks(ctx)
	if err != nil || len(open) != 2 || open[0].UPID != adopted || !open[0].Started.Equal(time.Unix(0, 20)) || open[1].UPID != noCall {
		t.Errorf("OpenTasks = %+v, %v; want the adopted task (started at its intent) and the open one", open, err)
	}
	for _, c := range []struct {
		seq  int
		upid string
		want bool
	}{{1, recorded, false}, {2, recorded, true}, {3, noCall, false}, {3, adopted, true}} {
		if got, err := s.TaskClaimed(ctx, "r-1", c.seq, c.upid); err != nil || got != c.want {
			t.Errorf("TaskClaimed(call %d, %s) = %v, %v; want %v", c.seq, c.upid, got, err, c.want)
		}
	}
}
