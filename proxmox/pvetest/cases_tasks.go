package pvetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// taskCases check the task endpoints: list, status, log and stop, and a
// lock a running task holds.
var taskCases = []testCase{
	{
		name: "tasks-list",
		rule: "GET /nodes/{node}/tasks lists finished tasks newest first with status = exit status and an endtime; errors=1 keeps only failures",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() || s.failedTask.IsZero() {
				t.Skip("needs the tasks of cases snapshot and snapshot-name-taken")
			}
			all, err := s.c.Tasks(s.ctx, proxmox.TaskFilter{VMID: s.w.Stopped, TypeFilter: "vzsnapshot", Limit: 500})
			if err != nil {
				t.Fatalf("Tasks: %v", err)
			}
			find := func(list []proxmox.Task, upid proxmox.UPID) *proxmox.Task {
				i := slices.IndexFunc(list, func(tk proxmox.Task) bool { return tk.UPID == upid })
				if i < 0 {
					return nil
				}
				return &list[i]
			}
			ok, bad := find(all, s.snapTask), find(all, s.failedTask)
			if ok == nil || bad == nil {
				t.Fatalf("Tasks = %+v; want %s and %s", all, s.snapTask, s.failedTask)
			}
			if ok.ExitStatus != "OK" || ok.EndTime.IsZero() || ok.Type != "vzsnapshot" || ok.ID != itoa(s.w.Stopped) {
				t.Errorf("task %+v; want vzsnapshot of %d, stopped OK with an endtime", *ok, s.w.Stopped)
			}
			if !strings.HasSuffix(bad.ExitStatus, "already used") {
				t.Errorf("failed task %+v; want its error as status", *bad)
			}
			for _, tk := range all {
				if tk.Type != "vzsnapshot" || tk.ID != itoa(s.w.Stopped) {
					t.Errorf("Tasks(vmid %d, typefilter vzsnapshot) lists %+v", s.w.Stopped, tk)
				}
			}
			failed, err := s.c.Tasks(s.ctx, proxmox.TaskFilter{VMID: s.w.Stopped, TypeFilter: "vzsnapshot", Errors: true, Limit: 500})
			if err != nil {
				t.Fatalf("Tasks(errors): %v", err)
			}
			if find(failed, s.failedTask) == nil || find(failed, s.snapTask) != nil {
				t.Errorf("Tasks(errors) = %+v; want the failed task only", failed)
			}
			s.noRequest(t, "Tasks(source bogus)", "source", func(ctx context.Context) error {
				_, err := s.c.Tasks(ctx, proxmox.TaskFilter{Source: "bogus"})
				return err
			})
		},
	},
	{
		name: "task-log",
		rule: "GET .../tasks/{upid}/log pages lines {n, t} (n from 1) by start and limit with a total; the last line is \"TASK OK\" or \"TASK ERROR: text\"",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the task of case snapshot")
			}
			lines, err := s.c.TaskLog(s.ctx, s.snapTask, 0, 0)
			if err != nil {
				t.Fatalf("TaskLog: %v", err)
			}
			if len(lines) == 0 || lines[len(lines)-1].T != "TASK OK" {
				t.Fatalf("TaskLog = %+v; want lines ending with TASK OK", lines)
			}
			for i, l := range lines {
				if l.N != i+1 {
					t.Errorf("line %d numbered %d; want %d", i, l.N, i+1)
				}
			}
			page, err := s.c.TaskLog(s.ctx, s.snapTask, len(lines)-1, 1)
			if err != nil {
				t.Fatalf("TaskLog(start, limit 1): %v", err)
			}
			if len(page) != 1 || page[0] != lines[len(lines)-1] {
				t.Errorf("TaskLog(%d, 1) = %+v; want only %+v", len(lines)-1, page, lines[len(lines)-1])
			}
			tail, err := s.c.TaskLogTail(s.ctx, s.snapTask, 1)
			if err != nil || !slices.Equal(tail, []string{"TASK OK"}) {
				t.Errorf("TaskLogTail(1) = %q, %v; want [TASK OK]", tail, err)
			}
			if !s.failedTask.IsZero() {
				tail, err := s.c.TaskLogTail(s.ctx, s.failedTask, 1)
				if err != nil || len(tail) != 1 || !strings.HasPrefix(tail[0], "TASK ERROR: ") {
					t.Errorf("TaskLogTail(failed, 1) = %q, %v; want [TASK ERROR: ...]", tail, err)
				}
			}
			s.noRequest(t, "TaskLog(start -1)", "start", func(ctx context.Context) error {
				_, err := s.c.TaskLog(ctx, s.snapTask, -1, 0)
				return err
			})
		},
	},
	{
		name: "stop-stopped-task",
		rule: "DELETE /nodes/{node}/tasks/{upid} of a task that has already stopped answers null and leaves its exit status as it was",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the task of case snapshot")
			}
			if err := s.c.StopTask(s.ctx, s.snapTask); err != nil {
				t.Fatalf("StopTask(stopped task): %v", err)
			}
			st, err := s.c.TaskStatusOnce(s.ctx, s.snapTask)
			if err != nil || st.Status != "stopped" || st.ExitStatus != "OK" {
				t.Errorf("TaskStatusOnce after StopTask = %+v, %v; want stopped OK", st, err)
			}
		},
	},
	{
		name:  "task-running-holds-lock",
		rule:  "a running vzdump holds the guest's \"backup\" lock: a config change dies with \"CT is locked (backup)\"; the status says running with no exitstatus; DELETE .../tasks/{upid} stops it (null) with an error exit status and the lock goes",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.Running}, Storage: s.w.BackupStorage})
			if err != nil {
				t.Fatalf("Vzdump: %v", err)
			}
			st, err := s.c.TaskStatusOnce(s.ctx, upid)
			if err != nil || !st.Running() || st.Status != "running" || st.ExitStatus != "" {
				t.Errorf("TaskStatusOnce = %+v, %v; want running without an exit status", st, err)
			}
			gs, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Running)
			if err != nil || gs.Lock != "backup" {
				t.Errorf("GuestStatus(%d) = %+v, %v; want lock backup while the backup runs", s.w.Running, gs, err)
			}
			// The same description back: harmless should the lock not hold.
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Running)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			_, err = s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Running, map[string]string{"description": gc.Description}, nil)
			wantAPIError(t, "SetConfig during the backup", err, 500, "CT is locked (backup)")
			if lock, ok := proxmox.IsLocked(err); !ok || lock != "backup" {
				t.Errorf("IsLocked(%v) = %q, %v; want backup, true", err, lock, ok)
			}

			if err := s.c.StopTask(s.ctx, upid); err != nil {
				t.Fatalf("StopTask: %v", err)
			}
			final, err := s.wait(upid)
			te, ok := errors.AsType[*proxmox.TaskError](err)
			if !ok || final.Running() || final.Succeeded() || te.ExitStatus == "" {
				t.Errorf("WaitTask after StopTask = %+v, %v; want stopped with an error exit status", final, err)
			}
			gs, err = s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Running)
			if err != nil || gs.Lock != "" {
				t.Errorf("GuestStatus(%d) after the stopped backup = %+v, %v; want the lock released", s.w.Running, gs, err)
			}
			if err := s.c.StopTask(s.ctx, proxmox.UPID{}); err == nil {
				t.Error("StopTask(zero UPID) = nil; want an error")
			}
		},
	},
	{
		name: "task-log-while-running",
		rule: "a running vzdump's log is readable while it runs and only grows: read from the line offset where the last read ended " +
			"(proxmox.TaskLogReader), the lines read add up to the finished log, each once and in order; an empty log reads as the " +
			"placeholder \"no content\" (pve-common dump_logfile), which is no line",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.Running}, Storage: s.w.BackupStorage})
			if err != nil {
				t.Fatalf("Vzdump: %v", err)
			}
			r := proxmox.NewTaskLogReader(s.c, upid)
			var got []string
			read := func() {
				lines, err := r.Next(s.ctx)
				if err != nil {
					t.Fatalf("TaskLogReader.Next: %v", err)
				}
				for _, l := range lines {
					got = append(got, l.T)
				}
			}
			read()
			if len(got) == 0 || !strings.HasPrefix(got[0], "INFO: starting new backup job: vzdump ") {
				t.Errorf("log while running = %q; want it to begin with the job's command line", got)
			}
			read() // nothing new, or what came since: never a line twice
			if err := s.c.StopTask(s.ctx, upid); err != nil {
				t.Fatalf("StopTask: %v", err)
			}
			if _, err := s.wait(upid); err == nil {
				t.Error("WaitTask after StopTask = nil error; want the stopped task's")
			}
			read()
			whole, err := s.c.TaskLog(s.ctx, upid, 0, 0)
			if err != nil {
				t.Fatalf("TaskLog: %v", err)
			}
			want := make([]string, len(whole))
			for i, l := range whole {
				want[i] = l.T
			}
			if !slices.Equal(got, want) || !strings.HasPrefix(got[len(got)-1], "TASK ERROR: ") {
				t.Errorf("lines read:\n%q\nthe whole log:\n%q\nwant the same, ending in TASK ERROR", got, want)
			}
		},
	},
	{
		name: "vzdump-snapshot-line-while-running",
		rule: "a container's snapshot-mode vzdump logs \"create storage snapshot 'vzdump'\" while it still runs, before its archive " +
			"is written (pve-container src/PVE/VZDump/LXC.pm snapshot: $self->loginfo(\"create storage snapshot '$snapname'\")); " +
			"the guest API's snapshotted phase is read from that line. A host whose storage cannot snapshot falls back to " +
			"suspend mode and logs no such line, which the case accepts",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.Running}, Storage: s.w.BackupStorage, Mode: "snapshot"})
			if err != nil {
				t.Fatalf("Vzdump: %v", err)
			}
			defer func() { _ = s.c.StopTask(s.ctx, upid) }()
			lines, err := proxmox.NewTaskLogReader(s.c, upid).Next(s.ctx)
			if err != nil {
				t.Fatalf("TaskLogReader.Next: %v", err)
			}
			var mode, snap bool
			for _, l := range lines {
				mode = mode || strings.Contains(l.T, "backup mode: snapshot")
				snap = snap || strings.Contains(l.T, "create storage snapshot 'vzdump'")
			}
			if st, err := s.c.TaskStatusOnce(s.ctx, upid); err != nil || !st.Running() {
				t.Fatalf("task status = %+v, %v; want it still running while held", st, err)
			}
			if mode && !snap {
				t.Errorf("snapshot-mode log while running = %v; want a \"create storage snapshot 'vzdump'\" line", lines)
			}
		},
	},
	{
		name: "worker-checks-lock-as-it-starts",
		rule: "a worker checks the guest's lock when it starts (pve-container src/PVE/API2/LXC/Snapshot.pm and Status.pm: " +
			"lock_config + check_lock before any work): a snapshot requested while a vzdump holds the guest returns a UPID " +
			"and its task fails at once with \"CT is locked (backup)\", whether or not the backup ends first",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			dump, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.Running}, Storage: s.w.BackupStorage})
			if err != nil {
				t.Fatalf("Vzdump: %v", err)
			}
			defer func() { _ = s.c.StopTask(s.ctx, dump) }()
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Running, proxmox.SnapshotOptions{Name: s.snapName + "bk", Description: ""})
			te := s.wantTaskError(t, "Snapshot during the backup", upid, err, "CT is locked (backup)")
			wantKind(t, "Snapshot during the backup", te, "lock")
			st, err := s.c.TaskStatusOnce(s.ctx, dump)
			if err != nil || !st.Running() {
				t.Errorf("vzdump status after the snapshot failed = %+v, %v; want still running (the snapshot failed at once)", st, err)
			}
		},
	},
	{
		name: "vzdump-locks-each-guest-in-turn",
		rule: "a multi-guest vzdump locks each guest only while that guest is backed up (pve-manager PVE/VZDump.pm " +
			"exec_backup_task: lock_vm when it reaches the guest, unlock_vm when done): while the lower vmid is backed up, " +
			"the other carries no lock and takes a config change",
		hooks: []string{"HoldTasks"},
		run: func(t *testing.T, s *suite) {
			s.w.HoldTasks(t)
			first, second := min(s.w.Running, s.w.Stopped), max(s.w.Running, s.w.Stopped)
			dump, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{first, second}, Storage: s.w.BackupStorage})
			if err != nil {
				t.Fatalf("Vzdump: %v", err)
			}
			defer func() {
				if err := s.c.StopTask(s.ctx, dump); err != nil {
					t.Errorf("StopTask: %v", err)
				}
				_, _ = s.wait(dump)
			}()
			a, errA := s.c.GuestStatus(s.ctx, proxmox.LXC, first)
			b, errB := s.c.GuestStatus(s.ctx, proxmox.LXC, second)
			if errA != nil || errB != nil || a.Lock != "backup" || b.Lock != "" {
				t.Errorf("while %d is backed up: locks %q (%v), %q (%v); want backup and none", first, a.Lock, errA, b.Lock, errB)
			}
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, second)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			if _, err := s.c.SetConfig(s.ctx, proxmox.LXC, second, map[string]string{"description": gc.Description}, nil); err != nil {
				t.Errorf("SetConfig(%d) while %d is backed up: %v; want it applied", second, first, err)
			}
		},
	},
}
