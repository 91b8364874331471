package pvetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// missingCases check how a guest or task that does not exist is refused.
var missingCases = []testCase{
	{
		name: "missing-guest-reads",
		rule: "reading a guest that does not exist dies with 500 \"Configuration file 'nodes/NODE/lxc/VMID.conf' does not exist\"; IsNotFound",
		run: func(t *testing.T, s *suite) {
			msg := fmt.Sprintf("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", s.node, s.w.Scratch)
			for _, r := range []struct {
				what string
				call func() error
			}{
				{"GuestStatus", func() error { _, err := s.c.GuestStatus(s.ctx, proxmox.LXC, s.w.Scratch); return err }},
				{"GuestConfig", func() error { _, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Scratch); return err }},
				{"Snapshots", func() error { _, err := s.c.Snapshots(s.ctx, proxmox.LXC, s.w.Scratch); return err }},
			} {
				err := r.call()
				wantAPIError(t, r.what, err, 500, msg)
				if !proxmox.IsNotFound(err) {
					t.Errorf("%s: IsNotFound(%v) = false", r.what, err)
				}
				wantKind(t, r.what, err, "not_found")
			}
		},
	},
	{
		name: "missing-guest-mutations",
		rule: "destroying a missing guest dies at the request; a snapshot of one fails inside its task; both say the config file does not exist (IsNotFound)",
		run: func(t *testing.T, s *suite) {
			msg := fmt.Sprintf("Configuration file 'nodes/%s/lxc/%d.conf' does not exist", s.node, s.w.Scratch)
			_, err := s.c.DeleteGuest(s.ctx, proxmox.LXC, s.w.Scratch, false)
			wantAPIError(t, "DeleteGuest", err, 500, msg)
			if !proxmox.IsNotFound(err) {
				t.Errorf("DeleteGuest: IsNotFound(%v) = false", err)
			}
			upid, err := s.c.Snapshot(s.ctx, proxmox.LXC, s.w.Scratch, proxmox.SnapshotOptions{Name: s.snapName, Description: ""})
			te := s.wantTaskError(t, "Snapshot", upid, err, msg)
			if !proxmox.IsNotFound(te) {
				t.Errorf("Snapshot: IsNotFound(%v) = false", te)
			}
		},
	},
	{
		name: "missing-task",
		rule: "a well-formed UPID of no task answers 400 with errors {upid: \"no such task\"}; IsNotFound",
		run: func(t *testing.T, s *suite) {
			ghost := proxmox.UPID{Node: s.node, PID: 0x7ffffff0, PStart: 1, StartTime: time.Unix(946684800, 0),
				Type: "vzsnapshot", ID: itoa(s.w.Scratch), User: "root@pam"}
			_, err := s.c.TaskStatusOnce(s.ctx, ghost)
			ae := wantAPIError(t, "TaskStatusOnce", err, 400, "Parameter verification failed.")
			if ae.Errors["upid"] != "no such task" {
				t.Errorf("TaskStatusOnce: errors = %q; want upid: no such task", ae.Errors)
			}
			if !proxmox.IsNotFound(err) {
				t.Errorf("TaskStatusOnce: IsNotFound(%v) = false", err)
			}
			s.noRequest(t, "TaskStatusOnce(zero UPID)", "upid", func(ctx context.Context) error {
				_, err := s.c.TaskStatusOnce(ctx, proxmox.UPID{})
				return err
			})
		},
	},
}

// configCases check PUT .../config: synchronous, description read back
// with a newline, per-parameter 400s, permission and lock refusals.
var configCases = []testCase{
	{
		name: "setconfig-synchronous",
		rule: "PUT /nodes/{node}/lxc/{vmid}/config is applied synchronously and returns null (no task); the description reads back with a trailing newline",
		run: func(t *testing.T, s *suite) {
			upid, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"description": "felhom conformance"}, nil)
			if err != nil {
				t.Fatalf("SetConfig: %v", err)
			}
			if !upid.IsZero() {
				t.Fatalf("SetConfig returned UPID %s; want the zero UPID (PVE answers null)", upid)
			}
			if st, err := s.wait(upid); err != nil || st.Status != "stopped" || st.ExitStatus != "OK" {
				t.Errorf("WaitTask(zero UPID) = %+v, %v; want stopped OK at once", st, err)
			}
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			if gc.Description != "felhom conformance\n" {
				t.Errorf("description = %q; want %q", gc.Description, "felhom conformance\n")
			}
		},
	},
	{
		name: "description-lines",
		rule: "a description is stored as '#' lines; each line reads back followed by a newline, trailing blank lines dropped, and ':' and '%' survive",
		run: func(t *testing.T, s *suite) {
			if _, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"description": "a: 100%\nb\n\n"}, nil); err != nil {
				t.Fatalf("SetConfig: %v", err)
			}
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			if want := "a: 100%\nb\n"; gc.Description != want {
				t.Errorf("description = %q; want %q", gc.Description, want)
			}
		},
	},
	{
		name: "setconfig-bad-value",
		rule: "a value of the wrong type answers 400 \"Parameter verification failed.\" with errors {memory: \"type check ('integer') failed - got 'abc'\"}",
		run: func(t *testing.T, s *suite) {
			_, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"memory": "abc"}, nil)
			ae := wantAPIError(t, "SetConfig(memory=abc)", err, 400, "Parameter verification failed.")
			if want := "type check ('integer') failed - got 'abc'"; ae.Errors["memory"] != want {
				t.Errorf("errors = %q; want memory: %q", ae.Errors, want)
			}
			wantKind(t, "SetConfig(memory=abc)", err, "api")
		},
	},
	{
		name: "setconfig-unknown-key",
		rule: "an unknown parameter answers 400 with \"property is not defined in schema and the schema does not allow additional properties\"",
		run: func(t *testing.T, s *suite) {
			_, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"felhomnosuchkey": "1"}, nil)
			ae := wantAPIError(t, "SetConfig(unknown key)", err, 400, "Parameter verification failed.")
			if want := "property is not defined in schema and the schema does not allow additional properties"; ae.Errors["felhomnosuchkey"] != want {
				t.Errorf("errors = %q; want felhomnosuchkey: %q", ae.Errors, want)
			}
			s.noRequest(t, "SetConfig(nothing)", "set", func(ctx context.Context) error {
				_, err := s.c.SetConfig(ctx, proxmox.LXC, s.w.Stopped, nil, nil)
				return err
			})
		},
	},
	{
		name:  "setconfig-permission",
		rule:  "a request whose privilege is missing answers 403 \"Permission check failed (/vms/VMID, VM.Config.Options)\"; ParsePermission names path and privilege",
		hooks: []string{"DenyAtRequest"},
		run: func(t *testing.T, s *suite) {
			s.w.DenyAtRequest(t, s.vm(s.w.Stopped), "VM.Config.Options")
			_, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"description": "denied"}, nil)
			msg := fmt.Sprintf("Permission check failed (%s, VM.Config.Options)", s.vm(s.w.Stopped))
			ae := wantAPIError(t, "SetConfig", err, 403, msg)
			if ae.Permission == nil {
				t.Fatalf("APIError.Permission = nil for %q", ae.Message)
			}
			wantPermission(t, "SetConfig", err, s.vm(s.w.Stopped), "VM.Config.Options")
		},
	},
	{
		name:  "setconfig-locked",
		rule:  "a config change of a locked guest dies with 500 \"CT is locked (backup)\" — no vmid in the text; IsLocked names the lock",
		hooks: []string{"LockGuest"},
		run: func(t *testing.T, s *suite) {
			s.w.LockGuest(t, s.w.Stopped, "backup")
			_, err := s.c.SetConfig(s.ctx, proxmox.LXC, s.w.Stopped, map[string]string{"description": "locked"}, nil)
			wantAPIError(t, "SetConfig", err, 500, "CT is locked (backup)")
			if lock, ok := proxmox.IsLocked(err); !ok || lock != "backup" {
				t.Errorf("IsLocked(%v) = %q, %v; want backup, true", err, lock, ok)
			}
			wantKind(t, "SetConfig", err, "lock")
			gc, err := s.c.GuestConfig(s.ctx, proxmox.LXC, s.w.Stopped)
			if err != nil {
				t.Fatalf("GuestConfig: %v", err)
			}
			if gc.Lock != "backup" || strings.Contains(gc.Description, "locked") {
				t.Errorf("config lock %q, description %q; want lock backup and the change refused", gc.Lock, gc.Description)
			}
		},
	},
}
