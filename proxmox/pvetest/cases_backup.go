package pvetest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// archiveName is a vzdump archive's volid on a directory storage:
// STORAGE:backup/vzdump-lxc-VMID-YYYY_MM_DD-HH_MM_SS.tar.zst.
var archiveName = regexp.MustCompile(`^([^:]+):backup/vzdump-lxc-(\d+)-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.tar\.zst$`)

// backupCases make one archive of Stopped and check how it is named and
// listed, and the permission PVE checks inside the vzdump worker.
var backupCases = []testCase{
	{
		name: "vzdump",
		rule: "POST /nodes/{node}/vzdump of one guest starts a vzdump task with id = vmid; its log names the archive vzdump-lxc-VMID-YYYY_MM_DD-HH_MM_SS.tar.zst (local time), listed as STORAGE:backup/FILE with content backup, format tar.zst, subtype lxc, vmid, size, ctime and notes",
		run: func(t *testing.T, s *suite) {
			before := time.Now()
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{
				VMIDs: []int{s.w.Stopped}, Storage: s.w.BackupStorage, Notes: "felhom conformance {{vmid}}",
			})
			s.mustDone(t, "Vzdump", upid, err)
			if upid.Type != "vzdump" || upid.ID != itoa(s.w.Stopped) {
				t.Errorf("UPID %s; want type vzdump, id %d", upid, s.w.Stopped)
			}
			volid, err := s.c.VzdumpArchive(s.ctx, upid, s.w.BackupStorage)
			if err != nil {
				t.Fatalf("VzdumpArchive: %v", err)
			}
			s.archives = append(s.archives, volid)
			m := archiveName.FindStringSubmatch(volid)
			if m == nil || m[1] != s.w.BackupStorage || m[2] != itoa(s.w.Stopped) {
				t.Fatalf("archive %q; want %s:backup/vzdump-lxc-%d-YYYY_MM_DD-HH_MM_SS.tar.zst", volid, s.w.BackupStorage, s.w.Stopped)
			}
			content, err := s.c.StorageContent(s.ctx, s.w.BackupStorage, "backup", s.w.Stopped)
			if err != nil {
				t.Fatalf("StorageContent: %v", err)
			}
			i := slices.IndexFunc(content, func(v proxmox.Volume) bool { return v.VolID == volid })
			if i < 0 {
				t.Fatalf("StorageContent(%s, backup, %d) = %+v; want %s", s.w.BackupStorage, s.w.Stopped, content, volid)
			}
			v := content[i]
			if v.Content != "backup" || v.Format != "tar.zst" || v.Subtype != "lxc" || v.VMID != s.w.Stopped || v.Size == 0 {
				t.Errorf("volume %+v; want content backup, format tar.zst, subtype lxc, vmid %d, a size", v, s.w.Stopped)
			}
			if want := fmt.Sprintf("felhom conformance %d", s.w.Stopped); v.Notes != want {
				t.Errorf("notes = %q; want %q", v.Notes, want)
			}
			// The name is the host's local time and ctime the same
			// instant, so they differ by the host's UTC offset: whole
			// quarter hours, at most 14 hours.
			stamp, _ := time.Parse("2006_01_02-15_04_05", m[3])
			offset := stamp.Sub(v.CTime.UTC().Truncate(time.Second))
			if offset%(15*time.Minute) != 0 || offset.Abs() > 14*time.Hour {
				t.Errorf("archive stamp %s and ctime %s differ by %s; want the host's UTC offset", m[3], v.CTime, offset)
			}
			if v.CTime.Before(before.Add(-time.Hour)) || v.CTime.After(time.Now().Add(time.Hour)) {
				t.Errorf("ctime %s; want about now", v.CTime)
			}
			for _, sv := range content {
				if sv.VMID != s.w.Stopped || sv.Content != "backup" {
					t.Errorf("StorageContent(backup, vmid %d) lists %+v", s.w.Stopped, sv)
				}
			}
			s.archive = volid
		},
	},
	{
		name: "vzdump-archive-of-failed-task",
		rule: "a task whose log names no \"creating vzdump archive '...'\" has no archive",
		run: func(t *testing.T, s *suite) {
			if s.failedTask.IsZero() {
				t.Skip("needs the failed task of case snapshot-name-taken")
			}
			if volid, err := s.c.VzdumpArchive(s.ctx, s.failedTask, s.w.BackupStorage); err == nil {
				t.Errorf("VzdumpArchive(failed snapshot task) = %q; want an error", volid)
			}
		},
	},
	{
		name:  "vzdump-permission-in-task",
		rule:  "vzdump checks VM.Backup per guest inside the worker: the task stops with \"Permission check failed (/vms/VMID, VM.Backup)\"",
		hooks: []string{"DenyAtTaskTime"},
		run: func(t *testing.T, s *suite) {
			s.w.DenyAtTaskTime(t, s.vm(s.w.Stopped), "VM.Backup")
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.Stopped}, Storage: s.w.BackupStorage})
			te := s.wantTaskError(t, "Vzdump", upid, err, fmt.Sprintf("Permission check failed (%s, VM.Backup)", s.vm(s.w.Stopped)))
			wantPermission(t, "Vzdump", te, s.vm(s.w.Stopped), "VM.Backup")
			if volid, err := s.c.VzdumpArchive(s.ctx, upid, s.w.BackupStorage); err == nil {
				s.archives = append(s.archives, volid)
				t.Errorf("VzdumpArchive(refused backup) = %q; want no archive", volid)
			}
			s.noRequest(t, "Vzdump(no guest)", "vmid", func(ctx context.Context) error {
				_, err := s.c.Vzdump(ctx, proxmox.VzdumpOptions{Storage: s.w.BackupStorage})
				return err
			})
		},
	},
}

// restoreCases restore the archive into Scratch: create, refuse, force,
// destroy.
var restoreCases = []testCase{
	{
		name: "restore",
		rule: "POST /nodes/{node}/lxc with restore=1 and ostemplate=<backup volid> starts a vzrestore task creating the guest from the archive's config",
		run: func(t *testing.T, s *suite) {
			if s.archive == "" {
				t.Skip("needs the archive of case vzdump")
			}
			upid, err := s.c.RestoreGuest(s.ctx, proxmox.RestoreOptions{VMID: s.w.Scratch, Archive: s.archive, Storage: s.w.GuestStorage})
			if err == nil {
				s.restored = true
			}
			s.mustDone(t, "RestoreGuest", upid, err)
			if upid.Type != "vzrestore" || upid.ID != itoa(s.w.Scratch) {
				t.Errorf("UPID %s; want type vzrestore, id %d", upid, s.w.Scratch)
			}
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Scratch)
			if err != nil {
				t.Fatalf("GuestConfig(%d): %v", s.w.Scratch, err)
			}
			if gc.Hostname != s.stoppedConfig.Hostname || !strings.HasPrefix(gc.RootFS.Volume, s.w.GuestStorage+":") || gc.Lock != "" {
				t.Errorf("restored config %+v; want hostname %q, rootfs on %s, no lock", gc, s.stoppedConfig.Hostname, s.w.GuestStorage)
			}
			st, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Scratch)
			if err != nil || st.Status != "stopped" {
				t.Errorf("GuestStatus(%d) = %+v, %v; want stopped", s.w.Scratch, st, err)
			}
			s.noRequest(t, "RestoreGuest(no archive)", "archive", func(ctx context.Context) error {
				_, err := s.c.RestoreGuest(ctx, proxmox.RestoreOptions{VMID: s.w.Scratch})
				return err
			})
		},
	},
	{
		name: "restore-exists",
		rule: "restoring over an existing guest without force dies at the request with 500 \"CT VMID already exists on node 'NODE'\"",
		run: func(t *testing.T, s *suite) {
			if !s.restored {
				t.Skip("needs the guest of case restore")
			}
			_, err := s.c.RestoreGuest(s.ctx, proxmox.RestoreOptions{VMID: s.w.Scratch, Archive: s.archive, Storage: s.w.GuestStorage})
			wantAPIError(t, "RestoreGuest", err, 500, fmt.Sprintf("CT %d already exists on node '%s'", s.w.Scratch, s.node))
		},
	},
	{
		name: "restore-force",
		rule: "force=1 overwrites an existing, stopped guest",
		run: func(t *testing.T, s *suite) {
			if !s.restored {
				t.Skip("needs the guest of case restore")
			}
			upid, err := s.c.RestoreGuest(s.ctx, proxmox.RestoreOptions{VMID: s.w.Scratch, Archive: s.archive, Storage: s.w.GuestStorage, Force: true, Unique: true})
			s.mustDone(t, "RestoreGuest(force)", upid, err)
			if gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Scratch); err != nil || gc.Hostname != s.stoppedConfig.Hostname {
				t.Errorf("GuestConfig(%d) = %+v, %v; want the archive's hostname %q", s.w.Scratch, gc, err, s.stoppedConfig.Hostname)
			}
		},
	},
	{
		name: "destroy",
		rule: "DELETE /nodes/{node}/lxc/{vmid} of a stopped guest starts a vzdestroy task; afterwards the guest does not exist",
		run: func(t *testing.T, s *suite) {
			if !s.restored {
				t.Skip("needs the guest of case restore")
			}
			upid, err := s.c.DeleteGuest(s.ctx, proxmox.LXC, s.w.Scratch, true)
			s.mustDone(t, "DeleteGuest", upid, err)
			if upid.Type != "vzdestroy" {
				t.Errorf("UPID type %q; want vzdestroy", upid.Type)
			}
			if _, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Scratch); !proxmox.IsNotFound(err) {
				t.Errorf("GuestStatus(%d) after destroy = %v; want not found", s.w.Scratch, err)
			}
			s.restored = false
		},
	},
	{
		name: "restore-raw-lxc-skipped",
		rule: "a token's restore of a container whose config had raw lxc.* keys leaves them out and warns naming each: " +
			"\"WARN: skipping custom lxc options, restore manually as root:\" then the keys between dashes, task WARNINGS: 1 " +
			"(pve-container src/PVE/LXC/Create.pm sanitize_and_merge_config; API2/LXC.pm restores them only for root@pam)",
		hooks: []string{"RawLXCGuest"},
		run: func(t *testing.T, s *suite) {
			if _, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Scratch); !proxmox.IsNotFound(err) {
				t.Skipf("guest %d is not free: %v", s.w.Scratch, err)
			}
			raw := rawLXC(t, s, s.w.RawLXCGuest)
			if len(raw) == 0 {
				t.Fatalf("guest %d has no raw lxc.* keys", s.w.RawLXCGuest)
			}
			upid, err := s.c.Vzdump(s.ctx, proxmox.VzdumpOptions{VMIDs: []int{s.w.RawLXCGuest}, Storage: s.w.BackupStorage})
			s.mustDone(t, "Vzdump", upid, err)
			archive, err := s.c.VzdumpArchive(s.ctx, upid, s.w.BackupStorage)
			if err != nil {
				t.Fatalf("VzdumpArchive: %v", err)
			}
			s.archives = append(s.archives, archive)
			upid, err = s.c.RestoreGuest(s.ctx, proxmox.RestoreOptions{VMID: s.w.Scratch, Archive: archive, Storage: s.w.GuestStorage})
			if err == nil {
				s.restored = true
			}
			st := s.mustDone(t, "RestoreGuest", upid, err)
			if st.ExitStatus != "WARNINGS: 1" {
				t.Errorf("restore exit %q; want WARNINGS: 1", st.ExitStatus)
			}
			log, err := s.c.TaskLog(s.ctx, upid, 0, 0)
			if err != nil {
				t.Fatalf("TaskLog: %v", err)
			}
			want := []string{"WARN: skipping custom lxc options, restore manually as root:", "--------------------------------"}
			for _, e := range raw {
				want = append(want, e[0]+": "+e[1])
			}
			want = append(want, "--------------------------------")
			i := slices.IndexFunc(log, func(l proxmox.LogLine) bool { return l.T == want[0] })
			if i < 0 || i+len(want) > len(log) {
				t.Fatalf("restore log lacks %q:\n%v", want[0], log)
			}
			for j, w := range want {
				if log[i+j].T != w {
					t.Errorf("restore log line %d = %q; want %q", i+j+1, log[i+j].T, w)
				}
			}
			if got := rawLXC(t, s, s.w.Scratch); len(got) != 0 {
				t.Errorf("restored guest %d has raw lxc keys %v; want none", s.w.Scratch, got)
			}
			upid, err = s.c.DeleteGuest(s.ctx, proxmox.LXC, s.w.Scratch, true)
			s.mustDone(t, "DeleteGuest", upid, err)
			s.restored = false
		},
	},
}

// rawLXC is guest vmid's config's "lxc" array as PVE sends it: [key,
// value] pairs (GuestConfig.Raw holds it as compact JSON).
func rawLXC(t *testing.T, s *suite, vmid int) [][2]string {
	t.Helper()
	gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, vmid)
	if err != nil {
		t.Fatalf("GuestConfig(%d): %v", vmid, err)
	}
	var pairs [][2]string
	if v, ok := gc.Raw["lxc"]; ok {
		if err := json.Unmarshal([]byte(v), &pairs); err != nil {
			t.Fatalf("guest %d: lxc = %s: %v", vmid, v, err)
		}
	}
	return pairs
}

// volumeCases delete the archive and a volume that is not there.
var volumeCases = []testCase{
	{
		name: "volume-notes",
		rule: "PUT /nodes/{node}/storage/{storage}/content/{volid} with notes sets a backup's notes synchronously: GET .../content/{volid} shows them whole, the listing only their first line (Plugin.pm file_read_firstline); empty notes remove them; anything but a backup is refused \"only backups can have notes\"",
		run: func(t *testing.T, s *suite) {
			if s.archive == "" {
				t.Skip("needs the archive of case vzdump")
			}
			listed := func() string {
				content, err := s.c.StorageContent(s.ctx, s.w.BackupStorage, "backup", s.w.Stopped)
				if err != nil {
					t.Fatalf("StorageContent: %v", err)
				}
				for _, v := range content {
					if v.VolID == s.archive {
						return v.Notes
					}
				}
				t.Fatalf("StorageContent does not list %s", s.archive)
				return ""
			}
			const notes = "felhom-drill: ok 2026-12-01T03:30:00Z\nthe operator's line"
			if err := s.c.SetVolumeNotes(s.ctx, s.archive, notes); err != nil {
				t.Fatalf("SetVolumeNotes: %v", err)
			}
			if got, err := s.c.VolumeNotes(s.ctx, s.archive); err != nil || got != notes {
				t.Errorf("VolumeNotes = %q, %v; want %q", got, err, notes)
			}
			if got := listed(); got != "felhom-drill: ok 2026-12-01T03:30:00Z" {
				t.Errorf("listed notes %q; want the first line only", got)
			}
			if err := s.c.SetVolumeNotes(s.ctx, s.archive, ""); err != nil {
				t.Fatalf("SetVolumeNotes(empty): %v", err)
			}
			if got, err := s.c.VolumeNotes(s.ctx, s.archive); err != nil || got != "" {
				t.Errorf("VolumeNotes after removing = %q, %v; want none", got, err)
			}
			if got := listed(); got != "" {
				t.Errorf("listed notes after removing %q; want none", got)
			}
			err := s.c.SetVolumeNotes(s.ctx, s.w.BackupStorage+":iso/felhom-conformance.iso", "x")
			wantAPIError(t, "SetVolumeNotes(iso)", err, 500, "only backups can have notes")
			s.noRequest(t, "SetVolumeNotes(no volid)", "volume", func(ctx context.Context) error {
				return s.c.SetVolumeNotes(ctx, "no-storage-here", "x")
			})
		},
	},
	{
		name: "delete-volume",
		rule: "DELETE /nodes/{node}/storage/{storage}/content/{volid} starts an imgdel task with id VMID@STORAGE; afterwards the archive is not listed",
		run: func(t *testing.T, s *suite) {
			if s.archive == "" {
				t.Skip("needs the archive of case vzdump")
			}
			upid, err := s.c.DeleteVolume(s.ctx, s.w.BackupStorage, s.archive)
			if err != nil {
				t.Fatalf("DeleteVolume: %v", err)
			}
			if !upid.IsZero() {
				s.mustDone(t, "DeleteVolume", upid, nil)
				if want := fmt.Sprintf("%d@%s", s.w.Stopped, s.w.BackupStorage); upid.Type != "imgdel" || upid.ID != want {
					t.Errorf("UPID %s; want type imgdel, id %s", upid, want)
				}
			}
			content, err := s.c.StorageContent(s.ctx, s.w.BackupStorage, "backup", 0)
			if err != nil {
				t.Fatalf("StorageContent: %v", err)
			}
			if slices.ContainsFunc(content, func(v proxmox.Volume) bool { return v.VolID == s.archive }) {
				t.Errorf("StorageContent still lists %s", s.archive)
			}
			s.noRequest(t, "DeleteVolume(other storage)", "volume", func(ctx context.Context) error {
				_, err := s.c.DeleteVolume(ctx, s.w.GuestStorage, s.archive)
				return err
			})
		},
	},
	{
		name: "delete-volume-missing-warns",
		rule: "deleting a backup file that is not there warns \"disk image '...' does not exist\": the task stops with \"WARNINGS: N\", which is a success",
		run: func(t *testing.T, s *suite) {
			volid := fmt.Sprintf("%s:backup/vzdump-lxc-%d-2000_01_01-00_00_00.tar.zst", s.w.BackupStorage, s.w.Scratch)
			upid, err := s.c.DeleteVolume(s.ctx, s.w.BackupStorage, volid)
			if err != nil {
				t.Fatalf("DeleteVolume(%s): %v", volid, err)
			}
			st, err := s.wait(upid)
			if err != nil {
				t.Fatalf("WaitTask = %+v, %v; want a success", st, err)
			}
			if !st.Succeeded() || st.Warnings() < 1 || st.ExitStatus != fmt.Sprintf("WARNINGS: %d", st.Warnings()) {
				t.Errorf("task status %+v; want WARNINGS: N with N >= 1, a success", st)
			}
		},
	},
}
