package proxmox

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// validatorTests lists, per validator, values it must accept and refuse.
// The same values seed FuzzPrivilegedArgv.
var validatorTests = []struct {
	name  string
	check func(string) error
	good  []string
	bad   []string
}{
	{
		name:  "uuid",
		check: func(v string) error { return checkUUID("t", v) },
		good:  []string{"3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "3F1C2D4E-5A6B-4C7D-8E9F-0A1B2C3D4E5F", "ABCD-1234", "abcd-12ef", "0123456789ABCDEF"},
		bad: []string{"", "-", "--bind", "ABCD1234", "ABCD-123", "ABCD-12345", "0123456789ABCDEF0", "g123-4567",
			"3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5", "3f1c2d4e5a6b4c7d8e9f0a1b2c3d4e5f", "ABCD-1234\n", "ABCD-1234 /etc", "ABCD-1234,x"},
	},
	{
		name:  "device",
		check: func(v string) error { return checkDevice("t", v) },
		good:  []string{"/dev/sda", "/dev/sdz", "/dev/sdaa", "/dev/nvme0n1", "/dev/nvme10n12", "/dev/hdb"},
		bad: []string{"", "sda", "/dev/sda1", "/dev/sdaaa", "/dev/nvme0", "/dev/nvme0n1p1", "/dev/nvme100n1", "/dev/../sda",
			"/dev/disk/by-id/x", "/dev/sda ", "-a", "/dev/SDA", "/dev/sda\n", "/dev/md0", "/dev/dm-0"},
	},
	{
		name:  "hostname",
		check: func(v string) error { return checkHostname("t", v) },
		good:  []string{"a", "golden", "Docker-01", "1x", strings.Repeat("a", 63)},
		bad:   []string{"", "-a", "a-", "a.b", "a_b", "a b", strings.Repeat("a", 64), "a\n"},
	},
	{
		name:  "storage",
		check: func(v string) error { return checkStorage("t", "storage", v) },
		good:  []string{"local", "local-lvm", "zfs_pool.a", "nas1"},
		bad:   []string{"", "a", "Local", "1local", "local-", "-local", "local:8", "local lvm", "local,mp=/"},
	},
	{
		name:  "template",
		check: func(v string) error { return checkTemplate("t", v) },
		good: []string{"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "nas.x:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
			"local:vztmpl/a.tar.gz", "local:vztmpl/c++.tar.gz"},
		bad: []string{"", "local:vztmpl/x.tar.bz2", "local:iso/x.tar.gz", "local:vztmpl/.tar.gz", "local:vztmpl/../x.tar.gz",
			"local:vztmpl/a/b.tar.gz", "-local:vztmpl/a.tar.gz", "/var/lib/vz/template/cache/a.tar.gz", "local:vztmpl/a..b.tar.gz",
			"local:vztmpl/a b.tar.gz", "L:vztmpl/a.tar.gz"},
	},
	{
		name:  "bridge",
		check: func(v string) error { return checkBridge("t", v) },
		good:  []string{"vmbr0", "vmbr9999", "vnet1", "a", "abcdefghijklmno"},
		bad:   []string{"", "vmbr0,firewall=0", "vmbr0.100", "Vmbr0", "0vmbr", "abcdefghijklmnop", "-x", "vmbr 0"},
	},
	{
		name:  "mount target",
		check: func(v string) error { return checkMountTarget("t", DefaultMountPrefix, v) },
		good:  []string{"/mnt/felhom/a", "/mnt/felhom/usb-backup", "/mnt/felhom/a/b/c", "/mnt/felhom/.hidden", "/mnt/felhom/a..b"},
		bad: []string{"", "/", "/mnt/felhom", "/mnt/felhom/", "/mnt/felhom/a/", "/mnt/felhom//a", "/mnt/felhom/./a", "/mnt/felhom/..",
			"/mnt/felhom/a/../b", "/mnt/felhom/...", "/mnt/felhomx", "/mnt/felhomx/a", "/etc", "mnt/felhom/a", "-o", "/mnt/felhom/a b",
			"/mnt/felhom/a\x00", "/mnt/felhom/" + strings.Repeat("a", 256)},
	},
}

func TestValidators(t *testing.T) {
	for _, tt := range validatorTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range tt.good {
				if err := tt.check(v); err != nil {
					t.Errorf("check(%q) = %v; want nil", v, err)
				}
			}
			for _, v := range tt.bad {
				err := tt.check(v)
				if err == nil {
					t.Errorf("check(%q) = nil; want an error", v)
					continue
				}
				// The error names the operation and the value.
				if !strings.HasPrefix(err.Error(), "t: ") || !strings.Contains(err.Error(), strconv.Quote(v)) {
					t.Errorf("check(%q) = %q; want it to start with the op and name the value", v, err)
				}
			}
		})
	}
}

func TestCheckVMID(t *testing.T) {
	for _, v := range []int{100, 101, 9000, 999999999} {
		if err := checkVMID("t", v); err != nil {
			t.Errorf("checkVMID(%d) = %v; want nil", v, err)
		}
	}
	for _, v := range []int{-1, 0, 99, 1000000000, -100} {
		if err := checkVMID("t", v); err == nil {
			t.Errorf("checkVMID(%d) = nil; want an error", v)
		}
	}
}

// fixedFlags are the only argv elements that may start with "-".
var fixedFlags = map[string]bool{
	"-o": true, "--json": true, "-a": true, "-j": true, "--hostname": true, "--cores": true, "--memory": true,
	"--rootfs": true, "--net0": true, "--features": true, "--unprivileged": true,
}

// FuzzPrivilegedArgv drives every operation with arbitrary arguments. The
// validators must never panic, and whatever reaches the runner must be a
// well-formed argv: no element starting with "-" except our fixed flags, no
// NUL or newline, and a mount target strictly below the prefix.
func FuzzPrivilegedArgv(f *testing.F) {
	f.Add(9000, testTemplate, "golden", "local-lvm", "vmbr0", 8, 1, 512, true, "ABCD-1234", "/mnt/felhom/a", "/dev/sda")
	f.Add(99, "-x", "-h", "-s", "-b", -1, -1, -1, false, "-o", "-t", "-d")
	for _, tt := range validatorTests {
		for _, v := range append(tt.good, tt.bad...) {
			f.Add(100, v, v, v, v, 0, 0, 0, false, v, v, v)
		}
	}
	f.Fuzz(func(t *testing.T, vmid int, template, hostname, storage, bridge string, rootfs, cores, mem int, unpriv bool,
		uuid, target, device string) {
		r := &recordingRunner{out: []byte(`{}`)}
		p := newTestPrivileged(t, r)
		ctx := context.Background()
		_ = p.CreateGoldenLXC(ctx, GoldenSpec{VMID: vmid, Template: template, Hostname: hostname, Storage: storage,
			RootFSGB: rootfs, Cores: cores, MemoryMB: mem, Bridge: bridge, Unprivileged: unpriv})
		if got, err := p.MountUSBByUUID(ctx, uuid, target); err == nil {
			if !strings.HasPrefix(got, DefaultMountPrefix+"/") || strings.Contains(got, "..") || got != target {
				t.Errorf("mount path %q escapes %s", got, DefaultMountPrefix)
			}
		}
		_, _ = p.SMART(ctx, device)
		for _, argv := range r.calls {
			for i, a := range argv {
				if strings.HasPrefix(a, "-") && !fixedFlags[a] {
					t.Errorf("argv %q: element %d %q starts with '-'", argv, i, a)
				}
				if strings.ContainsAny(a, "\x00\n\r") {
					t.Errorf("argv %q: element %d %q contains NUL or a line break", argv, i, a)
				}
				if a == "" {
					t.Errorf("argv %q: element %d is empty", argv, i)
				}
			}
			if argv[0] == "mount" && !strings.HasPrefix(argv[len(argv)-1], DefaultMountPrefix+"/") {
				t.Errorf("mount argv %q: target not below %s", argv, DefaultMountPrefix)
			}
			if sudoersAllows(t, argv) == "" {
				t.Errorf("argv %q passed validation but deploy/sudoers does not allow it", argv)
			}
		}
	})
}
