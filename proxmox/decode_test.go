package proxmox

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"
)

// valueTests are JSON values as PVE sends them, and how each wire type
// reads them; err marks values a type must refuse.
var valueTests = []struct {
	in       string
	num      string // num's text, or "err"
	flag     string // "true", "false" or "err"
	text     string
	list     []string
	listFail bool
}{
	{in: `101`, num: "101", flag: "true", text: "101", list: []string{"101"}},
	{in: `"101"`, num: "101", flag: "err", text: "101", list: []string{"101"}},
	{in: `" 0.15 "`, num: "0.15", flag: "err", text: " 0.15 ", list: []string{"0.15"}},
	{in: `0`, num: "0", flag: "false", text: "0", list: []string{"0"}},
	{in: `1.5e3`, num: "1.5e3", flag: "true", text: "1.5e3", list: []string{"1.5e3"}},
	{in: `null`, num: "", flag: "false", text: "", list: nil},
	{in: `""`, num: "", flag: "false", text: "", list: nil},
	{in: `true`, num: "err", flag: "true", text: "1", list: []string{"1"}},
	{in: `false`, num: "err", flag: "false", text: "0", list: []string{"0"}},
	{in: `"1"`, num: "1", flag: "true", text: "1", list: []string{"1"}},
	{in: `"yes"`, num: "err", flag: "true", text: "yes", list: []string{"yes"}},
	{in: `"Off"`, num: "err", flag: "false", text: "Off", list: []string{"Off"}},
	{in: `"NaN"`, num: "err", flag: "err", text: "NaN", list: []string{"NaN"}},
	{in: `"images,rootdir, vztmpl,"`, num: "err", flag: "err", text: "images,rootdir, vztmpl,", list: []string{"images", "rootdir", "vztmpl"}},
	{in: `["backup","iso"]`, num: "err", flag: "err", text: `["backup","iso"]`, list: []string{"backup", "iso"}},
	{in: `[["lxc.mount.entry", "/dev/dri dev/dri none bind"]]`, num: "err", flag: "err", text: `[["lxc.mount.entry","/dev/dri dev/dri none bind"]]`, listFail: false, list: []string{`["lxc.mount.entry","/dev/dri dev/dri none bind"]`}},
	{in: `{"a": 1}`, num: "err", flag: "err", text: `{"a":1}`, listFail: true},
}

func TestWireValues(t *testing.T) {
	for _, tt := range valueTests {
		var n num
		err := json.Unmarshal([]byte(tt.in), &n)
		if (tt.num == "err") != (err != nil) || (err == nil && string(n) != tt.num) {
			t.Errorf("num(%s) = %q, %v; want %q", tt.in, n, err, tt.num)
		}
		var f flag
		err = json.Unmarshal([]byte(tt.in), &f)
		if (tt.flag == "err") != (err != nil) || (err == nil && (f == true) != (tt.flag == "true")) {
			t.Errorf("flag(%s) = %v, %v; want %s", tt.in, f, err, tt.flag)
		}
		var x text
		if err := json.Unmarshal([]byte(tt.in), &x); err != nil || string(x) != tt.text {
			t.Errorf("text(%s) = %q, %v; want %q", tt.in, x, err, tt.text)
		}
		var l stringList
		err = json.Unmarshal([]byte(tt.in), &l)
		if tt.listFail != (err != nil) || (err == nil && !reflect.DeepEqual([]string(l), tt.list)) {
			t.Errorf("stringList(%s) = %q, %v; want %q", tt.in, l, err, tt.list)
		}
	}
}

func TestNumConversions(t *testing.T) {
	tests := []struct {
		n  num
		i  int64
		u  uint64
		f  float64
		tm time.Time
	}{
		{"", 0, 0, 0, time.Time{}},
		{"42", 42, 42, 42, time.Unix(42, 0).UTC()},
		{"-3", -3, 0, -3, time.Time{}},
		{"2.7", 2, 2, 2.7, time.Unix(2, 0).UTC()},
		{"1693252800", 1693252800, 1693252800, 1693252800, time.Unix(1693252800, 0).UTC()},
		{"18446744073709551615", 0, 18446744073709551615, 18446744073709551615, time.Time{}},
		{"1e300", 0, 0, 1e300, time.Time{}},
	}
	for _, tt := range tests {
		if tt.n.toInt64() != tt.i || tt.n.toUint64() != tt.u || tt.n.toFloat() != tt.f || !tt.n.toTime().Equal(tt.tm) {
			t.Errorf("num %q: %d %d %g %v; want %d %d %g %v", tt.n, tt.n.toInt64(), tt.n.toUint64(), tt.n.toFloat(), tt.n.toTime(), tt.i, tt.u, tt.f, tt.tm)
		}
	}
}

func FuzzWireValues(f *testing.F) {
	for _, tt := range valueTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var n num
		if json.Unmarshal(b, &n) == nil {
			_, _, _, _ = n.toInt64(), n.toUint64(), n.toFloat(), n.toTime()
		}
		var fl flag
		_ = json.Unmarshal(b, &fl)
		var x text
		_ = json.Unmarshal(b, &x)
		var l stringList
		if json.Unmarshal(b, &l) == nil {
			for _, it := range l {
				if it == "" || strings.TrimSpace(it) != it {
					t.Errorf("stringList(%q) has item %q", b, it)
				}
			}
		}
	})
}

var configTests = []struct {
	name string
	in   string
	want GuestConfig // compared on the fields set; Raw always checked
	err  string      // part of the error; "" when valid
}{
	{
		name: "typed fields and strings for numbers",
		in:   `{"hostname":"web","cores":"2","memory":1024.0,"swap":512,"onboot":"1","template":0,"unprivileged":true,"description":"a\nb\n","rootfs":"local-lvm:vm-101-disk-0,size=8G"}`,
		want: GuestConfig{Hostname: "web", Cores: 2, Memory: 1024, Swap: 512, OnBoot: true, Unprivileged: true, Description: "a\nb\n",
			RootFS: MountPoint{Volume: "local-lvm:vm-101-disk-0", Path: "/", Size: "8G", Options: map[string]string{"volume": "local-lvm:vm-101-disk-0", "size": "8G"}}},
	},
	{
		name: "rootfs with volume= key",
		in:   `{"rootfs":"volume=local:101/vm-101-disk-0.raw,size=4G,acl=1"}`,
		want: GuestConfig{RootFS: MountPoint{Volume: "local:101/vm-101-disk-0.raw", Path: "/", Size: "4G",
			Options: map[string]string{"volume": "local:101/vm-101-disk-0.raw", "size": "4G", "acl": "1"}}},
	},
	{
		name: "net without options",
		in:   `{"net3":"name=eth3"}`,
		want: GuestConfig{Nets: map[string]Net{"net3": {Name: "eth3", Options: map[string]string{"name": "eth3"}}}},
	},
	{name: "not an object", in: `["a"]`, err: "decoding config"},
	{name: "bad cores", in: `{"cores":"two"}`, err: `key "cores"`},
	{name: "bad onboot", in: `{"onboot":"maybe"}`, err: `key "onboot"`},
	{name: "bad vlan tag", in: `{"net0":"name=eth0,tag=x"}`, err: `key "net0": tag "x"`},
	{name: "bad firewall", in: `{"net0":"name=eth0,firewall=2"}`, err: `key "net0": firewall`},
	{name: "several bad keys sorted", in: `{"swap":"x","cores":"y"}`, err: `key "cores": want an integer, got "y"; key "swap"`},
}

func TestParseGuestConfig(t *testing.T) {
	for _, tt := range configTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGuestConfig(LXC, []byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error = %v; want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			_ = json.Unmarshal([]byte(tt.in), &raw)
			if len(got.Raw) != len(raw) {
				t.Errorf("Raw has %d keys; want %d", len(got.Raw), len(raw))
			}
			tt.want.Raw = got.Raw
			tt.want.Type, tt.want.Name = LXC, tt.want.Hostname
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseGuestConfig(f *testing.F) {
	for _, tt := range configTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		gc, err := parseGuestConfig(LXC, b)
		if err != nil {
			return
		}
		// Every key survives in Raw, and every parsed key came from Raw.
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) == nil && m != nil && !sameKeys(m, gc.Raw) {
			t.Errorf("Raw keys %v; want %v", gc.Raw, m)
		}
		for k := range gc.MountPoints {
			if _, ok := gc.Raw[k]; !ok {
				t.Errorf("mount point %q not in Raw", k)
			}
		}
		for k := range gc.Nets {
			if _, ok := gc.Raw[k]; !ok {
				t.Errorf("net %q not in Raw", k)
			}
		}
	})
}

func sameKeys(a map[string]json.RawMessage, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

var propertyTests = []struct {
	in, defaultKey string
	want           map[string]string
}{
	{"local-lvm:vm-101-disk-0,size=8G", "volume", map[string]string{"volume": "local-lvm:vm-101-disk-0", "size": "8G"}},
	{"/mnt/foo/bar,mp=/storage", "volume", map[string]string{"volume": "/mnt/foo/bar", "mp": "/storage"}},
	{"name=eth0, bridge=vmbr0 ,,ip=dhcp", "", map[string]string{"name": "eth0", "bridge": "vmbr0", "ip": "dhcp"}},
	{"odd,name=eth0", "", map[string]string{"odd": "", "name": "eth0"}},
	{"mountoptions=noatime;nodev,a=b=c", "volume", map[string]string{"mountoptions": "noatime;nodev", "a": "b=c"}},
	{"", "volume", map[string]string{}},
}

func TestParseProperty(t *testing.T) {
	for _, tt := range propertyTests {
		if got := parseProperty(tt.in, tt.defaultKey); !maps.Equal(got, tt.want) {
			t.Errorf("parseProperty(%q, %q) = %v; want %v", tt.in, tt.defaultKey, got, tt.want)
		}
	}
}

func FuzzParseProperty(f *testing.F) {
	for _, tt := range propertyTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := parseProperty(s, "volume")
		for k, v := range m {
			if strings.Contains(k, ",") || strings.Contains(v, ",") {
				t.Errorf("parseProperty(%q): %q=%q holds a separator", s, k, v)
			}
		}
		mp := parseMountPoint(s, "/")
		if mp.Volume != m["volume"] {
			t.Errorf("parseMountPoint(%q).Volume = %q; want %q", s, mp.Volume, m["volume"])
		}
		_, _ = parseNet(LXC, s)
	})
}

// TestArchiveFromLog covers the vzdump log scan the Client's VzdumpArchive
// uses; FuzzArchiveFromLog seeds from it.
var archiveTests = []struct {
	line, want string
}{
	{"INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst'", "vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"},
	{"INFO: creating archive '/mnt/b/dump/vzdump-lxc-7-2019_01_01-00_00_00.tar.lzo'", "vzdump-lxc-7-2019_01_01-00_00_00.tar.lzo"},
	{"INFO: creating vzdump archive 'relative.tar.zst'", "relative.tar.zst"},
	{"INFO: creating vzdump archive ''", ""},
	{"INFO: creating vzdump archive '/'", ""},
	{"INFO: creating Proxmox Backup Server archive 'ct/101/2026-11-20T03:00:01Z'", "ct/101/2026-11-20T03:00:01Z"},
	{"INFO: creating Proxmox Backup Server archive 'vm/200/2026-12-01T03:00:00Z'", "vm/200/2026-12-01T03:00:00Z"},
	{"INFO: creating Proxmox Backup Server archive 'host/x/2026-12-01T03:00:00Z'", ""},
	{"TASK OK", ""},
}

func TestArchiveFromLog(t *testing.T) {
	for _, tt := range archiveTests {
		got, ok := archiveFromLog([]LogLine{{N: 1, T: tt.line}})
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("archiveFromLog(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
		}
	}
}

func FuzzArchiveFromLog(f *testing.F) {
	for _, tt := range archiveTests {
		f.Add(tt.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		file, ok := archiveFromLog([]LogLine{{T: line}})
		if ok && (file == "" || strings.Contains(file, "'") || (strings.Contains(file, "/") && !pbsVolname.MatchString("backup/"+file))) {
			t.Errorf("archiveFromLog(%q) = %q: not a file name or a PBS snapshot", line, file)
		}
	})
}
