package builtins

import (
	"slices"
	"strings"
	"testing"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

func TestConfigKeyOrder(t *testing.T) {
	keys := []string{"mp10", "net1", "mp2", "mp", "mp1x", "arch", "mp01", "mp1", "net0"}
	slices.SortFunc(keys, configKeyOrder)
	want := []string{"arch", "mp", "mp01", "mp1", "mp2", "mp10", "mp1x", "net0", "net1"}
	if !slices.Equal(keys, want) {
		t.Errorf("sorted = %q; want %q", keys, want)
	}
}

func TestSplitTags(t *testing.T) {
	for in, want := range map[string][]string{
		"":         nil,
		"prod;web": {"prod", "web"},
		"a,b c;;d": {"a", "b", "c", "d"},
		" single ": {"single"},
	} {
		l := splitTags(in)
		var got []string
		for i := range l.Len() {
			got = append(got, string(l.Index(i).(starlark.String)))
		}
		if !slices.Equal(got, want) {
			t.Errorf("splitTags(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestTimeValue(t *testing.T) {
	if v := timeValue(time.Time{}); v != starlark.None {
		t.Errorf("timeValue(zero) = %v; want None", v)
	}
	ts := time.Date(2026, 11, 20, 3, 0, 1, 0, time.UTC)
	if v := timeValue(ts); v != startime.Time(ts) {
		t.Errorf("timeValue(%v) = %v", ts, v)
	}
}

var durationArgTests = []struct {
	in      starlark.Value
	want    time.Duration
	errText string
}{
	{starlark.String("10m"), 10 * time.Minute, ""},
	{starlark.String("1h30m"), 90 * time.Minute, ""},
	{starlark.MakeInt(90), 90 * time.Second, ""},
	{starlark.MakeInt(0), 0, ""},
	{startime.Duration(3 * time.Second), 3 * time.Second, ""},
	{starlark.String("soon"), 0, `bad duration "soon"`},
	{starlark.String("-5s"), 0, "negative"},
	{starlark.MakeInt(-1), 0, "negative"},
	{starlark.MakeInt64(1 << 62), 0, "out of range"},
	{starlark.Float(1.5), 0, "got float"},
	{starlark.True, 0, "got bool"},
}

func TestDurationArg(t *testing.T) {
	for _, tt := range durationArgTests {
		var d durationArg
		err := d.Unpack(tt.in)
		switch {
		case tt.errText != "":
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("Unpack(%v) = %v; want error containing %q", tt.in, err, tt.errText)
			}
		case err != nil || !d.set || d.d != tt.want:
			t.Errorf("Unpack(%v) = %v, %v; want %v", tt.in, d.d, err, tt.want)
		}
	}
}

func TestVMIDArgs(t *testing.T) {
	for _, tt := range []struct {
		in     starlark.Value
		ok     bool
		filter bool // vmidFilter also accepts 0
	}{
		{starlark.MakeInt(100), true, true},
		{starlark.MakeInt(999999999), true, true},
		{starlark.MakeInt(99), false, false},
		{starlark.MakeInt(1000000000), false, false},
		{starlark.MakeInt(0), false, true},
		{starlark.MakeInt(-101), false, false},
		{starlark.String("101"), false, false},
		{starlark.Float(101), false, false},
	} {
		var id VMID
		if err := id.Unpack(tt.in); (err == nil) != tt.ok {
			t.Errorf("VMID.Unpack(%v) = %v; want ok %v", tt.in, err, tt.ok)
		}
		var f vmidFilter
		if err := f.Unpack(tt.in); (err == nil) != tt.filter {
			t.Errorf("vmidFilter.Unpack(%v) = %v; want ok %v", tt.in, err, tt.filter)
		}
	}
}
