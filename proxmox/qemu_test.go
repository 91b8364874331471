package proxmox_test

import (
	"reflect"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestQEMUReads checks the VM reads against bodies shaped after qemu-server
// (testdata/custom/qemu_*.json) and that Guests merges both kinds.
func TestQEMUReads(t *testing.T) {
	f := newFake(t).
		on("GET /nodes/node1/lxc", serveFile(t, "responses/lxc_list.pve9x.json")).
		on("GET /nodes/node1/qemu", serveFile(t, "custom/qemu_list.json")).
		on("GET /nodes/node1/qemu/200/config", serveFile(t, "custom/qemu_config.json")).
		on("GET /nodes/node1/qemu/200/snapshot", serveFile(t, "custom/qemu_snapshot_list.json")).
		on("GET /nodes/node1/storage/pbs-backup/content", serveFile(t, "custom/pbs_content.json"))
	c := fakeClient(t, f)
	ctx := t.Context()

	t.Run("guests of both kinds by vmid", func(t *testing.T) {
		gs, err := c.Guests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, g := range gs {
			got = append(got, string(g.Type)+"/"+itoa(g.VMID))
		}
		want := []string{"lxc/100", "lxc/101", "lxc/102", "qemu/200", "qemu/201", "qemu/9100"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("guests = %v; want %v", got, want)
		}
		vm := gs[3]
		if vm.Name != "app" || vm.Status != "running" || vm.Lock != "backup" || vm.CPUs != 4 || vm.Uptime != 86400 {
			t.Errorf("VM 200 = %+v", vm)
		}
		if !gs[5].Template {
			t.Errorf("VM 9100 template = false; want true")
		}
	})

	t.Run("config: typed fields, drives, nets", func(t *testing.T) {
		gc, err := c.GuestConfig(ctx, proxmox.QEMU, 200)
		if err != nil {
			t.Fatal(err)
		}
		if gc.Type != proxmox.QEMU || gc.Name != "app" || gc.Hostname != "" || gc.Cores != 4 || gc.Sockets != 1 ||
			gc.Memory != 8192 || gc.CPU != "x86-64-v2-AES" || gc.Machine != "q35" || gc.BIOS != "ovmf" ||
			gc.Boot != "order=scsi0;ide2;net0" || gc.Agent != "enabled=1,fstrim_cloned_disks=1" || !gc.OnBoot || gc.OSType != "l26" {
			t.Errorf("typed fields = %+v", gc)
		}
		if gc.RootFS.Volume != "" || gc.MountPoints != nil {
			t.Errorf("a VM has no rootfs or mount points: %+v %+v", gc.RootFS, gc.MountPoints)
		}
		d := gc.Drives["scsi0"]
		if d.Volume != "local-lvm:vm-200-disk-0" || d.Size != "64G" || d.Media != "disk" || d.Options["iothread"] != "1" {
			t.Errorf("scsi0 = %+v", d)
		}
		if cd := gc.Drives["ide2"]; cd.Volume != "none" || cd.Media != "cdrom" {
			t.Errorf("ide2 = %+v", cd)
		}
		if len(gc.Drives) != 3 {
			t.Errorf("drives = %v; want scsi0, ide2, efidisk0", gc.Drives)
		}
		n0, n1 := gc.Nets["net0"], gc.Nets["net1"]
		if n0.Model != "virtio" || n0.HWAddr != "BC:24:11:5A:02:00" || n0.Bridge != "vmbr0" || !n0.Firewall || n0.LinkDown {
			t.Errorf("net0 = %+v", n0)
		}
		if n1.Model != "e1000" || n1.Tag != 20 || !n1.LinkDown {
			t.Errorf("net1 = %+v", n1)
		}
	})

	t.Run("snapshots with vmstate", func(t *testing.T) {
		ss, err := c.Snapshots(ctx, proxmox.QEMU, 200)
		if err != nil {
			t.Fatal(err)
		}
		want := []proxmox.Snapshot{{Name: "before-upgrade", SnapTime: time.Unix(1764558000, 0).UTC(), VMState: true}}
		if !reflect.DeepEqual(ss, want) {
			t.Errorf("snapshots = %+v; want %+v", ss, want)
		}
	})

	t.Run("PBS content", func(t *testing.T) {
		vs, err := c.StorageContent(ctx, "pbs-backup", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 {
			t.Fatalf("got %d volumes; want 2", len(vs))
		}
		ct, vm := vs[0], vs[1]
		if ct.Format != "pbs-ct" || ct.Subtype != "lxc" || ct.Verification != "ok" || !ct.Protected || ct.Notes != "web" || ct.Encrypted != "" {
			t.Errorf("ct backup = %+v", ct)
		}
		if vm.Format != "pbs-vm" || vm.Subtype != "qemu" || vm.Verification != "" || vm.Protected || vm.Encrypted == "" {
			t.Errorf("vm backup = %+v", vm)
		}
	})
}

func TestArchiveKind(t *testing.T) {
	for _, tt := range []struct {
		volid string
		kind  proxmox.GuestKind
		vmid  int
	}{
		{"usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst", proxmox.LXC, 101},
		{"usb-backup:backup/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst", proxmox.QEMU, 200},
		{"local:backup/vzdump-openvz-105-2012_01_01-00_00_00.tgz", proxmox.LXC, 105},
		{"pbs-backup:backup/ct/101/2026-12-01T03:00:00Z", proxmox.LXC, 101},
		{"pbs-backup:backup/vm/200/2026-12-01T03:01:30Z", proxmox.QEMU, 200},
		{"pbs-backup:backup/host/pve/2026-12-01T03:01:30Z", "", 0},
		{"local:backup/other.tar.zst", "", 0},
		{"local:iso/vzdump-qemu-200-2026_11_19-03_01_30.vma.zst", "", 0},
		{"vzdump-qemu-200-2026_11_19-03_01_30.vma.zst", "", 0},
	} {
		k, vmid, ok := proxmox.ArchiveKind(tt.volid)
		if k != tt.kind || vmid != tt.vmid || ok != (tt.kind != "") {
			t.Errorf("ArchiveKind(%q) = %q, %d, %v; want %q, %d", tt.volid, k, vmid, ok, tt.kind, tt.vmid)
		}
	}
}

// itoa formats a guest id.
func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
