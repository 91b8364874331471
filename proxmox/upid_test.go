package proxmox_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// UPIDs used across the tests, in PVE's own (upper-case) form.
const (
	upidVzdump     = "UPID:pve1:0019A2F3:0A6B8C21:67F3B2C1:vzdump:101:felhom-agent@pve!agent:"
	upidVzdumpAll  = "UPID:pve1:00186A00:1A6B7000:67F3A000:vzdump::root@pam:"
	upidNinePStart = "UPID:node1:0031B740:10645340C:23E5BA99:vzdestroy:101:root@pam:"
)

var upidTests = []struct {
	in   string
	want proxmox.UPID
	// reason is a part of the error for a malformed UPID, "" when valid.
	reason string
}{
	{
		in: upidVzdump,
		want: proxmox.UPID{Node: "pve1", PID: 0x0019A2F3, PStart: 0x0A6B8C21, StartTime: time.Unix(0x67F3B2C1, 0).UTC(),
			Type: "vzdump", ID: "101", User: "felhom-agent@pve!agent"},
	},
	{
		in: upidVzdumpAll,
		want: proxmox.UPID{Node: "pve1", PID: 0x00186A00, PStart: 0x1A6B7000, StartTime: time.Unix(0x67F3A000, 0).UTC(),
			Type: "vzdump", ID: "", User: "root@pam"},
	},
	{
		in: "UPID:node1:0031B740:0645340C:23E5BA99:vzdestroy:101:root@pam:",
		want: proxmox.UPID{Node: "node1", PID: 0x0031B740, PStart: 0x0645340C, StartTime: time.Unix(0x23E5BA99, 0).UTC(),
			Type: "vzdestroy", ID: "101", User: "root@pam"},
	},
	{
		in: "UPID:pve-01:00001234:00005678:5A3B7C8D:imgdel:101@usb-backup:root@pam:",
		want: proxmox.UPID{Node: "pve-01", PID: 0x1234, PStart: 0x5678, StartTime: time.Unix(0x5A3B7C8D, 0).UTC(),
			Type: "imgdel", ID: "101@usb-backup", User: "root@pam"},
	},
	{in: upidNinePStart},
	{in: "UPID:pve1:0000000a:0000000b:0000000c:vzstart:101:root@pam:"},
	{in: "", reason: `must start with "UPID:"`},
	{in: "upid:pve1:00001234:00005678:5A3B7C8D:vzstart:101:root@pam:", reason: `must start with "UPID:"`},
	{in: "UPID:node1:0031B740:0645340C:23E5BA99:vzstart:101:root", reason: "must end with ':'"},
	{in: "UPID:node1:00001234:00005678:12345678:vzdump:root@pam:", reason: "want 7 fields"},
	{in: "UPID:node1:00001234:00005678:12345678:vzdump:1:2:root@pam:", reason: "want 7 fields"},
	{in: "UPID:-pve:00001234:00005678:12345678:vzdump:101:root@pam:", reason: `bad node field "-pve"`},
	{in: "UPID:pve:0001234:00005678:12345678:vzdump:101:root@pam:", reason: `bad pid field "0001234"`},
	{in: "UPID:pve:00001234:0000005678:12345678:vzdump:101:root@pam:", reason: `bad pstart field "0000005678"`},
	{in: "UPID:pve:00001234:00005678:1234567G:vzdump:101:root@pam:", reason: `bad starttime field "1234567G"`},
	{in: "UPID:pve:00001234:00005678:12345678:vz/dump:101:root@pam:", reason: `bad type field "vz/dump"`},
	{in: "UPID:pve:00001234:00005678:12345678:vzdump:1 01:root@pam:", reason: `bad id field "1 01"`},
	{in: "UPID:pve:00001234:00005678:12345678:vzdump:101::", reason: `bad user field ""`},
}

func TestParseUPID(t *testing.T) {
	for _, tt := range upidTests {
		got, err := proxmox.ParseUPID(tt.in)
		if tt.reason != "" {
			if err == nil || !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), "malformed UPID") {
				t.Errorf("ParseUPID(%q) error = %v; want one saying %q", tt.in, err, tt.reason)
			}
			if _, ok := err.(*proxmox.UPIDError); !ok {
				t.Errorf("ParseUPID(%q) error is %T; want *UPIDError", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseUPID(%q) = %v", tt.in, err)
			continue
		}
		if tt.want.Node != "" && !sameUPIDFields(got, tt.want) {
			t.Errorf("ParseUPID(%q) = %+v; want %+v", tt.in, got, tt.want)
		}
		// PVE writes upper-case hex, so its UPIDs format back unchanged.
		if !strings.ContainsAny(hexFields(tt.in), "abcdef") && got.String() != tt.in {
			t.Errorf("ParseUPID(%q).String() = %q; want the input", tt.in, got.String())
		}
	}
}

// sameUPIDFields compares the exported fields (the pstart width is the
// parser's business).
func sameUPIDFields(a, b proxmox.UPID) bool {
	return a.Node == b.Node && a.PID == b.PID && a.PStart == b.PStart && a.StartTime.Equal(b.StartTime) &&
		a.Type == b.Type && a.ID == b.ID && a.User == b.User
}

// hexFields is the pid:pstart:starttime part of a UPID.
func hexFields(s string) string {
	parts := strings.Split(s, ":")
	if len(parts) < 5 {
		return ""
	}
	return strings.Join(parts[2:5], ":")
}

func TestUPIDNinePStartDigits(t *testing.T) {
	u := proxmox.MustParseUPID(upidNinePStart)
	if u.PStart != 0x10645340C {
		t.Errorf("PStart = %#x; want 0x10645340C", u.PStart)
	}
	if u.String() != upidNinePStart {
		t.Errorf("String() = %q; want %q", u.String(), upidNinePStart)
	}
	// A nine-digit pstart with a leading zero keeps its width.
	const padded = "UPID:node1:0031B740:00645340C:23E5BA99:vzdestroy:101:root@pam:"
	if s := proxmox.MustParseUPID(padded).String(); s != padded {
		t.Errorf("String() = %q; want %q", s, padded)
	}
}

func TestUPIDZero(t *testing.T) {
	var u proxmox.UPID
	if !u.IsZero() || u.String() != "" {
		t.Errorf("zero UPID: IsZero %v String %q", u.IsZero(), u.String())
	}
	if proxmox.MustParseUPID(upidVzdump).IsZero() {
		t.Error("a parsed UPID reports IsZero")
	}
}

func TestUPIDJSON(t *testing.T) {
	type holder struct {
		U proxmox.UPID `json:"upid"`
	}
	in := holder{U: proxmox.MustParseUPID(upidVzdump)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"upid":"`+upidVzdump+`"}` {
		t.Errorf("Marshal = %s", b)
	}
	var out holder
	if err := json.Unmarshal(b, &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("Unmarshal = %+v, %v; want %+v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"upid":""}`), &out); err != nil || !out.U.IsZero() {
		t.Errorf(`Unmarshal of "" = %+v, %v; want the zero UPID`, out.U, err)
	}
	if err := json.Unmarshal([]byte(`{"upid":"UPID:x"}`), &out); err == nil {
		t.Error("Unmarshal of a malformed UPID succeeded")
	}
}

func TestMustParseUPIDPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseUPID of a malformed UPID did not panic")
		}
	}()
	proxmox.MustParseUPID("UPID:")
}

// FuzzParseUPID checks the round trip: whatever ParseUPID accepts formats
// to a text that parses to the same UPID and formats identically.
func FuzzParseUPID(f *testing.F) {
	for _, tt := range upidTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := proxmox.ParseUPID(s)
		if err != nil {
			if u != (proxmox.UPID{}) {
				t.Errorf("ParseUPID(%q) failed but returned %+v", s, u)
			}
			return
		}
		s2 := u.String()
		u2, err := proxmox.ParseUPID(s2)
		if err != nil {
			t.Fatalf("ParseUPID(%q) ok, but its String %q does not parse: %v", s, s2, err)
		}
		if !reflect.DeepEqual(u, u2) || u2.String() != s2 {
			t.Errorf("round trip of %q: %+v != %+v", s, u, u2)
		}
		if !strings.EqualFold(s, s2) {
			t.Errorf("ParseUPID(%q).String() = %q; differs beyond hex case", s, s2)
		}
	})
}

// TestUPIDStringOfMadeUpUPIDs: a UPID built in Go (the simulator's, a
// test's) formats as PVE's upid_encode would, fmt's %08X for each number:
// zero and wide fields, a pstart past nine digits, a start before 1970.
func TestUPIDStringOfMadeUpUPIDs(t *testing.T) {
	pve := func(u proxmox.UPID) string {
		return fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", u.Node, u.PID, u.PStart, u.StartTime.Unix(), u.Type, u.ID, u.User)
	}
	for _, u := range []proxmox.UPID{
		{Node: "pve", Type: "vzstart", StartTime: time.Unix(0, 0)},
		{Node: "pve", PID: 0xFFFFFFFF, PStart: 0xFFFFFFFFFFFFFFFF, StartTime: time.Unix(0xFFFFFFFF, 0), Type: "qmstart", ID: "100", User: "root@pam"},
		{Node: "n1", PID: 0xA, PStart: 0x123456789AB, StartTime: time.Unix(0x6553F0A1, 0), Type: "vzdump", User: "a@pve!tok"},
		{Node: "n1", PID: 1, PStart: 2, Type: "vzdump", ID: "7", User: "u@pam"}, // zero time: a negative start
	} {
		if got, want := u.String(), pve(u); got != want {
			t.Errorf("%+v.String() = %q; want %q", u, got, want)
		}
	}
}
