package pvesim

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func exitCode(err error) int {
	if ee, ok := errors.AsType[*proxmox.ExitError](err); ok {
		return ee.Code
	}
	return -1
}

func TestRootPctCreate(t *testing.T) {
	clock := &fakeClock{t: testStart}
	sim := &Sim{Now: clock.Now}
	r := sim.RootRunner()
	ctx := context.Background()
	argv := []string{"pct", "create", "9100", DefaultTemplate, "--hostname", "golden2", "--features", "keyctl=1,nesting=1",
		"--unprivileged", "1", "--storage", "local-lvm", "--rootfs", "local-lvm:8", "--cores", "2", "--memory", "1024",
		"--net0", "name=eth0,bridge=vmbr0,ip=dhcp"}
	out, err := r.Run(ctx, append([]string{"sudo", "-n", "/usr/sbin/pct"}, argv[1:]...))
	if err != nil {
		t.Fatalf("pct create: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Logical volume \"vm-9100-disk-0\" created.") {
		t.Errorf("pct output:\n%s", out)
	}
	g, ok := sim.Guest(9100)
	if !ok || g.Config["features"] != "keyctl=1,nesting=1" || g.Config["rootfs"] != "local-lvm:vm-9100-disk-0,size=8G" || g.Lock != "" {
		t.Fatalf("guest after pct create = %+v", g)
	}
	last := sim.Tasks()[len(sim.Tasks())-1]
	if last.Type != "vzcreate" || last.User != "root@pam" || last.ExitStatus != "OK" {
		t.Errorf("pct's task = %+v", last)
	}

	_, err = r.Run(ctx, argv)
	if exitCode(err) != 255 || !strings.Contains(err.Error(), "CT 9100 already exists on node 'demo-felhom'") {
		t.Errorf("second pct create: %v", err)
	}
	_, err = r.Run(ctx, []string{"pct", "create", "9101", DefaultTemplate, "--bogus", "1"})
	if exitCode(err) != 255 || !strings.Contains(err.Error(), "bogus: property is not defined in schema") {
		t.Errorf("pct with a bad option: %v", err)
	}
	_, err = r.Run(ctx, []string{"pct", "create", "9101", webArchive, "--storage", "local-lvm"})
	if exitCode(err) != 255 || !strings.Contains(err.Error(), "content type needs to be 'vztmpl'") {
		t.Errorf("pct with a backup as template: %v", err)
	}
	if got := r.Calls(); len(got) != 4 || got[0][0] != "sudo" || got[1][0] != "pct" {
		t.Errorf("Calls = %q", got)
	}
}

func TestRootMount(t *testing.T) {
	sim := New()
	r := sim.RootRunner()
	ctx := context.Background()
	mount := func(uuid, target string) error {
		_, err := r.Run(ctx, []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=" + uuid, target})
		return err
	}
	err := mount(DefaultUSBUUID, "/mnt/usb-backup")
	if exitCode(err) != 32 || !strings.Contains(err.Error(), "already mounted on /mnt/usb-backup") {
		t.Errorf("mounting the mounted disk: %v", err)
	}
	if err := sim.Unmount("/mnt/usb-backup"); err != nil {
		t.Fatal(err)
	}
	if _, ok := sim.MountedAt("/mnt/usb-backup"); ok {
		t.Error("still mounted after Unmount")
	}
	if err := mount(DefaultUSBUUID, "/mnt/usb-backup"); err != nil {
		t.Errorf("mount: %v", err)
	}
	if uuid, ok := sim.MountedAt("/mnt/usb-backup"); !ok || uuid != DefaultUSBUUID {
		t.Errorf("MountedAt = %q %v", uuid, ok)
	}
	err = mount("00000000-0000-0000-0000-000000000000", "/mnt/x")
	if exitCode(err) != 32 || !strings.Contains(err.Error(), "mount: /mnt/x: can't find UUID=00000000-0000-0000-0000-000000000000.") {
		t.Errorf("unknown UUID: %v", err)
	}
	if err := sim.Unmount("/mnt/x"); err == nil {
		t.Error("Unmount of nothing = nil")
	}
}

func TestRootSmartctl(t *testing.T) {
	sim := New()
	r := sim.RootRunner()
	ctx := context.Background()
	var report struct {
		Smartctl struct {
			ExitStatus int `json:"exit_status"`
		} `json:"smartctl"`
		Device       struct{ Name string } `json:"device"`
		ModelName    string                `json:"model_name"`
		SerialNumber string                `json:"serial_number"`
		SmartStatus  struct{ Passed bool } `json:"smart_status"`
		Temperature  struct{ Current int } `json:"temperature"`
		PowerOnTime  struct{ Hours int64 } `json:"power_on_time"`
		ATA          struct {
			Table []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
				Raw  struct {
					Value int64 `json:"value"`
				} `json:"raw"`
			} `json:"table"`
		} `json:"ata_smart_attributes"`
	}
	read := func(dev string) (int, error) {
		out, err := r.Run(ctx, []string{"smartctl", "--json", "-a", dev})
		if jerr := json.Unmarshal(out, &report); jerr != nil {
			t.Fatalf("smartctl %s output is not JSON: %v\n%s", dev, jerr, out)
		}
		return exitCode(err), err
	}
	if code, err := read("/dev/sda"); err != nil || code != -1 {
		t.Fatalf("healthy disk: %v", err)
	}
	if report.Device.Name != "/dev/sda" || report.ModelName == "" || report.SerialNumber == "" || !report.SmartStatus.Passed ||
		report.Temperature.Current != 34 || report.PowerOnTime.Hours == 0 {
		t.Errorf("report = %+v", report)
	}
	realloc := func() int64 {
		for _, a := range report.ATA.Table {
			if a.ID == 5 && a.Name == "Reallocated_Sector_Ct" {
				return a.Raw.Value
			}
		}
		t.Fatal("no attribute 5")
		return 0
	}
	if realloc() != 0 {
		t.Errorf("reallocated = %d", realloc())
	}
	if err := sim.SetDiskHealth("/dev/sda", false, 96); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetDiskTemperature("/dev/sda", 61); err != nil {
		t.Fatal(err)
	}
	code, _ := read("/dev/sda")
	if code&8 == 0 || report.SmartStatus.Passed || realloc() != 96 || report.Temperature.Current != 61 || report.Smartctl.ExitStatus != code {
		t.Errorf("failing disk: exit %d, report %+v", code, report)
	}
	if code, _ := read("/dev/sdz"); code != 2 {
		t.Errorf("missing device: exit %d; want 2", code)
	}
	if _, err := r.Run(ctx, []string{"smartctl", "-H", "/dev/sda"}); exitCode(err) != 1 {
		t.Errorf("unsupported smartctl form: %v", err)
	}
}

func TestRootSensors(t *testing.T) {
	sim := New()
	r := sim.RootRunner()
	out, err := r.Run(context.Background(), []string{"sensors", "-j"})
	if err != nil {
		t.Fatal(err)
	}
	var chips map[string]map[string]any
	if err := json.Unmarshal(out, &chips); err != nil {
		t.Fatalf("sensors output: %v\n%s", err, out)
	}
	core := chips["coretemp-isa-0000"]
	pkg, _ := core["Package id 0"].(map[string]any)
	if core["Adapter"] != "ISA adapter" || pkg["temp1_input"] != 45.0 || pkg["temp1_max"] != 80.0 || pkg["temp1_crit"] != 100.0 {
		t.Errorf("coretemp = %v", core)
	}
	if _, ok := chips["nvme-pci-0100"]["Composite"]; !ok {
		t.Errorf("no nvme composite: %v", chips)
	}
	if err := sim.SetTemperature("Package id 0", 92.5); err != nil {
		t.Fatal(err)
	}
	out, _ = r.Run(context.Background(), []string{"sensors", "-j"})
	_ = json.Unmarshal(out, &chips)
	if got := chips["coretemp-isa-0000"]["Package id 0"].(map[string]any)["temp1_input"]; got != 92.5 {
		t.Errorf("after SetTemperature: %v", got)
	}
	if err := sim.SetTemperature("GPU", 1); err == nil {
		t.Error("SetTemperature of an unknown label = nil")
	}
}

func TestRootRunnerContract(t *testing.T) {
	sim := New()
	r := sim.RootRunner()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Run(ctx, []string{"sensors", "-j"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Run = %v; want context.Canceled", err)
	}
	if _, err := r.Run(context.Background(), []string{"rm", "-rf", "/"}); err == nil {
		t.Error("an unsimulated command must fail")
	}
	if _, err := r.Run(context.Background(), nil); err == nil {
		t.Error("empty argv must fail")
	}
	if sim.RootRunner() != r {
		t.Error("RootRunner must return the same runner")
	}
}

func TestRootRunnerPctSetMountPoint(t *testing.T) {
	sim := &Sim{}
	r := sim.RootRunner()
	ctx := context.Background()
	if _, err := r.Run(ctx, []string{"pct", "set", "101", "--mp9", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1"}); err != nil {
		t.Fatal(err)
	}
	g, ok := sim.Guest(101)
	if !ok || g.Config["mp9"] != "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1" {
		t.Errorf("guest 101 after pct set = %+v", g.Config)
	}
	_, err := r.Run(ctx, []string{"pct", "set", "555", "--mp9", "/x,mp=/y"})
	if exitCode(err) != 255 || !strings.Contains(err.Error(), "lxc/555.conf' does not exist") {
		t.Errorf("pct set of a missing container: %v", err)
	}
	_, err = r.Run(ctx, []string{"pct", "set", "101", "--mp9", "/x"})
	if exitCode(err) != 255 || !strings.Contains(err.Error(), "mp: property is missing") {
		t.Errorf("pct set without mp=: %v", err)
	}
	if _, err = r.Run(ctx, []string{"pct", "set", "101", "--hookscript", "local:snippets/x.sh"}); err == nil {
		t.Error("an unmodelled pct set option passed")
	}
}
