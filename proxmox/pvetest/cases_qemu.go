package pvetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// qemuCases check what differs for a QEMU VM (World.StoppedVM), each after
// qemu-server PVE/API2/Qemu.pm and PVE/QemuServer.pm: the kinds' endpoints
// keep apart, a VM's config POST is a task, stopping a stopped VM is a
// task that does nothing, and a stopped VM's snapshot saves no RAM. Each
// case puts back what it changes.
var qemuCases = []testCase{
	{
		name:  "vm-kinds-apart",
		rule:  "a vmid names one guest of one kind: GET /nodes/{node}/qemu lists the VM, and the lxc endpoints answer for it 500 \"Configuration file 'nodes/NODE/lxc/VMID.conf' does not exist\"",
		hooks: []string{"StoppedVM"},
		run: func(t *testing.T, s *suite) {
			vm := s.w.StoppedVM
			gs, err := s.c.Guests(s.ctx)
			if err != nil {
				t.Fatalf("Guests: %v", err)
			}
			i := slices.IndexFunc(gs, func(g proxmox.Guest) bool { return g.VMID == vm })
			if i < 0 || gs[i].Type != proxmox.QEMU {
				t.Fatalf("Guests lists %d as %+v; want a qemu guest", vm, gs)
			}
			st, err := s.c.GuestStatus(s.ctx, proxmox.QEMU, vm)
			if err != nil || st.Status != "stopped" || st.Type != proxmox.QEMU {
				t.Fatalf("GuestStatus(qemu, %d) = %+v, %v; want a stopped VM", vm, st, err)
			}
			_, err = s.c.GuestStatus(s.ctx, proxmox.LXC, vm)
			wantAPIError(t, "GuestStatus(lxc) of a VM", err, 500, fmt.Sprintf("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", s.node, vm))
			wantKind(t, "GuestStatus(lxc) of a VM", err, "not_found")
		},
	},
	{
		name:  "vm-config-post-is-a-task",
		rule:  "POST /nodes/{node}/qemu/{vmid}/config forks a qmconfig worker and answers its UPID; the change reads back once it stops OK (the dual-mode rule per path)",
		hooks: []string{"StoppedVM"},
		run: func(t *testing.T, s *suite) {
			vm := s.w.StoppedVM
			before, err := s.c.GuestConfig(s.ctx, proxmox.QEMU, vm)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.w.caseTimeout())
				defer cancel()
				var upid proxmox.UPID
				var err error
				if before.Description == "" {
					upid, err = s.c.SetConfig(ctx, proxmox.QEMU, vm, nil, []string{"description"})
				} else {
					upid, err = s.c.SetConfig(ctx, proxmox.QEMU, vm, map[string]string{"description": strings.TrimSuffix(before.Description, "\n")}, nil)
				}
				if err == nil && !upid.IsZero() {
					_, err = s.c.WaitTask(ctx, upid, s.w.Wait)
				}
				if err != nil {
					t.Errorf("putting the description of VM %d back: %v", vm, err)
				}
			})
			marker := "felhom conformance " + s.snapName
			upid, err := s.c.SetConfig(s.ctx, proxmox.QEMU, vm, map[string]string{"description": marker}, nil)
			if err == nil && upid.IsZero() {
				t.Fatal("SetConfig of a VM answered null; want a qmconfig UPID")
			}
			s.mustDone(t, "SetConfig", upid, err)
			if upid.Type != "qmconfig" {
				t.Errorf("UPID type %q; want qmconfig", upid.Type)
			}
			after, err := s.c.GuestConfig(s.ctx, proxmox.QEMU, vm)
			if err != nil || after.Description != marker+"\n" {
				t.Errorf("description after the task = %q, %v; want %q", after.Description, err, marker+"\n")
			}
		},
	},
	{
		name:  "vm-stop-stopped",
		rule:  "stopping or shutting down a stopped VM is accepted (qmstop, qmshutdown) and the task stops OK doing nothing, where a container's is refused at the request",
		hooks: []string{"StoppedVM"},
		run: func(t *testing.T, s *suite) {
			vm := s.w.StoppedVM
			upid, err := s.c.Stop(s.ctx, proxmox.QEMU, vm)
			s.mustDone(t, "Stop", upid, err)
			if upid.Type != "qmstop" {
				t.Errorf("UPID type %q; want qmstop", upid.Type)
			}
			upid, err = s.c.Shutdown(s.ctx, proxmox.QEMU, vm, 0)
			s.mustDone(t, "Shutdown", upid, err)
			if st, err := s.c.GuestStatus(s.ctx, proxmox.QEMU, vm); err != nil || st.Status != "stopped" {
				t.Errorf("GuestStatus = %+v, %v; want still stopped", st, err)
			}
		},
	},
	{
		name:  "vm-snapshot-of-a-stopped-vm",
		rule:  "a qmsnapshot of a stopped VM with vmstate=1 saves no RAM: the snapshot lists vmstate 0; qmrollback and qmdelsnapshot then stop OK and leave the VM stopped",
		hooks: []string{"StoppedVM"},
		run: func(t *testing.T, s *suite) {
			vm, name := s.w.StoppedVM, s.snapName+"vm"
			upid, err := s.c.Snapshot(s.ctx, proxmox.QEMU, vm, proxmox.SnapshotOptions{Name: name, VMState: true})
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.w.caseTimeout())
				defer cancel()
				if snaps, err := s.c.Snapshots(ctx, proxmox.QEMU, vm); err == nil && slices.ContainsFunc(snaps, func(x proxmox.Snapshot) bool { return x.Name == name }) {
					if upid, err := s.c.DeleteSnapshot(ctx, proxmox.QEMU, vm, name); err == nil {
						_, _ = s.c.WaitTask(ctx, upid, s.w.Wait)
					}
				}
			})
			s.mustDone(t, "Snapshot", upid, err)
			if upid.Type != "qmsnapshot" {
				t.Errorf("UPID type %q; want qmsnapshot", upid.Type)
			}
			snaps, err := s.c.Snapshots(s.ctx, proxmox.QEMU, vm)
			i := slices.IndexFunc(snaps, func(x proxmox.Snapshot) bool { return x.Name == name })
			if err != nil || i < 0 || snaps[i].VMState {
				t.Fatalf("Snapshots = %+v, %v; want %s without vmstate", snaps, err, name)
			}
			upid, err = s.c.Rollback(s.ctx, proxmox.QEMU, vm, name)
			s.mustDone(t, "Rollback", upid, err)
			upid, err = s.c.DeleteSnapshot(s.ctx, proxmox.QEMU, vm, name)
			s.mustDone(t, "DeleteSnapshot", upid, err)
			if st, err := s.c.GuestStatus(s.ctx, proxmox.QEMU, vm); err != nil || st.Status != "stopped" {
				t.Errorf("GuestStatus = %+v, %v; want stopped", st, err)
			}
		},
	},
}
