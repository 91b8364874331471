package pvetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// snapshotCases take, roll back and delete one snapshot of Stopped, and
// check the refusals PVE makes inside those tasks.
var snapshotCases = []testCase{
	{
		name: "snapshot",
		rule: "POST .../snapshot starts a vzsnapshot task (UPID id = vmid, user = the token); once it stops OK the snapshot is listed with its description, and \"current\" is PVE's pseudo-entry",
		run: func(t *testing.T, s *suite) {
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: s.snapName, Description: "taken by the conformance suite"})
			st := s.mustDone(t, "Snapshot", upid, err)
			if upid.Type != "vzsnapshot" || upid.ID != itoa(s.w.Stopped) || upid.Node != s.node {
				t.Errorf("UPID %s; want type vzsnapshot, id %d on %s", upid, s.w.Stopped, s.node)
			}
			if st.ExitStatus != "OK" {
				t.Errorf("exit status %q; want OK", st.ExitStatus)
			}
			s.snapTask = upid
			snaps, err := s.c.Snapshots(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("Snapshots: %v", err)
			}
			i := slices.IndexFunc(snaps, func(sn proxmox.Snapshot) bool { return sn.Name == s.snapName })
			if i < 0 {
				t.Fatalf("Snapshots = %+v; want %s", snaps, s.snapName)
			}
			if sn := snaps[i]; sn.Description != "taken by the conformance suite" || sn.SnapTime.IsZero() {
				t.Errorf("snapshot %+v; want its description and a snaptime", sn)
			}
			if slices.ContainsFunc(snaps, func(sn proxmox.Snapshot) bool { return sn.Name == "current" }) {
				t.Errorf("Snapshots lists PVE's pseudo-snapshot \"current\": %+v", snaps)
			}
			s.noRequest(t, "Snapshot(bad name)", "snapname", func(ctx context.Context) error {
				_, err := s.c.Snapshot(ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: "1-starts-with-a-digit", Description: ""})
				return err
			})
		},
	},
	{
		name: "snapshot-name-taken",
		rule: "a snapshot name that exists is refused inside the task: it stops with \"snapshot name 'x' already used\"",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the snapshot of case snapshot")
			}
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: s.snapName, Description: ""})
			te := s.wantTaskError(t, "Snapshot(again)", upid, err, fmt.Sprintf("snapshot name '%s' already used", s.snapName))
			wantKind(t, "Snapshot(again)", te, "task")
			s.failedTask = upid
		},
	},
	{
		name: "rollback",
		rule: "POST .../snapshot/{name}/rollback starts a vzrollback task that stops OK",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the snapshot of case snapshot")
			}
			upid, err := s.c.Rollback(s.ctx, proxmox.LXC, s.w.Stopped, s.snapName)
			s.mustDone(t, "Rollback", upid, err)
			if upid.Type != "vzrollback" {
				t.Errorf("UPID type %q; want vzrollback", upid.Type)
			}
		},
	},
	{
		name: "rollback-missing",
		rule: "rolling back to a snapshot that does not exist fails inside the task with \"snapshot 'x' does not exist\"; IsNotFound",
		run: func(t *testing.T, s *suite) {
			name := s.snapName + "nope"
			upid, err := s.c.Rollback(s.ctx, proxmox.LXC, s.w.Stopped, name)
			te := s.wantTaskError(t, "Rollback", upid, err, fmt.Sprintf("snapshot '%s' does not exist", name))
			if !proxmox.IsNotFound(te) {
				t.Errorf("IsNotFound(%v) = false", te)
			}
			wantKind(t, "Rollback", te, "not_found")
		},
	},
	{
		name:  "snapshot-locked",
		rule:  "a snapshot of a locked guest fails inside the task, at once, with \"CT is locked (backup)\" (pve-guest-common src/PVE/AbstractConfig.pm check_lock; guest_type CT in pve-container src/PVE/LXC/Config.pm); IsLocked",
		hooks: []string{"LockGuest"},
		run: func(t *testing.T, s *suite) {
			s.w.LockGuest(t, s.w.Stopped, "backup")
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: s.snapName + "lk", Description: ""})
			te := s.wantTaskError(t, "Snapshot", upid, err, "CT is locked (backup)")
			if lock, ok := proxmox.IsLocked(te); !ok || lock != "backup" {
				t.Errorf("IsLocked(%v) = %q, %v; want backup, true", te, lock, ok)
			}
			wantKind(t, "Snapshot", te, "lock")
		},
	},
	{
		name:  "snapshot-permission-in-task",
		rule:  "a mutation can pass the request's check and fail inside the task: exit status \"Permission check failed (/vms/VMID, VM.Snapshot)\", parsed into the TaskError",
		hooks: []string{"DenyAtTaskTime"},
		run: func(t *testing.T, s *suite) {
			s.w.DenyAtTaskTime(t, s.vm(s.w.Stopped), "VM.Snapshot")
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Stopped, proxmox.SnapshotOptions{Name: s.snapName + "pm", Description: ""})
			te := s.wantTaskError(t, "Snapshot", upid, err, fmt.Sprintf("Permission check failed (%s, VM.Snapshot)", s.vm(s.w.Stopped)))
			if te.Permission == nil {
				t.Fatalf("TaskError.Permission = nil for %q", te.ExitStatus)
			}
			wantPermission(t, "Snapshot", te, s.vm(s.w.Stopped), "VM.Snapshot")
		},
	},
	{
		name: "delete-snapshot",
		rule: "DELETE .../snapshot/{name} starts a vzdelsnapshot task; afterwards the snapshot is gone, and deleting it again fails inside the task with \"snapshot 'x' does not exist\"",
		run: func(t *testing.T, s *suite) {
			if s.snapTask.IsZero() {
				t.Skip("needs the snapshot of case snapshot")
			}
			upid, err := s.c.DeleteSnapshot(s.ctx, proxmox.LXC, s.w.Stopped, s.snapName)
			s.mustDone(t, "DeleteSnapshot", upid, err)
			if upid.Type != "vzdelsnapshot" {
				t.Errorf("UPID type %q; want vzdelsnapshot", upid.Type)
			}
			snaps, err := s.c.Snapshots(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("Snapshots: %v", err)
			}
			if slices.ContainsFunc(snaps, func(sn proxmox.Snapshot) bool { return sn.Name == s.snapName }) {
				t.Errorf("Snapshots = %+v; want %s gone", snaps, s.snapName)
			}
			upid, err = s.c.DeleteSnapshot(s.ctx, proxmox.LXC, s.w.Stopped, s.snapName)
			te := s.wantTaskError(t, "DeleteSnapshot(again)", upid, err, fmt.Sprintf("snapshot '%s' does not exist", s.snapName))
			if !proxmox.IsNotFound(te) {
				t.Errorf("IsNotFound(%v) = false", te)
			}
		},
	},
}
