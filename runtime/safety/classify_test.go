package safety

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// fakeFacts is a host with guests 100 (three backups) and 9999.
type fakeFacts struct{ fail bool }

func (f fakeFacts) GuestExists(_ context.Context, vmid int) (bool, error) {
	if f.fail {
		return false, errors.New("connection refused")
	}
	return vmid == 100 || vmid == 9999, nil
}

func (f fakeFacts) BackupStorages(context.Context) ([]string, error) {
	if f.fail {
		return nil, errors.New("connection refused")
	}
	return []string{"usb", "pbs"}, nil
}

func (f fakeFacts) StorageBackups(_ context.Context, storage string, vmid int) ([]proxmox.Volume, error) {
	if f.fail {
		return nil, errors.New("connection refused")
	}
	if vmid != 100 {
		return nil, nil
	}
	day := func(d int) time.Time { return time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC) }
	var out []proxmox.Volume
	for _, v := range []proxmox.Volume{
		{VolID: "usb:backup/vzdump-lxc-100-2026_11_28-03_00_00.tar.zst", VMID: 100, CTime: day(28)},
		{VolID: "usb:backup/vzdump-lxc-100-2026_11_30-03_00_00.tar.zst", VMID: 100, CTime: day(30)},
		{VolID: "pbs:backup/ct/100/2026-11-29T03:00:00Z", VMID: 100, CTime: day(29)},
	} {
		if strings.HasPrefix(v.VolID, storage+":") {
			out = append(out, v)
		}
	}
	return out, nil
}

func (f fakeFacts) MountPoint(_ context.Context, vmid int, key string) (string, error) {
	if vmid == 100 && key == "mp0" {
		return "local-lvm:vm-100-disk-1,mp=/data", nil
	}
	if vmid == 100 && key == "mp1" {
		return "/var/lib/felhom-agent/bootstrap/100,mp=/run/felhom,ro=1", nil
	}
	return "", nil
}

func (f fakeFacts) Retention(_ context.Context, storage string) (string, error) {
	switch storage {
	case "usb":
		return "keep-daily=7", nil
	case "thin":
		return "keep-last=0", nil
	}
	return "", nil
}

func mut(method, path string, kv ...string) proxmox.Mutation {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return proxmox.Mutation{Method: method, Path: path, Params: v}
}

// TestClassify: every classification rule, on a guest the run did not
// create (100), one it did (300, its create task recorded), the scratch
// guest (9999), and with min_backups 1 and 2.
func TestClassify(t *testing.T) {
	tests := []struct {
		name        string
		m           proxmox.Mutation
		min         int
		destructive bool
		rule        string
	}{
		{"create a new guest", mut("POST", "/nodes/pve/lxc", "vmid", "200", "ostemplate", "local:vztmpl/x.tar.zst"), 1, false, "create"},
		{"restore to a new guest", mut("POST", "/nodes/pve/lxc", "vmid", "200", "ostemplate", "usb:backup/a.tar.zst", "restore", "1"), 1, false, "create"},
		{"restore over a guest (force)", mut("POST", "/nodes/pve/lxc", "vmid", "100", "ostemplate", "usb:backup/a.tar.zst", "restore", "1", "force", "1"), 1, true, "overwrite-guest"},
		{"restore a VM over a guest (force)", mut("POST", "/nodes/pve/qemu", "vmid", "100", "archive", "usb:backup/a.vma.zst", "force", "1"), 1, true, "overwrite-guest"},
		{"restore over the run's own guest", mut("POST", "/nodes/pve/lxc", "vmid", "300", "restore", "1", "force", "1"), 1, false, "own-guest:overwrite-guest"},
		{"delete a guest", mut("DELETE", "/nodes/pve/lxc/100", "purge", "1"), 1, true, "delete-guest"},
		{"delete the run's own guest", mut("DELETE", "/nodes/pve/qemu/300", "purge", "1"), 1, false, "own-guest:delete-guest"},
		{"delete the scratch guest", mut("DELETE", "/nodes/pve/lxc/9999"), 1, false, "own-guest:delete-guest"},
		{"start", mut("POST", "/nodes/pve/lxc/100/status/start"), 1, false, "power"},
		{"stop", mut("POST", "/nodes/pve/qemu/100/status/stop"), 1, false, "power"},
		{"shutdown", mut("POST", "/nodes/pve/lxc/100/status/shutdown"), 1, false, "power"},
		{"unknown status action", mut("POST", "/nodes/pve/lxc/100/status/hibernate-forever"), 1, true, "unknown"},
		{"snapshot", mut("POST", "/nodes/pve/lxc/100/snapshot", "snapname", "s1"), 1, false, "snapshot"},
		{"rollback", mut("POST", "/nodes/pve/lxc/100/snapshot/s1/rollback"), 1, true, "rollback"},
		{"rollback to the run's own snapshot", mut("POST", "/nodes/pve/lxc/100/snapshot/mine/rollback"), 1, true, "rollback"},
		{"rollback the scratch guest", mut("POST", "/nodes/pve/lxc/9999/snapshot/s1/rollback"), 1, false, "own-guest:rollback"},
		{"delete a snapshot the run took", mut("DELETE", "/nodes/pve/lxc/100/snapshot/mine"), 1, false, "own-snapshot"},
		{"delete another snapshot", mut("DELETE", "/nodes/pve/lxc/100/snapshot/s1"), 1, true, "delete-snapshot"},
		{"an archive's notes", mut("PUT", "/nodes/pve/storage/usb/content/usb:backup/a.tar.zst", "notes", "felhom-drill: ok 2026-12-01T03:30:00Z"), 1, false, "volume-attributes"},
		{"protect an archive", mut("PUT", "/nodes/pve/storage/usb/content/usb:backup/a.tar.zst", "protected", "1"), 1, false, "volume-attributes"},
		{"unprotect an archive", mut("PUT", "/nodes/pve/storage/usb/content/usb:backup/a.tar.zst", "protected", "0"), 1, true, "unprotect-volume"},
		{"configure", mut("PUT", "/nodes/pve/lxc/100/config", "memory", "1024"), 1, false, "configure"},
		{"configure a VM, deleting a non-disk key", mut("POST", "/nodes/pve/qemu/100/config", "delete", "description"), 1, false, "configure"},
		{"detach a disk", mut("PUT", "/nodes/pve/lxc/100/config", "delete", "description,mp0"), 1, true, "detach-disk"},
		{"delete an unused disk", mut("POST", "/nodes/pve/qemu/100/config", "delete", "unused0"), 1, true, "detach-disk"},
		{"detach a disk of the run's own guest", mut("PUT", "/nodes/pve/lxc/300/config", "delete", "mp0"), 1, false, "own-guest:detach-disk"},
		{"backup without pruning", mut("POST", "/nodes/pve/vzdump", "vmid", "100", "storage", "usb", "remove", "0"), 1, false, "backup"},
		{"backup pruning within policy", mut("POST", "/nodes/pve/vzdump", "vmid", "100", "storage", "usb", "remove", "1"), 1, false, "prune-within-policy"},
		{"backup pruning below the minimum", mut("POST", "/nodes/pve/vzdump", "vmid", "100", "storage", "thin", "remove", "1"), 1, true, "prune-below-minimum"},
		{"backup with PVE's default prune", mut("POST", "/nodes/pve/vzdump", "vmid", "100", "storage", "local"), 1, false, "prune-within-policy"},
		{"prune below the minimum", mut("DELETE", "/nodes/pve/storage/usb/prunebackups", "prune-backups", "keep-last=1", "vmid", "100"), 2, true, "prune-below-minimum"},
		{"prune within policy", mut("DELETE", "/nodes/pve/storage/usb/prunebackups", "prune-backups", "keep-last=3"), 2, false, "prune-within-policy"},
		{"delete the oldest backup", mut("DELETE", "/nodes/pve/storage/usb/content/usb:backup/vzdump-lxc-100-2026_11_28-03_00_00.tar.zst"), 1, false, "prune-old-backup"},
		{"delete the newest backup", mut("DELETE", "/nodes/pve/storage/usb/content/usb:backup/vzdump-lxc-100-2026_11_30-03_00_00.tar.zst"), 1, true, "below-min-backups"},
		{"delete the second newest (PBS), min 2", mut("DELETE", "/nodes/pve/storage/pbs/content/pbs:backup/ct/100/2026-11-29T03:00:00Z"), 2, true, "below-min-backups"},
		{"delete the second newest (PBS), min 1", mut("DELETE", "/nodes/pve/storage/pbs/content/pbs:backup/ct/100/2026-11-29T03:00:00Z"), 1, false, "prune-old-backup"},
		{"delete the oldest, min 2: its own storage has one newer, PBS the other", mut("DELETE", "/nodes/pve/storage/usb/content/usb:backup/vzdump-lxc-100-2026_11_28-03_00_00.tar.zst"), 2, false, "prune-old-backup"},
		{"delete the oldest, min 3", mut("DELETE", "/nodes/pve/storage/usb/content/usb:backup/vzdump-lxc-100-2026_11_28-03_00_00.tar.zst"), 3, true, "below-min-backups"},
		{"delete a backup on a storage that holds none", mut("DELETE", "/nodes/pve/storage/thin/content/thin:backup/vzdump-lxc-100-2026_11_28-03_00_00.tar.zst"), 1, true, "unlisted-backup"},
		{"delete an unlisted backup", mut("DELETE", "/nodes/pve/storage/usb/content/usb:backup/vzdump-lxc-100-2020_01_01-00_00_00.tar.zst"), 1, true, "unlisted-backup"},
		{"delete a guest's disk", mut("DELETE", "/nodes/pve/storage/local-lvm/content/local-lvm:vm-100-disk-0"), 1, true, "delete-disk"},
		{"delete the run's own guest's disk", mut("DELETE", "/nodes/pve/storage/local-lvm/content/local-lvm:vm-300-disk-0"), 1, false, "own-guest:delete-disk"},
		{"delete a template", mut("DELETE", "/nodes/pve/storage/local/content/local:vztmpl/debian.tar.zst"), 1, true, "delete-volume"},
		{"stop the run's own task", mut("DELETE", "/nodes/pve/tasks/UPID:pve:00001234:00000001:692D6C00:vzdump:100:root@pam:"), 1, false, "stop-own-task"},
		{"stop another task", mut("DELETE", "/nodes/pve/tasks/UPID:pve:00009999:00000001:692D6C00:vzdump:100:root@pam:"), 1, true, "stop-other-task"},
		{"anything else", mut("POST", "/nodes/pve/disks/wipedisk", "disk", "/dev/sdb"), 1, true, "unknown"},
		{"a cluster-wide call", mut("PUT", "/cluster/options"), 1, true, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gate{}
			g.Remember([]proxmox.UPID{mustUPID(t, "UPID:pve:00001234:00000001:692D6C00:vzcreate:300:root@pam:"),
				mustUPID(t, "UPID:pve:00001234:00000001:692D6C00:vzdump:100:root@pam:")})
			g.snaps["100/mine"] = true
			c := &classifier{ctx: context.Background(), policy: Policy{MinBackups: tt.min, Scratch: []int{9999}}, rec: g, facts: fakeFacts{}}
			eff, err := c.classifyMutation(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if eff.Destructive != tt.destructive || eff.Rule != tt.rule {
				t.Errorf("classify(%s %s %v) = destructive %v, rule %q (%s); want %v, %q", tt.m.Method, tt.m.Path, tt.m.Params, eff.Destructive, eff.Rule, eff.What, tt.destructive, tt.rule)
			}
			if eff.What == "" {
				t.Error("no What")
			}
		})
	}
}

func TestClassifyRoot(t *testing.T) {
	c := &classifier{ctx: context.Background(), rec: &Gate{}, facts: fakeFacts{}}
	for _, tt := range []struct {
		op          proxmox.RootOp
		destructive bool
		rule        string
	}{
		{proxmox.RootOp{Op: "host.create_golden", VMID: 200}, false, "create"},
		{proxmox.RootOp{Op: "host.create_golden", VMID: 100}, true, "overwrite-guest"},
		{proxmox.RootOp{Op: "host.mount_usb", Argv: []string{"mount", "-o", "x", "UUID=1", "/mnt/felhom/usb"}}, false, "mount"},
		{proxmox.RootOp{Op: "host.attach_bootstrap", VMID: 100, Argv: []string{"pct", "set", "100", "--mp2", "/var/lib/felhom-agent/bootstrap/100,mp=/run/felhom,ro=1"}}, false, "attach-bootstrap"},
		{proxmox.RootOp{Op: "host.attach_bootstrap", VMID: 100, Argv: []string{"pct", "set", "100", "--mp1", "/var/lib/felhom-agent/bootstrap/100,mp=/run/felhom,ro=1"}}, false, "attach-bootstrap"},
		{proxmox.RootOp{Op: "host.attach_bootstrap", VMID: 100, Argv: []string{"pct", "set", "100", "--mp0", "/var/lib/felhom-agent/bootstrap/100,mp=/run/felhom,ro=1"}}, true, "detach-disk"},
		{proxmox.RootOp{Op: "host.format", Argv: []string{"mkfs.ext4", "/dev/sdb"}}, true, "unknown"},
	} {
		eff, err := c.classifyRoot(tt.op)
		if err != nil || eff.Destructive != tt.destructive || eff.Rule != tt.rule {
			t.Errorf("classifyRoot(%s %d) = %+v, %v; want destructive %v, rule %q", tt.op.Op, tt.op.VMID, eff, err, tt.destructive, tt.rule)
		}
	}
	// A fact that cannot be read: the gate refuses (unknown = destructive).
	c.facts = fakeFacts{fail: true}
	if _, err := c.classifyRoot(proxmox.RootOp{Op: "host.create_golden", VMID: 200}); err == nil {
		t.Error("classifyRoot with unreadable facts: no error")
	}
}

func mustUPID(t *testing.T, s string) proxmox.UPID {
	t.Helper()
	u, err := proxmox.ParseUPID(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
