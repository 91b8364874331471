package proxmox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestMutations checks each mutation's request (method, path, parameters
// and their encoding) and that it returns the task's UPID, reporting it to
// the context's observer before anyone waits.
func TestMutations(t *testing.T) {
	tests := []struct {
		name     string
		route    string
		answer   http.HandlerFunc
		call     func(context.Context, *proxmox.Client) (proxmox.UPID, error)
		wantArgs url.Values // form of POST/PUT, query of DELETE
		wantUPID string     // "" for a synchronous change
		config   string     // when set, GET of container 101's config answers this data (a description change reads it first)
	}{
		{
			name: "restore", route: "POST /nodes/node1/lxc", answer: serveFile(t, "responses/lxc_create.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.RestoreGuest(ctx, proxmox.RestoreOptions{
					VMID: 9000, Archive: "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst",
					Storage: "local-lvm", Force: true, Unique: true, Hostname: "web-restored",
				})
			},
			wantArgs: url.Values{
				"vmid": {"9000"}, "ostemplate": {"usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"},
				"restore": {"1"}, "storage": {"local-lvm"}, "force": {"1"}, "unique": {"1"}, "hostname": {"web-restored"},
			},
			wantUPID: "UPID:node1:00007778:00007778:00007778:vzcreate:300:root@pam:",
		},
		{
			name: "restore minimal", route: "POST /nodes/node1/lxc", answer: serveFile(t, "responses/lxc_create.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.RestoreGuest(ctx, proxmox.RestoreOptions{Kind: proxmox.LXC, VMID: 101, Archive: "local:backup/vzdump-lxc-101.tar.zst", Start: true})
			},
			wantArgs: url.Values{"vmid": {"101"}, "ostemplate": {"local:backup/vzdump-lxc-101.tar.zst"}, "restore": {"1"}, "start": {"1"}},
			wantUPID: "UPID:node1:00007778:00007778:00007778:vzcreate:300:root@pam:",
		},
		{
			name: "vzdump some guests with defaults", route: "POST /nodes/node1/vzdump", answer: serveData(upidVzdump),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101, 102}, Storage: "usb-backup"})
			},
			wantArgs: url.Values{"vmid": {"101,102"}, "storage": {"usb-backup"}, "mode": {"snapshot"}, "compress": {"zstd"}, "remove": {"0"}},
			wantUPID: upidVzdump,
		},
		{
			name: "vzdump all", route: "POST /nodes/node1/vzdump", answer: serveData(upidVzdumpAll),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Vzdump(ctx, proxmox.VzdumpOptions{All: true, Storage: "usb-backup", Mode: "stop", Compress: "gzip", Notes: "{{guestname}} nightly", Remove: true})
			},
			wantArgs: url.Values{"all": {"1"}, "storage": {"usb-backup"}, "mode": {"stop"}, "compress": {"gzip"}, "notes-template": {"{{guestname}} nightly"}, "remove": {"1"}},
			wantUPID: upidVzdumpAll,
		},
		{
			name: "snapshot", route: "POST /nodes/node1/lxc/101/snapshot", answer: serveFile(t, "responses/lxc_snapshot_create.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "pre_upgrade-1", Description: "before apt upgrade"})
			},
			wantArgs: url.Values{"snapname": {"pre_upgrade-1"}, "description": {"before apt upgrade"}},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzsnapshot:101:root@pam:",
		},
		{
			name: "rollback", route: "POST /nodes/node1/lxc/101/snapshot/snapshot1/rollback", answer: serveFile(t, "responses/lxc_snapshot_rollback.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Rollback(ctx, proxmox.LXC, 101, "snapshot1")
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzrollback:101:root@pam:",
		},
		{
			name: "delete snapshot", route: "DELETE /nodes/node1/lxc/101/snapshot/snapshot1", answer: serveFile(t, "responses/lxc_snapshot_delete.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteSnapshot(ctx, proxmox.LXC, 101, "snapshot1")
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzdelsnapshot:101:root@pam:",
		},
		{
			name: "start", route: "POST /nodes/node1/lxc/101/status/start", answer: serveFile(t, "responses/lxc_status_start.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Start(ctx, proxmox.LXC, 101)
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzstart:101:root@pam:",
		},
		{
			name: "stop", route: "POST /nodes/node1/lxc/101/status/stop", answer: serveFile(t, "responses/lxc_status_stop.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Stop(ctx, proxmox.LXC, 101)
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzstop:101:root@pam:",
		},
		{
			name: "shutdown with timeout", route: "POST /nodes/node1/lxc/101/status/shutdown", answer: serveFile(t, "responses/lxc_status_shutdown.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Shutdown(ctx, proxmox.LXC, 101, 30)
			},
			wantArgs: url.Values{"timeout": {"30"}},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzshutdown:101:root@pam:",
		},
		{
			name: "shutdown with PVE's timeout", route: "POST /nodes/node1/lxc/101/status/shutdown", answer: serveFile(t, "responses/lxc_status_shutdown.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Shutdown(ctx, proxmox.LXC, 101, 0)
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzshutdown:101:root@pam:",
		},
		{
			name: "delete guest with purge", route: "DELETE /nodes/node1/lxc/101", answer: serveFile(t, "responses/lxc_delete.pve7x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteGuest(ctx, proxmox.LXC, 101, true)
			},
			wantArgs: url.Values{"purge": {"1"}},
			wantUPID: "UPID:node1:0031B740:0645340C:23E5BA99:vzdestroy:101:root@pam:",
		},
		{
			name: "delete guest", route: "DELETE /nodes/node1/lxc/101", answer: serveFile(t, "responses/lxc_delete.pve7x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteGuest(ctx, proxmox.LXC, 101, false)
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:0031B740:0645340C:23E5BA99:vzdestroy:101:root@pam:",
		},
		{
			name: "delete volume", route: "DELETE /nodes/node1/storage/local/content/local:backup/vzdump-qemu-100.vma.zst",
			answer: serveFile(t, "responses/storage_content_delete.pve9x_4.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteVolume(ctx, "local", "local:backup/vzdump-qemu-100.vma.zst")
			},
			wantArgs: url.Values{},
			wantUPID: "UPID:node1:00000012:00000012:00000012:imgdel:backup:root@pam:",
		},
		{
			name: "delete volume synchronously", route: "DELETE /nodes/node1/storage/local/content/local:iso/x.iso",
			answer: serveJSON(200, `{"data":null}`),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteVolume(ctx, "local", "local:iso/x.iso")
			},
			wantArgs: url.Values{},
		},
		{
			name: "set config is synchronous", route: "PUT /nodes/node1/lxc/101/config", answer: serveJSON(200, `{"data":null}`),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"memory": "2048", "description": "web, managed"}, []string{"mp1", "net1"})
			},
			config:   `{"description":"web\n","digest":"d1"}`,
			wantArgs: url.Values{"memory": {"2048"}, "description": {"web, managed"}, "delete": {"mp1,net1"}},
		},
		{
			// A container's guest-API identity line (identity.go) is kept
			// when a flow writes its description, under the digest read.
			name: "set config keeps the identity line", route: "PUT /nodes/node1/lxc/101/config", answer: serveJSON(200, `{"data":null}`),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"description": "web, managed"}, nil)
			},
			config:   `{"description":"web\nfelhom-guest-api: vmid=101 sha256=` + strings.Repeat("ab", 32) + `\n","digest":"d1"}`,
			wantArgs: url.Values{"description": {"web, managed\nfelhom-guest-api: vmid=101 sha256=" + strings.Repeat("ab", 32)}, "digest": {"d1"}},
		},
		{
			name: "set config answered with a task", route: "PUT /nodes/node1/lxc/101/config", answer: serveFile(t, "responses/lxc_config_put.pve9x.json"),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.SetConfig(ctx, proxmox.LXC, 101, nil, []string{"mp0"})
			},
			wantArgs: url.Values{"delete": {"mp0"}},
			wantUPID: "UPID:node1:00001234:00005678:5A3B7C8D:vzconfig:101:root@pam:",
		},
		// QEMU: the same operations below /qemu/ with qm* workers
		// (qemu-server PVE/API2/Qemu.pm); restore is POST /qemu with archive.
		{
			name: "restore a VM", route: "POST /nodes/node1/qemu", answer: serveData(upidQM("qmrestore", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.RestoreGuest(ctx, proxmox.RestoreOptions{
					VMID: 200, Archive: "usb-backup:backup/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst",
					Storage: "local-lvm", Force: true, Unique: true,
				})
			},
			wantArgs: url.Values{
				"vmid": {"200"}, "archive": {"usb-backup:backup/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst"},
				"storage": {"local-lvm"}, "force": {"1"}, "unique": {"1"},
			},
			wantUPID: upidQM("qmrestore", 200),
		},
		{
			name: "restore a container from PBS", route: "POST /nodes/node1/lxc", answer: serveData(upidQM("vzrestore", 130)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.RestoreGuest(ctx, proxmox.RestoreOptions{VMID: 130, Archive: "pbs-backup:backup/ct/101/2026-12-01T03:00:00Z", Storage: "local-lvm"})
			},
			wantArgs: url.Values{"vmid": {"130"}, "ostemplate": {"pbs-backup:backup/ct/101/2026-12-01T03:00:00Z"}, "restore": {"1"}, "storage": {"local-lvm"}},
			wantUPID: upidQM("vzrestore", 130),
		},
		{
			name: "VM snapshot with vmstate", route: "POST /nodes/node1/qemu/200/snapshot", answer: serveData(upidQM("qmsnapshot", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Snapshot(ctx, proxmox.QEMU, 200, proxmox.SnapshotOptions{Name: "before", VMState: true})
			},
			wantArgs: url.Values{"snapname": {"before"}, "vmstate": {"1"}},
			wantUPID: upidQM("qmsnapshot", 200),
		},
		{
			name: "VM rollback", route: "POST /nodes/node1/qemu/200/snapshot/before/rollback", answer: serveData(upidQM("qmrollback", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Rollback(ctx, proxmox.QEMU, 200, "before")
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("qmrollback", 200),
		},
		{
			name: "VM delete snapshot", route: "DELETE /nodes/node1/qemu/200/snapshot/before", answer: serveData(upidQM("qmdelsnapshot", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteSnapshot(ctx, proxmox.QEMU, 200, "before")
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("qmdelsnapshot", 200),
		},
		{
			name: "VM start", route: "POST /nodes/node1/qemu/201/status/start", answer: serveData(upidQM("qmstart", 201)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Start(ctx, proxmox.QEMU, 201)
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("qmstart", 201),
		},
		{
			name: "VM stop", route: "POST /nodes/node1/qemu/200/status/stop", answer: serveData(upidQM("qmstop", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Stop(ctx, proxmox.QEMU, 200)
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("qmstop", 200),
		},
		{
			name: "VM shutdown", route: "POST /nodes/node1/qemu/200/status/shutdown", answer: serveData(upidQM("qmshutdown", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Shutdown(ctx, proxmox.QEMU, 200, 120)
			},
			wantArgs: url.Values{"timeout": {"120"}},
			wantUPID: upidQM("qmshutdown", 200),
		},
		{
			name: "VM reboot", route: "POST /nodes/node1/qemu/200/status/reboot", answer: serveData(upidQM("qmreboot", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Reboot(ctx, proxmox.QEMU, 200)
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("qmreboot", 200),
		},
		{
			name: "container reboot", route: "POST /nodes/node1/lxc/101/status/reboot", answer: serveData(upidQM("vzreboot", 101)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.Reboot(ctx, proxmox.LXC, 101)
			},
			wantArgs: url.Values{},
			wantUPID: upidQM("vzreboot", 101),
		},
		{
			name: "VM destroy", route: "DELETE /nodes/node1/qemu/201", answer: serveData(upidQM("qmdestroy", 201)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.DeleteGuest(ctx, proxmox.QEMU, 201, true)
			},
			wantArgs: url.Values{"purge": {"1"}},
			wantUPID: upidQM("qmdestroy", 201),
		},
		{
			// The dual-mode rule per path: a VM's config POST forks qmconfig.
			name: "VM set config is a task", route: "POST /nodes/node1/qemu/200/config", answer: serveData(upidQM("qmconfig", 200)),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.SetConfig(ctx, proxmox.QEMU, 200, map[string]string{"net0": "virtio=BC:24:11:5A:02:00,bridge=vmbr0,link_down=1"}, nil)
			},
			wantArgs: url.Values{"net0": {"virtio=BC:24:11:5A:02:00,bridge=vmbr0,link_down=1"}},
			wantUPID: upidQM("qmconfig", 200),
		},
		{
			name: "VM set config answered null (background_delay)", route: "POST /nodes/node1/qemu/200/config", answer: serveJSON(200, `{"data":null}`),
			call: func(ctx context.Context, c *proxmox.Client) (proxmox.UPID, error) {
				return c.SetConfig(ctx, proxmox.QEMU, 200, nil, []string{"description"})
			},
			wantArgs: url.Values{"delete": {"description"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on(tt.route, tt.answer)
			if tt.config != "" {
				f.on("GET /nodes/node1/lxc/101/config", serveJSON(200, `{"data":`+tt.config+`}`))
			}
			rec := &recorder{}
			u, err := tt.call(proxmox.WithObserver(t.Context(), rec), fakeClient(t, f))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if u.String() != tt.wantUPID {
				t.Errorf("UPID = %q; want %q", u, tt.wantUPID)
			}
			if f.count(tt.route) != 1 {
				t.Fatalf("sent %+v; want one %s", f.Calls(), tt.route)
			}
			got := f.last()
			args := got.Query
			if got.Method == "POST" || got.Method == "PUT" {
				args = got.Form
				if got.ContentType != "application/x-www-form-urlencoded" || len(got.Query) != 0 {
					t.Errorf("content type %q, query %v; want a form body only", got.ContentType, got.Query)
				}
			}
			if !reflect.DeepEqual(args, tt.wantArgs) {
				t.Errorf("parameters = %v; want %v", args, tt.wantArgs)
			}
			var wantStarted []proxmox.UPID
			if tt.wantUPID != "" {
				wantStarted = []proxmox.UPID{u}
			}
			if !reflect.DeepEqual(rec.started, wantStarted) {
				t.Errorf("observer TaskStarted = %v; want %v", rec.started, wantStarted)
			}
		})
	}
}

// upidQM is a UPID of worker typ for guest vmid on node1.
func upidQM(typ string, vmid int) string {
	return fmt.Sprintf("UPID:node1:0000A1B2:0001C3D4:692D0A50:%s:%d:felhom-agent@pve!agent:", typ, vmid)
}

// TestDeleteVolumeEscapesVolid checks that a volid's "/" travels as one
// escaped path segment.
func TestDeleteVolumeEscapesVolid(t *testing.T) {
	const volid = "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"
	f := newFake(t).on("DELETE /nodes/node1/storage/usb-backup/content/"+volid, serveFile(t, "responses/storage_content_delete.pve9x_4.json"))
	if _, err := fakeClient(t, f).DeleteVolume(t.Context(), "usb-backup", volid); err != nil {
		t.Fatal(err)
	}
	if want := "/nodes/node1/storage/usb-backup/content/usb-backup:backup%2Fvzdump-lxc-101-2026_11_20-03_00_01.tar.zst"; f.last().EscapedPath != want {
		t.Errorf("escaped path = %q; want %q", f.last().EscapedPath, want)
	}
}

// TestMutationBadUPID checks that an answer that is not a UPID is an
// error, and an ambiguous one: PVE accepted the request, so a task may
// be running that cannot be followed.
func TestMutationBadUPID(t *testing.T) {
	tests := []struct {
		name   string
		answer http.HandlerFunc
		want   string
	}{
		{"truncated UPID", serveFile(t, "responses/lxc_status_start.pve7x.json"), "must end with ':'"},
		{"null", serveJSON(200, `{"data":null}`), "no task id"},
		{"not a string", serveJSON(200, `{"data":{"upid":"x"}}`), "not a task id"},
		{"broken envelope", serveJSON(200, `<html>`), "decoding response envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("POST /nodes/node1/lxc/101/status/start", tt.answer)
			rec := &recorder{}
			u, err := fakeClient(t, f).Start(proxmox.WithObserver(t.Context(), rec), proxmox.LXC, 101)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !proxmox.IsAmbiguous(err) {
				t.Errorf("error = %v; want an ambiguous error saying %q", err, tt.want)
			}
			if !u.IsZero() || len(rec.started) != 0 {
				t.Errorf("returned %v, reported %v; want no task", u, rec.started)
			}
		})
	}
	t.Run("vzdump UPID without id field", func(t *testing.T) {
		f := newFake(t).fixture("POST /nodes/node1/vzdump", "responses/vzdump.pve7x.json")
		_, err := fakeClient(t, f).Vzdump(t.Context(), proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "local"})
		if _, ok := errors.AsType[*proxmox.UPIDError](err); !ok {
			t.Errorf("error = %v; want a *UPIDError inside", err)
		}
	})
}

// TestMutationInputErrors checks that bad arguments are refused before any
// request, with an error naming the API parameter.
func TestMutationInputErrors(t *testing.T) {
	tests := []struct {
		name  string
		call  func(context.Context, *proxmox.Client) error
		param string
	}{
		{"restore vmid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.RestoreGuest(ctx, proxmox.RestoreOptions{Archive: "local:backup/x.tar.zst"})
			return err
		}, "vmid"},
		{"restore archive", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.RestoreGuest(ctx, proxmox.RestoreOptions{VMID: 101})
			return err
		}, "archive"},
		{"restore archive of unknown kind", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.RestoreGuest(ctx, proxmox.RestoreOptions{VMID: 101, Archive: "local:backup/x.tar.zst"})
			return err
		}, "archive"},
		{"restore hostname of a VM", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.RestoreGuest(ctx, proxmox.RestoreOptions{VMID: 200, Archive: "usb-backup:backup/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst", Hostname: "x"})
			return err
		}, "hostname"},
		{"vmstate of a container", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "before", VMState: true})
			return err
		}, "vmstate"},
		{"unknown guest kind", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Start(ctx, proxmox.GuestKind("openvz"), 101)
			return err
		}, "type"},
		{"restore storage", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.RestoreGuest(ctx, proxmox.RestoreOptions{Kind: proxmox.LXC, VMID: 101, Archive: "local:backup/x.tar.zst", Storage: "a/b"})
			return err
		}, "storage"},
		{"vzdump nothing", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{Storage: "local"})
			return err
		}, "vmid"},
		{"vzdump all and list", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{All: true, VMIDs: []int{101}, Storage: "local"})
			return err
		}, "vmid"},
		{"vzdump bad vmid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101, 7}, Storage: "local"})
			return err
		}, "vmid"},
		{"vzdump storage", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}})
			return err
		}, "storage"},
		{"vzdump mode", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "local", Mode: "live"})
			return err
		}, "mode"},
		{"vzdump compress", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{101}, Storage: "local", Compress: "xz"})
			return err
		}, "compress"},
		{"snapshot name", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: "1st", Description: ""})
			return err
		}, "snapname"},
		{"snapshot name too long", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Snapshot(ctx, proxmox.LXC, 101, proxmox.SnapshotOptions{Name: strings.Repeat("a", 41)})
			return err
		}, "snapname"},
		{"rollback traversal", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Rollback(ctx, proxmox.LXC, 101, "..")
			return err
		}, "snapname"},
		{"delete snapshot empty", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteSnapshot(ctx, proxmox.LXC, 101, "")
			return err
		}, "snapname"},
		{"start vmid", func(ctx context.Context, c *proxmox.Client) error { _, err := c.Start(ctx, proxmox.LXC, 0); return err }, "vmid"},
		{"stop vmid", func(ctx context.Context, c *proxmox.Client) error { _, err := c.Stop(ctx, proxmox.LXC, -1); return err }, "vmid"},
		{"shutdown timeout", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.Shutdown(ctx, proxmox.LXC, 101, -5)
			return err
		}, "timeout"},
		{"delete guest vmid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteGuest(ctx, proxmox.LXC, 42, true)
			return err
		}, "vmid"},
		{"delete volume storage", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteVolume(ctx, "", "local:iso/x.iso")
			return err
		}, "storage"},
		{"delete volume volid", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteVolume(ctx, "local", "x.iso")
			return err
		}, "volume"},
		{"delete volume other storage", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteVolume(ctx, "local", "usb-backup:backup/x.tar.zst")
			return err
		}, "volume"},
		{"delete volume without path", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.DeleteVolume(ctx, "local", "local:")
			return err
		}, "volume"},
		{"set config nothing", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.SetConfig(ctx, proxmox.LXC, 101, nil, nil)
			return err
		}, "set"},
		{"set config reserved key", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"delete": "mp0"}, nil)
			return err
		}, "set"},
		{"set config key set and deleted", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.SetConfig(ctx, proxmox.LXC, 101, map[string]string{"mp0": "x"}, []string{"mp0"})
			return err
		}, "delete"},
		{"set config delete list", func(ctx context.Context, c *proxmox.Client) error {
			_, err := c.SetConfig(ctx, proxmox.LXC, 101, nil, []string{"mp0,mp1"})
			return err
		}, "delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			err := tt.call(t.Context(), fakeClient(t, f))
			if err == nil || !strings.HasPrefix(err.Error(), "proxmox: "+tt.param+" ") {
				t.Errorf("error = %v; want one naming %q", err, tt.param)
			}
			if n := len(f.Calls()); n != 0 {
				t.Errorf("sent %d requests; want none", n)
			}
		})
	}
}
