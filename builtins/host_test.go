package builtins

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestHostDisabled: without privileged operations every host function but
// enabled() fails with one message naming the function and the setting,
// and the sensors monitor says the same.
func TestHostDisabled(t *testing.T) {
	calls := map[string]string{
		"host.smart":         `host.smart("/dev/sda")`,
		"host.sensors":       `host.sensors()`,
		"host.mount_usb":     `host.mount_usb("0a1b", "/mnt/usb")`,
		"host.create_golden": `host.create_golden(9000, "local:vztmpl/d.tar.zst", "golden")`,
		"monitor.sensors":    `monitor.sensors()`,
	}
	for _, f := range HostTable.Funcs {
		if _, ok := calls["host."+f.Name]; !ok && f.Name != "enabled" {
			t.Errorf("host.%s is not covered", f.Name)
		}
	}
	for name, call := range calls {
		rig := newRig(t)
		rig.env.Host = nil
		_, err := runStar(t, rig.env, call)
		want := name + ": privileged operations are disabled (set privileged.enabled in the configuration)"
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%s: err = %v; want %q", call, err, want)
		}
		if slices.ContainsFunc(rig.log.all(), func(e string) bool { return strings.HasPrefix(e, "lock") }) {
			t.Errorf("%s: took a guest lock although nothing can run", call)
		}
	}
	rig := newRig(t)
	rig.env.Host = nil
	g, err := runStar(t, rig.env, `e = host.enabled()`)
	if err != nil || g["e"].String() != "False" {
		t.Errorf("host.enabled() = %v, %v; want False", g["e"], err)
	}
}

// TestCreateGoldenSpec: the arguments become the GoldenSpec, defaults
// included.
func TestCreateGoldenSpec(t *testing.T) {
	rig := newRig(t)
	_, err := runStar(t, rig.env, `
host.create_golden(9000, "local:vztmpl/debian-12.tar.zst", "golden")
host.create_golden(9001, "local:vztmpl/debian-12.tar.zst", "golden2", storage = "zfs", rootfs_gb = 16, cores = 4, memory = 2048, bridge = "vmbr1", unprivileged = False)
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []proxmox.GoldenSpec{
		{VMID: 9000, Template: "local:vztmpl/debian-12.tar.zst", Hostname: "golden", Storage: "local-lvm", RootFSGB: 8, Cores: 1, MemoryMB: 512, Bridge: "vmbr0", Unprivileged: true},
		{VMID: 9001, Template: "local:vztmpl/debian-12.tar.zst", Hostname: "golden2", Storage: "zfs", RootFSGB: 16, Cores: 4, MemoryMB: 2048, Bridge: "vmbr1", Unprivileged: false},
	}
	if !slices.Equal(rig.host.golden, want) {
		t.Errorf("CreateGoldenLXC specs\n%+v\nwant\n%+v", rig.host.golden, want)
	}
}

// TestHostErrorsPassThrough: a failing root command keeps its
// *proxmox.ExitError.
func TestHostErrorsPassThrough(t *testing.T) {
	rig := newRig(t)
	_, err := runStar(t, rig.env, `host.smart("/dev/sdq")`)
	ee, ok := errors.AsType[*proxmox.ExitError](err)
	if !ok || ee.Code != 2 {
		t.Errorf("err = %v; want *proxmox.ExitError with code 2", err)
	}
}
