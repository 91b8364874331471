package builtins

import (
	"fmt"
	"math"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// The argument types below are starlark.Unpackers for the parameters many
// builtins share. Pass a pointer to one in starlark.UnpackArgs and the
// value is checked while it is unpacked; UnpackArgs prefixes the error
// with the builtin's and the parameter's name:
//
//	proxmox.start: for parameter "vmid": got 42, want a guest id between 100 and 999999999

// VMID is a guest id. It accepts a Starlark int only — never a string or a
// float, so "100" in a playbook is a mistake reported at the call — in the
// range [proxmox.MinVMID, proxmox.MaxVMID].
type VMID int

var _ starlark.Unpacker = (*VMID)(nil)

// Unpack implements starlark.Unpacker.
func (id *VMID) Unpack(v starlark.Value) error {
	i, ok := v.(starlark.Int)
	if !ok {
		return fmt.Errorf("got %s, want int", v.Type())
	}
	n, ok := i.Int64()
	if !ok || n < proxmox.MinVMID || n > proxmox.MaxVMID {
		return fmt.Errorf("got %s, want a guest id between %d and %d", i, proxmox.MinVMID, proxmox.MaxVMID)
	}
	*id = VMID(n)
	return nil
}

// Duration is a non-negative length of time. It accepts a time.duration
// value (from the time module: 5 * time.minute), a string in Go's syntax
// ("90s", "1h30m"), or an int number of seconds.
type Duration time.Duration

var _ starlark.Unpacker = (*Duration)(nil)

// Unpack implements starlark.Unpacker.
func (d *Duration) Unpack(v starlark.Value) error {
	var out time.Duration
	switch x := v.(type) {
	case startime.Duration:
		out = time.Duration(x)
	case starlark.String:
		parsed, err := time.ParseDuration(string(x))
		if err != nil {
			return fmt.Errorf("got %s, want a duration such as \"90s\" or \"1h30m\"", x)
		}
		out = parsed
	case starlark.Int:
		secs, ok := x.Int64()
		if !ok || secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
			return fmt.Errorf("got %s seconds, which is out of range", x)
		}
		out = time.Duration(secs) * time.Second
	default:
		return fmt.Errorf("got %s, want duration, string or int (seconds)", v.Type())
	}
	if out < 0 {
		return fmt.Errorf("got %s, want a duration that is not negative", out)
	}
	*d = Duration(out)
	return nil
}

// StringList is a list or tuple whose elements are all strings. A bare
// string is refused: it is iterable in Python but almost always a mistake
// here (["local"] was meant).
type StringList []string

var _ starlark.Unpacker = (*StringList)(nil)

// Unpack implements starlark.Unpacker.
func (l *StringList) Unpack(v starlark.Value) error {
	var seq starlark.Indexable
	switch x := v.(type) {
	case *starlark.List:
		seq = x
	case starlark.Tuple:
		seq = x
	default:
		return fmt.Errorf("got %s, want list of strings", v.Type())
	}
	out := make([]string, seq.Len())
	for i := range out {
		s, ok := starlark.AsString(seq.Index(i))
		if !ok {
			return fmt.Errorf("element %d: got %s, want string", i, seq.Index(i).Type())
		}
		out[i] = s
	}
	*l = out
	return nil
}
