package builtins

import (
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestUnpackers(t *testing.T) {
	tests := []struct {
		name    string
		unpack  starlark.Unpacker
		in      starlark.Value
		want    any // value after a successful unpack
		wantErr string
	}{
		{"vmid ok", new(VMID), starlark.MakeInt(101), VMID(101), ""},
		{"vmid min", new(VMID), starlark.MakeInt(100), VMID(100), ""},
		{"vmid max", new(VMID), starlark.MakeInt(999999999), VMID(999999999), ""},
		{"vmid too small", new(VMID), starlark.MakeInt(99), nil, "got 99, want a guest id between 100 and 999999999"},
		{"vmid too big", new(VMID), starlark.MakeInt(1000000000), nil, "want a guest id between"},
		{"vmid huge", new(VMID), starlark.MakeBigInt(new(big.Int).Lsh(big.NewInt(1), 80)), nil, "want a guest id between"},
		{"vmid string", new(VMID), starlark.String("101"), nil, "got string, want int"},
		{"vmid bool", new(VMID), starlark.True, nil, "got bool, want int"},
		{"vmid float", new(VMID), starlark.Float(101), nil, "got float, want int"},

		{"duration string", new(Duration), starlark.String("1h30m"), Duration(90 * time.Minute), ""},
		{"duration value", new(Duration), startime.Duration(5 * time.Second), Duration(5 * time.Second), ""},
		{"duration seconds", new(Duration), starlark.MakeInt(90), Duration(90 * time.Second), ""},
		{"duration zero", new(Duration), starlark.MakeInt(0), Duration(0), ""},
		{"duration bad string", new(Duration), starlark.String("soon"), nil, `got "soon", want a duration such as "90s"`},
		{"duration negative", new(Duration), starlark.String("-5s"), nil, "got -5s, want a duration that is not negative"},
		{"duration negative int", new(Duration), starlark.MakeInt(-1), nil, "not negative"},
		{"duration overflow", new(Duration), starlark.MakeInt64(1 << 62), nil, "out of range"},
		{"duration float", new(Duration), starlark.Float(1.5), nil, "got float, want duration, string or int (seconds)"},

		{"strings list", new(StringList), starlark.NewList([]starlark.Value{starlark.String("a"), starlark.String("b")}), StringList{"a", "b"}, ""},
		{"strings tuple", new(StringList), starlark.Tuple{starlark.String("a")}, StringList{"a"}, ""},
		{"strings empty", new(StringList), starlark.NewList(nil), StringList{}, ""},
		{"strings bare string", new(StringList), starlark.String("a"), nil, "got string, want list of strings"},
		{"strings bad element", new(StringList), starlark.Tuple{starlark.String("a"), starlark.MakeInt(1)}, nil, "element 1: got int, want string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.unpack.Unpack(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unpack(%v) = %v; want error containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unpack(%v) = %v; want success", tt.in, err)
			}
			var got any
			switch u := tt.unpack.(type) {
			case *VMID:
				got = *u
			case *Duration:
				got = *u
			case *StringList:
				got = *u
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unpack(%v) gave %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestUnpackerErrorsNameTheParameter shows what a playbook author sees
// when an unpacker refuses an argument inside starlark.UnpackArgs.
func TestUnpackerErrorsNameTheParameter(t *testing.T) {
	var vmid VMID
	err := starlark.UnpackArgs("proxmox.start", nil, []starlark.Tuple{{starlark.String("vmid"), starlark.String("101")}}, "vmid", &vmid)
	if want := `proxmox.start: for parameter "vmid": got string, want int`; err == nil || err.Error() != want {
		t.Errorf("UnpackArgs error = %v; want %q", err, want)
	}
}
