package pvetest

import (
	"context"
	"fmt"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// powerCases check start, stop, shutdown and destroy against the run
// state, which PVE checks at the request.
var powerCases = []testCase{
	{
		name: "start-running",
		rule: "starting a running container dies at the request with 500 \"CT VMID already running\"",
		run: func(t *testing.T, s *suite) {
			_, err := s.c.Start(s.ctx, proxmox.LXC, s.w.Running)
			wantAPIError(t, "Start", err, 500, fmt.Sprintf("CT %d already running", s.w.Running))
			wantKind(t, "Start", err, "api")
		},
	},
	{
		name: "stop-stopped",
		rule: "stopping or shutting down a stopped container dies at the request with 500 \"CT VMID not running\"",
		run: func(t *testing.T, s *suite) {
			msg := fmt.Sprintf("CT %d not running", s.w.Stopped)
			_, err := s.c.Stop(s.ctx, proxmox.LXC, s.w.Stopped)
			wantAPIError(t, "Stop", err, 500, msg)
			_, err = s.c.Shutdown(s.ctx, proxmox.LXC, s.w.Stopped, 0)
			wantAPIError(t, "Shutdown", err, 500, msg)
			s.noRequest(t, "Shutdown(timeout -1)", "timeout", func(ctx context.Context) error {
				_, err := s.c.Shutdown(ctx, proxmox.LXC, s.w.Running, -1)
				return err
			})
		},
	},
	{
		name: "reboot-stopped",
		rule: "rebooting a stopped container dies at the request with 500 \"VM VMID not running\" (pve-container src/PVE/API2/LXC/Status.pm vm_reboot says VM, not CT)",
		run: func(t *testing.T, s *suite) {
			_, err := s.c.Reboot(s.ctx, proxmox.LXC, s.w.Stopped)
			wantAPIError(t, "Reboot", err, 500, fmt.Sprintf("VM %d not running", s.w.Stopped))
		},
	},
	{
		name: "destroy-running",
		rule: "destroying a running container without force dies at the request with 500 \"unable to destroy CT VMID - container is running\"",
		run: func(t *testing.T, s *suite) {
			_, err := s.c.DeleteGuest(s.ctx, proxmox.LXC, s.w.Running, false)
			wantAPIError(t, "DeleteGuest", err, 500, fmt.Sprintf("unable to destroy CT %d - container is running", s.w.Running))
		},
	},
	{
		name: "stop-start",
		rule: "vzstop, vzstart and vzshutdown tasks change the run state once they stop OK",
		run: func(t *testing.T, s *suite) {
			status := func(want string) {
				t.Helper()
				st, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Running)
				if err != nil {
					t.Fatalf("GuestStatus: %v", err)
				}
				if st.Status != want {
					t.Fatalf("guest %d is %s; want %s", s.w.Running, st.Status, want)
				}
			}
			for _, step := range []struct {
				name   string
				typ    string
				call   func(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)
				status string
			}{
				{"Stop", "vzstop", s.c.Stop, "stopped"},
				{"Start", "vzstart", s.c.Start, "running"},
				{"Shutdown", "vzshutdown", func(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error) {
					return s.c.Shutdown(ctx, kind, vmid, 60)
				}, "stopped"},
				{"Start", "vzstart", s.c.Start, "running"},
			} {
				upid, err := step.call(s.ctx, proxmox.LXC, s.w.Running)
				s.mustDone(t, step.name, upid, err)
				if upid.Type != step.typ {
					t.Errorf("%s: UPID type %q; want %q", step.name, upid.Type, step.typ)
				}
				status(step.status)
			}
		},
	},
}
