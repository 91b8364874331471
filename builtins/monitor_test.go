package builtins

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

// attrOf reads a struct field for assertions in Go.
func attrOf(t *testing.T, v starlark.Value, path ...string) starlark.Value {
	t.Helper()
	for _, name := range path {
		s, ok := record(v)
		if !ok {
			t.Fatalf("%s: %v is %s, not a struct", name, v, v.Type())
		}
		var err error
		if v, err = s.Attr(name); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// TestMonitorAllOneFails: a failing monitor leaves None and a message,
// the others still report, and each one's duration is recorded. A monitor
// that needs the privileged operations the agent runs without is skipped,
// not failed: its reason in skipped, and no monitor_success gauge.
func TestMonitorAllOneFails(t *testing.T) {
	rig := newRig(t)
	rig.pve.errs["NodeStatus"] = errors.New("connection refused")
	rig.env.Host = nil // sensors fails too; smart falls back to the API
	g, err := runStar(t, rig.env, `a = monitor.all()`)
	if err != nil {
		t.Fatal(err)
	}
	a := g["a"]
	if v := attrOf(t, a, "node"); v != starlark.None {
		t.Errorf("node = %v; want None", v)
	}
	errs := attrOf(t, a, "errors").(*starlark.Dict)
	skipped := attrOf(t, a, "skipped").(*starlark.Dict)
	for _, c := range []struct {
		field string
		got   *starlark.Dict
		want  map[string]string
	}{
		{"errors", errs, map[string]string{"node": "monitor.node: node status: connection refused"}},
		{"skipped", skipped, map[string]string{"sensors": "monitor.sensors: privileged operations are disabled (set privileged.enabled in the configuration)"}},
	} {
		if c.got.Len() != len(c.want) {
			t.Errorf("%s = %v; want %v", c.field, c.got, c.want)
		}
		for k, want := range c.want {
			if got, _, _ := c.got.Get(starlark.String(k)); got != starlark.String(want) {
				t.Errorf("%s[%q] = %v; want %q", c.field, k, got, want)
			}
		}
	}
	if v := attrOf(t, a, "sensors"); v != starlark.None {
		t.Errorf("sensors = %v; want None", v)
	}
	if v, ok := rig.gauges.get("monitor_success{monitor=sensors}"); ok {
		t.Errorf("monitor_success{monitor=sensors} = %v; want none for a skipped monitor", v)
	}
	if n := attrOf(t, a, "storage").(*starlark.List).Len(); n != 3 {
		t.Errorf("storage has %d entries; want 3", n)
	}
	if src := attrOf(t, attrOf(t, a, "smart").(*starlark.List).Index(0), "source"); src != starlark.String("api") {
		t.Errorf("smart source = %v; want api", src)
	}
	if took := attrOf(t, a, "took").(*starlark.Dict); took.Len() != len(monitors) {
		t.Errorf("took = %v; want one entry per monitor", took)
	}
	if v, ok := rig.gauges.get("monitor_success{monitor=node}"); !ok || v != 0 {
		t.Errorf("monitor_success{monitor=node} = %v, %v; want 0", v, ok)
	}
	if v, ok := rig.gauges.get("monitor_success{monitor=storage}"); !ok || v != 1 {
		t.Errorf("monitor_success{monitor=storage} = %v, %v; want 1", v, ok)
	}
	if _, ok := rig.gauges.get("monitor_duration_seconds{monitor=tunnel}"); !ok {
		t.Error("monitor_duration_seconds{monitor=tunnel} not set")
	}
}

// TestMonitorSmartAPI: without privileged operations SMART comes from the
// API, parsed from ATA attributes (194, else 190; 5) or NVMe text; a disk
// that cannot be read is listed with its error.
func TestMonitorSmartAPI(t *testing.T) {
	rig := newRig(t)
	rig.env.Host = nil
	rig.pve.pveState.Disks = append(rig.pve.pveState.Disks, rig.pve.pveState.Disks[0])
	rig.pve.pveState.Disks[3].DevPath = "/dev/sdc"
	rig.pve.errs["DiskSMART /dev/sdc"] = errors.New("disk busy")
	g, err := runStar(t, rig.env, `s = monitor.smart()`)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		device, health, errText string
		passed                  bool
		temp, realloc           int
	}{
		{"/dev/sda", "PASSED", "", true, 34, 0},
		{"/dev/nvme0n1", "PASSED", "", true, 41, 0},
		{"/dev/sdb", "FAILED", "", false, 39, 2144},
		{"/dev/sdc", "UNKNOWN", "disk busy", false, 0, 0},
	}
	list := g["s"].(*starlark.List)
	if list.Len() != len(want) {
		t.Fatalf("%d disks; want %d", list.Len(), len(want))
	}
	for i, w := range want {
		d := list.Index(i)
		if got := attrOf(t, d, "device"); got != starlark.String(w.device) {
			t.Errorf("[%d].device = %v; want %s", i, got, w.device)
		}
		if got := attrOf(t, d, "health"); got != starlark.String(w.health) {
			t.Errorf("%s: health = %v; want %s", w.device, got, w.health)
		}
		if got := attrOf(t, d, "passed"); got != starlark.Bool(w.passed) {
			t.Errorf("%s: passed = %v; want %v", w.device, got, w.passed)
		}
		if got := attrOf(t, d, "temperature"); got != starlark.MakeInt(w.temp) {
			t.Errorf("%s: temperature = %v; want %d", w.device, got, w.temp)
		}
		if got := attrOf(t, d, "reallocated"); got != starlark.MakeInt(w.realloc) {
			t.Errorf("%s: reallocated = %v; want %d", w.device, got, w.realloc)
		}
		if got := attrOf(t, d, "error"); got != starlark.String(w.errText) {
			t.Errorf("%s: error = %v; want %q", w.device, got, w.errText)
		}
		if got := attrOf(t, d, "source"); got != starlark.String("api") {
			t.Errorf("%s: source = %v; want api", w.device, got)
		}
	}
}

// TestMonitorSmartHostError: one disk smartctl cannot read does not hide
// the others.
func TestMonitorSmartHostError(t *testing.T) {
	rig := newRig(t)
	rig.host.smartErr["/dev/nvme0n1"] = errors.New("smartctl exited 2: open failed")
	g, err := runStar(t, rig.env, `s = monitor.smart()`)
	if err != nil {
		t.Fatal(err)
	}
	list := g["s"].(*starlark.List)
	if got := attrOf(t, list.Index(1), "error"); got != starlark.String("smartctl exited 2: open failed") {
		t.Errorf("nvme error = %v", got)
	}
	if got := attrOf(t, list.Index(2), "health"); got != starlark.String("FAILED") {
		t.Errorf("sdb health = %v; want FAILED", got)
	}
}

// TestMonitorDiskListFails: without the disk list the smart monitor fails.
func TestMonitorDiskListFails(t *testing.T) {
	rig := newRig(t)
	rig.pve.errs["Disks"] = errors.New("503 service unavailable")
	_, err := runStar(t, rig.env, `monitor.smart()`)
	if err == nil || !strings.Contains(err.Error(), "monitor.smart: list disks: 503 service unavailable") {
		t.Errorf("err = %v", err)
	}
}

// TestTunnel dials a listening and a closed local port.
func TestTunnel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and drop, so the dial completes on every platform
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		endpoint string
		up       bool
		errText  string // substring of the error field
	}{
		{ln.Addr().String(), true, ""},
		{closedAddr, false, "connection refused"},
		{"", false, "no tunnel endpoint configured"},
		{"hub.example", false, "is not host:port"},
	}
	for _, tt := range tests {
		rig := newRig(t)
		rig.env.Tunnel = tt.endpoint
		g, err := runStar(t, rig.env, `r = monitor.tunnel(timeout = "2s")`)
		if err != nil {
			t.Fatalf("%q: %v", tt.endpoint, err)
		}
		r := g["r"]
		if got := attrOf(t, r, "up"); got != starlark.Bool(tt.up) {
			t.Errorf("%q: up = %v; want %v", tt.endpoint, got, tt.up)
		}
		if got := attrOf(t, r, "endpoint"); got != starlark.String(tt.endpoint) {
			t.Errorf("%q: endpoint = %v", tt.endpoint, got)
		}
		msg := string(attrOf(t, r, "error").(starlark.String))
		if tt.errText == "" && msg != "" || !strings.Contains(msg, tt.errText) {
			t.Errorf("%q: error = %q; want it to contain %q", tt.endpoint, msg, tt.errText)
		}
		if got := attrOf(t, r, "latency").Type(); got != "time.duration" {
			t.Errorf("%q: latency is %s", tt.endpoint, got)
		}
	}
}

// TestMonitorCancelled: a cancelled run is an error, not a reading.
func TestMonitorCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, call := range []string{`monitor.all()`, `monitor.tunnel()`} {
		rig := newRig(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		rig.env.Context = ctx
		rig.env.Tunnel = ln.Addr().String()
		_, err := runStar(t, rig.env, call)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: err = %v; want context.Canceled", call, err)
		}
	}
}

// TestGauge: published values reach the sink with their labels; without
// a sink gauge() does nothing and does not fail.
func TestGauge(t *testing.T) {
	rig := newRig(t)
	if _, err := runStar(t, rig.env, `monitor.gauge("backup_age_seconds", 3600, labels = {"vmid": 101, "storage": "usb"})
monitor.gauge("disk_temp", 41.5)`); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]float64{"backup_age_seconds{storage=usb,vmid=101}": 3600, "disk_temp{}": 41.5} {
		if got, ok := rig.gauges.get(key); !ok || got != want {
			t.Errorf("gauge %s = %v, %v; want %v", key, got, ok, want)
		}
	}
	rig.env.Gauges = nil
	if _, err := runStar(t, rig.env, `monitor.gauge("x", 1)`); err != nil {
		t.Errorf("without a sink: %v", err)
	}
}

// TestMetricNames is the name rule of gauges and labels.
func TestMetricNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"backup_age_seconds": true, "_x": true, "a1": true,
		"": false, "1a": false, "Backup": false, "a-b": false, "a:b": false, "a b": false, "ä": false,
	} {
		if got := metricNamePattern.MatchString(name); got != ok {
			t.Errorf("metricNamePattern.MatchString(%q) = %v; want %v", name, got, ok)
		}
	}
}
