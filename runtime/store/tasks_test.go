package store

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

const (
	upidA = "UPID:pve:000A1B2C:0123ABCD:6751F3A8:vzdump:101:root@pam:"
	upidB = "UPID:pve:000A1B2D:0123ABCE:6751F3A9:vzsnapshot:102:felhom@pve!agent:"
)

func TestTasks(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	run := create(t, s, "backup", t0).ID
	other := create(t, s, "restore", t0).ID
	steps := []struct {
		name     string
		do       func() error
		wantIs   error
		wantText string
	}{
		{name: "start A", do: func() error { return s.TaskStarted(ctx, run, 0, upidA, t0.Add(time.Second)) }},
		{name: "start A again for the same run", do: func() error { return s.TaskStarted(ctx, run, 0, upidA, t0.Add(time.Hour)) }},
		{name: "start A for another run", do: func() error { return s.TaskStarted(ctx, other, 0, upidA, t0) },
			wantIs: ErrInvalid, wantText: "already recorded for run " + run},
		{name: "start for an unknown run", do: func() error { return s.TaskStarted(ctx, "r-none", 0, upidB, t0) },
			wantIs: ErrNotFound, wantText: "r-none"},
		{name: "start with an empty UPID", do: func() error { return s.TaskStarted(ctx, run, 0, "", t0) },
			wantIs: ErrInvalid, wantText: "upid is empty"},
		{name: "finish the run", do: func() error { return s.Finish(ctx, run, FinishInfo{Status: runstate.Cancelled}) }},
		{name: "start B on the finished run", do: func() error { return s.TaskStarted(ctx, run, 0, upidB, t0.Add(2*time.Second)) }},
		{name: "finish A", do: func() error { return s.TaskFinished(ctx, upidA, "OK", t0.Add(time.Minute)) }},
		{name: "finish A again", do: func() error { return s.TaskFinished(ctx, upidA, "OK", t0) },
			wantIs: ErrFinished, wantText: upidA},
		{name: "finish an unknown task", do: func() error { return s.TaskFinished(ctx, "UPID:none", "OK", t0) },
			wantIs: ErrNotFound, wantText: "UPID:none"},
		{name: "finish without exit status", do: func() error { return s.TaskFinished(ctx, upidB, "", t0) },
			wantIs: ErrInvalid, wantText: "exit status is empty"},
	}
	for _, st := range steps {
		checkErr(t, st.name, st.do(), st.wantIs, st.wantText)
	}
	want := []Task{
		{UPID: upidA, Run: run, Started: t0.Add(time.Second), Ended: t0.Add(time.Minute), ExitStatus: "OK"},
		{UPID: upidB, Run: run, Started: t0.Add(2 * time.Second)},
	}
	r := get(t, s, run)
	if wantRun := (Run{ID: run, Playbook: "backup", Source: SourceCLI, Status: runstate.Cancelled, Created: t0,
		Ended: r.Ended, Tasks: want}); !equalRun(r, wantRun) {
		t.Errorf("Get = %+v; want tasks %+v", r, want)
	}
	if !r.Tasks[0].Done() || r.Tasks[1].Done() {
		t.Errorf("Done() = %v, %v; want true, false", r.Tasks[0].Done(), r.Tasks[1].Done())
	}
	if o := get(t, s, other); len(o.Tasks) != 0 {
		t.Errorf("run %s has tasks %+v; want none", other, o.Tasks)
	}
	open, err := s.OpenTasks(ctx)
	if err != nil || len(open) != 1 || open[0].UPID != upidB {
		t.Errorf("OpenTasks = %+v, %v; want only %s", open, err, upidB)
	}
	if err := s.TaskFinished(ctx, upidB, "job errors", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if open, err := s.OpenTasks(ctx); err != nil || len(open) != 0 {
		t.Errorf("OpenTasks after the last end = %+v, %v; want none", open, err)
	}
	// List carries tasks as Get does.
	runs, err := s.List(ctx, Filter{Playbook: "backup"})
	if err != nil || len(runs) != 1 || !slices.EqualFunc(runs[0].Tasks, get(t, s, run).Tasks, func(a, b Task) bool {
		return a.UPID == b.UPID && a.ExitStatus == b.ExitStatus
	}) {
		t.Errorf("List tasks = %+v, %v; want those of Get", runs, err)
	}
}

// TestTaskHistory: the durations of the last tasks of one kind (node,
// worker type, worker id), newest first, of those that stopped OK or with
// warnings; nothing for another kind, an unfinished task or text that is
// not a UPID.
func TestTaskHistory(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	run := create(t, s, "backup", t0).ID
	upid := func(n int, typ, id string) string {
		return "UPID:pve:000A1B2C:0123ABCD:" + strings.ToUpper(strconv.FormatInt(int64(0x6751F3A8+n), 16)) + ":" + typ + ":" + id + ":root@pam:"
	}
	tasks := []struct {
		upid string
		took time.Duration // 0: not finished
		exit string
	}{
		{upid(1, "vzdump", "101"), 10 * time.Second, "OK"},
		{upid(2, "vzdump", "101"), 12 * time.Second, "WARNINGS: 1"},
		{upid(3, "vzdump", "101"), 2 * time.Second, "job errors"}, // failed: not history
		{upid(4, "vzdump", "102"), time.Minute, "OK"},             // another guest
		{upid(5, "vzsnapshot", "101"), time.Second, "OK"},         // another type
		{upid(6, "vzdump", "101"), 11 * time.Second, "OK"},
		{upid(7, "vzdump", "101"), 0, ""},                                                  // still running
		{strings.Replace(upid(8, "vzdump", "101"), ":pve:", ":pve2:", 1), time.Hour, "OK"}, // another node
	}
	at := t0
	for _, tk := range tasks {
		at = at.Add(time.Minute)
		if err := s.TaskStarted(ctx, run, 0, tk.upid, at); err != nil {
			t.Fatal(err)
		}
		if tk.took > 0 {
			if err := s.TaskFinished(ctx, tk.upid, tk.exit, at.Add(tk.took)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		upid string
		n    int
		want []time.Duration
	}{
		{upid(9, "vzdump", "101"), 5, []time.Duration{11 * time.Second, 12 * time.Second, 10 * time.Second}},
		{upid(9, "vzdump", "101"), 2, []time.Duration{11 * time.Second, 12 * time.Second}},
		{upid(9, "vzdump", "102"), 5, []time.Duration{time.Minute}},
		{upid(9, "vzdump", "103"), 5, nil},
		{upid(9, "vzdump", "101"), 0, nil},
		{"not a upid", 5, nil},
	}
	for _, tt := range tests {
		got, err := s.TaskHistory(ctx, tt.upid, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("TaskHistory(%s, %d) = %v; want %v", tt.upid, tt.n, got, tt.want)
		}
	}
}
