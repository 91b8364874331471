package proxmox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingRunner records every argv and answers with canned output. It is
// the Runner a Privileged gets in these tests: nothing runs for real.
type recordingRunner struct {
	mu    sync.Mutex
	calls [][]string
	ctxs  []context.Context
	out   []byte
	err   error
	block bool // wait for ctx to end, then return its error
}

func (r *recordingRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(argv))
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	if r.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return r.out, r.err
}

func (r *recordingRunner) argv(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) != 1 {
		t.Fatalf("runner called %d times, want 1: %q", len(r.calls), r.calls)
	}
	return r.calls[0]
}

func (r *recordingRunner) called() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls) > 0
}

func newTestPrivileged(t *testing.T, r Runner) *Privileged {
	t.Helper()
	p, err := NewPrivileged(PrivilegedConfig{}, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "privileged", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const testTemplate = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"

func TestPrivilegedCreateGoldenLXCArgv(t *testing.T) {
	tests := []struct {
		name string
		spec GoldenSpec
		want []string
	}{
		{
			name: "defaults",
			spec: GoldenSpec{VMID: 9000, Template: testTemplate, Hostname: "golden", Storage: "local-lvm"},
			want: []string{"pct", "create", "9000", testTemplate,
				"--hostname", "golden", "--cores", "1", "--memory", "512", "--rootfs", "local-lvm:8",
				"--net0", "name=eth0,bridge=vmbr0,ip=dhcp", "--features", "keyctl=1,nesting=1", "--unprivileged", "0"},
		},
		{
			name: "everything set",
			spec: GoldenSpec{VMID: 123456, Template: "nas.backup:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
				Hostname: "docker-1", Storage: "zfs_pool.a", RootFSGB: 32, Cores: 4, MemoryMB: 4096,
				Bridge: "vmbr12", Unprivileged: true},
			want: []string{"pct", "create", "123456", "nas.backup:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz",
				"--hostname", "docker-1", "--cores", "4", "--memory", "4096", "--rootfs", "zfs_pool.a:32",
				"--net0", "name=eth0,bridge=vmbr12,ip=dhcp", "--features", "keyctl=1,nesting=1", "--unprivileged", "1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordingRunner{}
			if err := newTestPrivileged(t, r).CreateGoldenLXC(context.Background(), tt.spec); err != nil {
				t.Fatal(err)
			}
			if got := r.argv(t); !slices.Equal(got, tt.want) {
				t.Errorf("argv = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestPrivilegedCreateGoldenLXCRefused(t *testing.T) {
	good := GoldenSpec{VMID: 9000, Template: testTemplate, Hostname: "golden", Storage: "local-lvm"}
	tests := []struct {
		name   string
		change func(*GoldenSpec)
		want   string
	}{
		{"vmid low", func(s *GoldenSpec) { s.VMID = 99 }, `host.create_golden: vmid "99" is not in 100..999999999`},
		{"vmid high", func(s *GoldenSpec) { s.VMID = 1000000000 }, `vmid "1000000000"`},
		{"template option", func(s *GoldenSpec) { s.Template = "--mp0=/,mp=/host" }, `template "--mp0=/,mp=/host" is not an OS template volid`},
		{"template iso", func(s *GoldenSpec) { s.Template = "local:iso/debian.iso" }, `template "local:iso/debian.iso"`},
		{"template subdir", func(s *GoldenSpec) { s.Template = "local:vztmpl/../x.tar.gz" }, `template`},
		{"hostname option", func(s *GoldenSpec) { s.Hostname = "-x" }, `hostname "-x" is not a DNS label`},
		{"hostname dotted", func(s *GoldenSpec) { s.Hostname = "a.b" }, `hostname "a.b"`},
		{"hostname empty", func(s *GoldenSpec) { s.Hostname = "" }, `hostname ""`},
		{"storage upper", func(s *GoldenSpec) { s.Storage = "Local" }, `storage "Local" is not a PVE storage id`},
		{"storage colon", func(s *GoldenSpec) { s.Storage = "local:8,mp=/" }, `storage "local:8,mp=/"`},
		{"rootfs negative", func(s *GoldenSpec) { s.RootFSGB = -1 }, `rootfs_gb "-1" is not in 1..65536`},
		{"cores too many", func(s *GoldenSpec) { s.Cores = 8193 }, `cores "8193" is not in 1..8192`},
		{"memory too small", func(s *GoldenSpec) { s.MemoryMB = 8 }, `memory_mb "8" is not in 16..16777216`},
		{"bridge injection", func(s *GoldenSpec) { s.Bridge = "vmbr0,firewall=0" }, `bridge "vmbr0,firewall=0" is not a bridge name`},
		{"bridge too long", func(s *GoldenSpec) { s.Bridge = "abcdefghijklmnop" }, `bridge "abcdefghijklmnop"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := good
			tt.change(&spec)
			r := &recordingRunner{}
			err := newTestPrivileged(t, r).CreateGoldenLXC(context.Background(), spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CreateGoldenLXC(%+v) = %v; want error containing %q", spec, err, tt.want)
			}
			if _, ok := errors.AsType[*ArgError](err); !ok {
				t.Errorf("error %v is not an *ArgError", err)
			}
			if r.called() {
				t.Errorf("runner was called for a refused spec")
			}
		})
	}
}

func TestPrivilegedCreateGoldenLXCFailure(t *testing.T) {
	r := &recordingRunner{err: &ExitError{Argv: []string{"pct"}, Code: 255, Stderr: "CT 9000 already exists on node 'pve'\n"}}
	err := newTestPrivileged(t, r).CreateGoldenLXC(context.Background(),
		GoldenSpec{VMID: 9000, Template: testTemplate, Hostname: "golden", Storage: "local-lvm"})
	ee, ok := errors.AsType[*ExitError](err)
	if !ok || ee.Code != 255 {
		t.Fatalf("err = %v; want the *ExitError wrapped", err)
	}
	if want := "host.create_golden: pct create 9000: pct exited 255: CT 9000 already exists"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q; want prefix %q", err, want)
	}
}

func TestPrivilegedMountUSBByUUID(t *testing.T) {
	tests := []struct {
		uuid, target string
		want         []string // nil: refused with wantErr
		wantErr      string
	}{
		{uuid: "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", target: "/mnt/felhom/usb-backup",
			want: []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "/mnt/felhom/usb-backup"}},
		{uuid: "ABCD-1234", target: "/mnt/felhom/disks/stick_1.v2",
			want: []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "/mnt/felhom/disks/stick_1.v2"}},
		{uuid: "0123456789ABCDEF", target: "/mnt/felhom/ntfs",
			want: []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=0123456789ABCDEF", "/mnt/felhom/ntfs"}},
		{uuid: "-o remount", target: "/mnt/felhom/x", wantErr: `host.mount_usb: uuid "-o remount" is not a filesystem UUID`},
		{uuid: "abcd-12345", target: "/mnt/felhom/x", wantErr: `uuid "abcd-12345"`},
		{uuid: "ABCD-1234", target: "/mnt/felhom", wantErr: `host.mount_usb: target "/mnt/felhom" is not below the mount prefix /mnt/felhom`},
		{uuid: "ABCD-1234", target: "/mnt/felhomx/a", wantErr: `target "/mnt/felhomx/a" is not below`},
		{uuid: "ABCD-1234", target: "/etc", wantErr: `target "/etc" is not below`},
		{uuid: "ABCD-1234", target: "/mnt/felhom/../../etc", wantErr: `is not a clean path (want "/etc")`},
		{uuid: "ABCD-1234", target: "/mnt/felhom/a/", wantErr: `is not a clean path`},
		{uuid: "ABCD-1234", target: "mnt/felhom/a", wantErr: `is not an absolute path`},
		{uuid: "ABCD-1234", target: "/mnt/felhom/a b", wantErr: `has a component "a b"`},
		{uuid: "ABCD-1234", target: "/mnt/felhom/a,b", wantErr: `has a component "a,b"`},
		{uuid: "ABCD-1234", target: "/mnt/felhom/a\nb", wantErr: `has a component`},
	}
	for _, tt := range tests {
		t.Run(tt.uuid+" "+tt.target, func(t *testing.T) {
			r := &recordingRunner{}
			got, err := newTestPrivileged(t, r).MountUSBByUUID(context.Background(), tt.uuid, tt.target)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("MountUSBByUUID(%q, %q) = %v; want error containing %q", tt.uuid, tt.target, err, tt.wantErr)
				}
				if r.called() {
					t.Errorf("runner was called for refused arguments")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.target {
				t.Errorf("mount path = %q; want %q", got, tt.target)
			}
			if argv := r.argv(t); !slices.Equal(argv, tt.want) {
				t.Errorf("argv = %q; want %q", argv, tt.want)
			}
		})
	}
}

func TestPrivilegedMountPrefix(t *testing.T) {
	r := &recordingRunner{}
	p, err := NewPrivileged(PrivilegedConfig{MountPrefix: "/srv/usb"}, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.MountUSBByUUID(context.Background(), "ABCD-1234", "/mnt/felhom/a"); err == nil {
		t.Errorf("mount below the default prefix was accepted with prefix /srv/usb")
	}
	if _, err := p.MountUSBByUUID(context.Background(), "ABCD-1234", "/srv/usb/a"); err != nil {
		t.Errorf("mount below /srv/usb: %v", err)
	}
}

func TestPrivilegedMountFailure(t *testing.T) {
	r := &recordingRunner{err: &ExitError{Argv: []string{"mount"}, Code: 32, Stderr: "mount: /mnt/felhom/a: can't find UUID=ABCD-1234.\n"}}
	_, err := newTestPrivileged(t, r).MountUSBByUUID(context.Background(), "ABCD-1234", "/mnt/felhom/a")
	want := "host.mount_usb: mount UUID=ABCD-1234 on /mnt/felhom/a: mount exited 32: mount: /mnt/felhom/a: can't find UUID=ABCD-1234."
	if err == nil || err.Error() != want {
		t.Errorf("err = %v; want %q", err, want)
	}
}

func TestPrivilegedSMART(t *testing.T) {
	exit := func(code int) error { return &ExitError{Argv: []string{"smartctl"}, Code: code} }
	tests := []struct {
		name    string
		device  string
		out     string // fixture
		err     error
		want    SMARTReport
		wantErr string
	}{
		{name: "ata", device: "/dev/sda", out: "smartctl_ata.json",
			want: SMARTReport{Device: "/dev/sda", Model: "Samsung SSD 870 EVO 1TB", Serial: "S6PUNX0T123456A",
				Passed: true, Temperature: 34, PowerOnHours: 17520, Reallocated: 3}},
		{name: "nvme", device: "/dev/nvme0n1", out: "smartctl_nvme.json",
			want: SMARTReport{Device: "/dev/nvme0n1", Model: "WD Red SN700 500GB", Serial: "22165X800123",
				Passed: true, Temperature: 41, PowerOnHours: 9012, Reallocated: 2}},
		{name: "failing disk keeps the report", device: "/dev/sdb", out: "smartctl_failing.json", err: exit(8 | 64),
			want: SMARTReport{Device: "/dev/sdb", Model: "WDC WD20EZRZ-00Z5HB0", Serial: "WD-WCC4M1234567",
				Passed: false, Temperature: 39, PowerOnHours: 43210, Reallocated: 1832, ExitStatus: 72}},
		{name: "command failed bit is not fatal", device: "/dev/sda", out: "smartctl_ata.json", err: exit(4),
			want: SMARTReport{Device: "/dev/sda", Model: "Samsung SSD 870 EVO 1TB", Serial: "S6PUNX0T123456A",
				Passed: true, Temperature: 34, PowerOnHours: 17520, Reallocated: 3, ExitStatus: 4}},
		{name: "open failed", device: "/dev/sdz", out: "smartctl_open_failed.json", err: exit(2),
			wantErr: "host.smart: /dev/sdz: Smartctl open device: /dev/sdz failed: No such device: smartctl exited 2"},
		{name: "command line bit", device: "/dev/sda", err: exit(1 | 64),
			wantErr: "host.smart: /dev/sda: smartctl exited 65"},
		{name: "killed", device: "/dev/sda", out: "smartctl_ata.json", err: exit(-1),
			wantErr: "smartctl exited -1"},
		{name: "not json", device: "/dev/sda",
			wantErr: "host.smart: /dev/sda: smartctl output is not smartctl JSON"},
		{name: "runner error", device: "/dev/sda", err: errors.New("exec: smartctl: no such file"),
			wantErr: "host.smart: /dev/sda: exec: smartctl: no such file"},
		{name: "partition refused", device: "/dev/sda1", wantErr: `host.smart: device "/dev/sda1" is not a whole-disk device`},
		{name: "option refused", device: "-d", wantErr: `device "-d"`},
		{name: "by-id refused", device: "/dev/disk/by-id/ata-X", wantErr: `device "/dev/disk/by-id/ata-X"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordingRunner{err: tt.err}
			if tt.out != "" {
				r.out = fixture(t, tt.out)
			}
			got, err := newTestPrivileged(t, r).SMART(context.Background(), tt.device)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("SMART(%q) = %+v, %v; want error containing %q", tt.device, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SMART(%q) = %+v; want %+v", tt.device, got, tt.want)
			}
			if argv, want := r.argv(t), []string{"smartctl", "--json", "-a", tt.device}; !slices.Equal(argv, want) {
				t.Errorf("argv = %q; want %q", argv, want)
			}
		})
	}
}

func TestPrivilegedSensors(t *testing.T) {
	r := &recordingRunner{out: fixture(t, "sensors.json")}
	got, err := newTestPrivileged(t, r).Sensors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []SensorReading{
		{"acpitz-acpi-0", "ACPI interface", "temp1", 27.8, 0, 119},
		{"coretemp-isa-0000", "ISA adapter", "Core 0", 45, 80, 100},
		{"coretemp-isa-0000", "ISA adapter", "Core 1", 44, 80, 100},
		{"coretemp-isa-0000", "ISA adapter", "Package id 0", 47, 80, 100},
		{"nct6798-isa-0290", "ISA adapter", "SYSTIN", 31, 80, 0},
		{"nvme-pci-0100", "PCI adapter", "Composite", 40.85, 81.85, 84.85},
		{"nvme-pci-0100", "PCI adapter", "Sensor 1", 40.85, 65261.85, 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Sensors() =\n%+v\nwant\n%+v", got, want)
	}
	if argv, want := r.argv(t), []string{"sensors", "-j"}; !slices.Equal(argv, want) {
		t.Errorf("argv = %q; want %q", argv, want)
	}
}

func TestPrivilegedSensorsErrors(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		err     error
		wantErr string
	}{
		{"no sensors", "", &ExitError{Argv: []string{"sensors"}, Code: 1, Stderr: "No sensors found!\n"}, "host.sensors: sensors exited 1: No sensors found!"},
		{"not json", "coretemp-isa-0000\nAdapter: ISA adapter\n", nil, "host.sensors: sensors output is not lm-sensors JSON"},
		{"chip not an object", `{"x": 1}`, nil, "not lm-sensors JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordingRunner{out: []byte(tt.out), err: tt.err}
			got, err := newTestPrivileged(t, r).Sensors(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Sensors() = %v, %v; want error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestParseSensorsSkipsNonNumbers(t *testing.T) {
	out := `{"k10temp-pci-00c3": {"Adapter": "PCI adapter", "Tctl": {"temp1_input": null, "temp1_max": 70},
		"Tccd1": {"temp3_input": 51.25, "temp3_crit": "n/a"}, "bogus": 3}, "empty": {}}`
	got, err := ParseSensors([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []SensorReading{{"k10temp-pci-00c3", "PCI adapter", "Tccd1", 51.25, 0, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSensors = %+v; want %+v", got, want)
	}
}

// TestPrivilegedContextPassedThrough checks each operation hands its ctx to
// the runner and that a cancellation comes back as the ctx's error.
func TestPrivilegedContextPassedThrough(t *testing.T) {
	type key struct{}
	ops := map[string]func(context.Context, *Privileged) error{
		"create": func(ctx context.Context, p *Privileged) error {
			return p.CreateGoldenLXC(ctx, GoldenSpec{VMID: 9000, Template: testTemplate, Hostname: "g", Storage: "local-lvm"})
		},
		"mount": func(ctx context.Context, p *Privileged) error {
			_, err := p.MountUSBByUUID(ctx, "ABCD-1234", "/mnt/felhom/a")
			return err
		},
		"smart": func(ctx context.Context, p *Privileged) error {
			_, err := p.SMART(ctx, "/dev/sda")
			return err
		},
		"sensors": func(ctx context.Context, p *Privileged) error {
			_, err := p.Sensors(ctx)
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			r := &recordingRunner{block: true}
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, name))
			done := make(chan error, 1)
			go func() { done <- op(ctx, newTestPrivileged(t, r)) }()
			cancel()
			err := <-done
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v; want context.Canceled wrapped", err)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.ctxs) != 1 || r.ctxs[0].Value(key{}) != name {
				t.Errorf("runner did not get the operation's context")
			}
		})
	}
}

func TestPrivilegedConfigValidate(t *testing.T) {
	tests := []struct {
		prefix  string
		wantErr string
	}{
		{"", ""},
		{"/mnt/felhom", ""},
		{"/srv/usb-disks", ""},
		{"/", `privileged.mount_prefix: "/" would allow mounting over the whole system`},
		{"mnt/felhom", `privileged.mount_prefix: "mnt/felhom" is not an absolute path`},
		{"/mnt/felhom/", `is not a clean path`},
		{"/mnt/../etc", `is not a clean path`},
		{"/mnt/fel hom", `has a component "fel hom"`},
	}
	for _, tt := range tests {
		c := PrivilegedConfig{MountPrefix: tt.prefix}
		err := c.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("Validate(%q) = %v; want nil", tt.prefix, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Validate(%q) = %v; want error containing %q", tt.prefix, err, tt.wantErr)
		}
		if _, err := NewPrivileged(c, &recordingRunner{}); err == nil {
			t.Errorf("NewPrivileged accepted mount prefix %q", tt.prefix)
		}
	}
}

func TestNewPrivilegedDefaults(t *testing.T) {
	p, err := NewPrivileged(PrivilegedConfig{Sudo: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.MountPrefix() != DefaultMountPrefix {
		t.Errorf("MountPrefix() = %q; want %q", p.MountPrefix(), DefaultMountPrefix)
	}
	if er, ok := p.run.(*ExecRunner); !ok || !er.Sudo {
		t.Errorf("nil runner became %#v; want an *ExecRunner with Sudo", p.run)
	}
}

// hostOps is builtins.HostOps, restated here because proxmox may not
// import builtins; it keeps the signatures the host module calls.
type hostOps interface {
	CreateGoldenLXC(ctx context.Context, spec GoldenSpec) error
	MountUSBByUUID(ctx context.Context, uuid, target string) (string, error)
	SMART(ctx context.Context, device string) (SMARTReport, error)
	Sensors(ctx context.Context) ([]SensorReading, error)
}

var _ hostOps = (*Privileged)(nil)

func FuzzParseSMART(f *testing.F) {
	for _, name := range []string{"smartctl_ata.json", "smartctl_nvme.json", "smartctl_failing.json", "smartctl_open_failed.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"ata_smart_attributes":{"table":[{"id":5,"raw":{"value":-1}}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := ParseSMART(out)
		if err != nil && r != (SMARTReport{}) {
			t.Errorf("ParseSMART returned %+v with error %v", r, err)
		}
	})
}

func FuzzParseSensors(f *testing.F) {
	f.Add(fixture(f, "sensors.json"))
	f.Add([]byte(`{"c": {"Adapter": 1, "l": {"temp99999999999999999999_input": 1}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, out []byte) {
		rs, err := ParseSensors(out)
		if err != nil {
			return
		}
		sorted := slices.IsSortedFunc(rs, func(a, b SensorReading) int {
			if c := strings.Compare(a.Chip, b.Chip); c != 0 {
				return c
			}
			return strings.Compare(a.Label, b.Label)
		})
		if !sorted {
			t.Errorf("readings not sorted by chip and label: %+v", rs)
		}
	})
}

// TestMountRefusesSymlinks: a symbolic link under the prefix would carry
// the mount elsewhere, so it is refused before anything runs.
func TestMountRefusesSymlinks(t *testing.T) {
	prefix := t.TempDir()
	if err := os.Mkdir(filepath.Join(prefix, "usb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(prefix, "usb", "evil")); err != nil {
		t.Fatal(err)
	}
	rec := &recordingRunner{}
	p, err := NewPrivileged(PrivilegedConfig{MountPrefix: prefix}, rec)
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "7c0e2f3a-5b1d-4e8f-9a6c-2d4b8e1f0a37"
	for target, wantErr := range map[string]string{
		prefix + "/usb/evil":        "passes through the symbolic link " + prefix + "/usb/evil",
		prefix + "/usb/evil/inside": "passes through the symbolic link " + prefix + "/usb/evil",
		prefix + "/usb/fresh":       "",
		prefix + "/usb":             "",
	} {
		_, err := p.MountUSBByUUID(context.Background(), uuid, target)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("MountUSBByUUID(%s) = %v; want success", target, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("MountUSBByUUID(%s) = %v; want an error containing %q", target, err, wantErr)
		}
	}
	for _, argv := range rec.calls {
		if strings.Contains(strings.Join(argv, " "), "evil") {
			t.Errorf("ran %q through a symbolic link", argv)
		}
	}
}

// rootGate is an Observer and MutationGate that records what it is asked.
type rootGate struct {
	refuse error
	asked  []string
}

func (g *rootGate) Request(RequestInfo)                               {}
func (g *rootGate) TaskStarted(UPID)                                  {}
func (g *rootGate) TaskWaited(UPID, time.Duration, TaskStatus, error) {}
func (g *rootGate) BeforeMutation(_ context.Context, m Mutation) error {
	g.asked = append(g.asked, m.Method+" "+m.Path)
	return g.refuse
}

var _ MutationGate = (*rootGate)(nil)

// TestPrivilegedGated: the fenced commands that change the host ask the
// context's MutationGate first, with their command line; a refusal runs
// nothing and is ErrNotSent wrapping the gate's error. Reads are not
// gated: they change nothing a record must hold.
func TestPrivilegedGated(t *testing.T) {
	full := errors.New("run store: database or disk is full")
	ops := []struct {
		name, want string
		do         func(ctx context.Context, p *Privileged) error
	}{
		{"golden", "EXEC pct create 9100 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst --hostname golden --cores 1 --memory 512 --rootfs local-lvm:8 --net0 name=eth0,bridge=vmbr0,ip=dhcp --features keyctl=1,nesting=1 --unprivileged 0",
			func(ctx context.Context, p *Privileged) error {
				return p.CreateGoldenLXC(ctx, GoldenSpec{VMID: 9100, Template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", Hostname: "golden", Storage: "local-lvm"})
			}},
		{"mount", "EXEC mount -o nodev,nosuid,noexec UUID=ABCD-1234 /mnt/felhom/a",
			func(ctx context.Context, p *Privileged) error {
				_, err := p.MountUSBByUUID(ctx, "ABCD-1234", "/mnt/felhom/a")
				return err
			}},
		{"attach", "EXEC pct set 101 --mp255 /var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=1",
			func(ctx context.Context, p *Privileged) error {
				return p.AttachReadOnly(ctx, 101, 255, DefaultBootstrapRoot+"/101", BootstrapMountPath)
			}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			r := &recordingRunner{}
			g := &rootGate{}
			if err := op.do(WithObserver(context.Background(), g), newTestPrivileged(t, r)); err != nil {
				t.Fatalf("with an approving gate: %v", err)
			}
			if !r.called() || !slices.Equal(g.asked, []string{op.want}) {
				t.Fatalf("gate asked %q, runner called %v; want %q asked, then the command run", g.asked, r.called(), op.want)
			}

			r = &recordingRunner{}
			g = &rootGate{refuse: full}
			err := op.do(WithObserver(context.Background(), g), newTestPrivileged(t, r))
			if !errors.Is(err, ErrNotSent) || !errors.Is(err, full) || !strings.HasPrefix(err.Error(), "host.") {
				t.Errorf("with a refusing gate: %v; want a host.* error wrapping ErrNotSent and the gate's error", err)
			}
			if r.called() {
				t.Errorf("a refused %s ran %q", op.name, r.calls)
			}
		})
	}

	r := &recordingRunner{out: fixture(t, "smartctl_ata.json")}
	g := &rootGate{refuse: full}
	if _, err := newTestPrivileged(t, r).SMART(WithObserver(context.Background(), g), "/dev/sda"); err != nil || len(g.asked) != 0 {
		t.Errorf("SMART under a refusing gate: %v, gate asked %q; want the read run, ungated", err, g.asked)
	}
}

func TestAttachReadOnlyRefuses(t *testing.T) {
	r := &recordingRunner{}
	p := newTestPrivileged(t, r)
	ctx := t.Context()
	root := DefaultBootstrapRoot
	for _, c := range []struct {
		vmid, slot     int
		hostDir, guest string
		want           string
	}{
		{99, 0, root + "/99", BootstrapMountPath, `vmid "99" is not in 100..999999999`},
		{101, 256, root + "/101", BootstrapMountPath, `slot "256" is not in 0..255`},
		{101, -1, root + "/101", BootstrapMountPath, `slot "-1"`},
		{101, 9, root + "/102", BootstrapMountPath, `host_dir "` + root + `/102" is not ` + root + `/101`},
		{101, 9, root + "/101/../../../../etc", BootstrapMountPath, `host_dir`},
		{101, 9, "/etc", BootstrapMountPath, `host_dir "/etc"`},
		{101, 9, root + "/101", "/etc", `guest_path "/etc" is not /etc/felhom-bootstrap`},
		{101, 9, root + "/101", BootstrapMountPath + ",ro=0", `guest_path`},
	} {
		err := p.AttachReadOnly(ctx, c.vmid, c.slot, c.hostDir, c.guest)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "host.attach_bootstrap: ") {
			t.Errorf("AttachReadOnly(%d, %d, %q, %q) = %v; want %q", c.vmid, c.slot, c.hostDir, c.guest, err, c.want)
		}
	}
	if len(r.calls) != 0 {
		t.Errorf("refused attachments ran %q", r.calls)
	}
	if err := p.AttachReadOnly(ctx, 101, 9, root+"/101", BootstrapMountPath); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.calls[0], " "); got != "pct set 101 --mp9 "+root+"/101,mp=/etc/felhom-bootstrap,ro=1,shared=1" {
		t.Errorf("argv = %s", got)
	}
}
