package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const constrainedPlaybook = `
def run(ctx):
    return ctx.params

playbook(
    name = "constrained",
    run = run,
    params = {
        "vmid": param.vmid(default = 9000),
        "vmids": param.list(param.vmid(), default = []),
        "hostname": param.hostname(default = "golden"),
        "fqdn": param.hostname(fqdn = True, default = "a.example"),
        "keep": param.int(min = 0, default = 3),
        "pct": param.int(min = 0, max = 100, default = 50),
        "below": param.int(max = 10, default = 0),
        "storage": param.string(pattern = "[a-z][a-z0-9-]*", max_len = 8, default = "local"),
        "short": param.string(max_len = 3, default = ""),
        "text": param.string(default = ""),
        "mode": param.enum(["a", "b"], default = "a"),
        "pw": param.secret(),
    },
)
`

func constrainedDecl(t testing.TB) *Declaration {
	t.Helper()
	pb, err := loadTree(t, map[string]string{"c.star": constrainedPlaybook}, "c.star")
	if err != nil {
		t.Fatal(err)
	}
	return pb.Decl
}

// constraintTests: each value is given as a command-line string (json
// false) or as JSON from the hub; a refusal names the parameter and what
// it expected, before any run exists.
var constraintTests = []struct {
	param, input string
	json         bool
	want         any
	wantErr      string
}{
	{"vmid", "100", false, int64(100), ""},
	{"vmid", "999999999", false, int64(999999999), ""},
	{"vmid", "99", false, nil, `parameter "vmid": expected vmid (100..999999999), got "99"`},
	{"vmid", `99`, true, nil, `parameter "vmid": expected vmid (100..999999999), got 99`},
	{"vmid", `1000000000`, true, nil, `parameter "vmid": expected vmid (100..999999999), got 1000000000`},
	{"vmid", "-101", false, nil, `parameter "vmid": expected vmid (100..999999999), got "-101"`},
	{"vmids", "101,102", false, []any{int64(101), int64(102)}, ""},
	{"vmids", "101,99", false, nil, `parameter "vmids": expected list of vmid (100..999999999), got "101,99"`},
	{"vmids", `[101, 0]`, true, nil, `parameter "vmids": expected list of vmid (100..999999999), got [101,0]`},
	{"hostname", "shop", false, "shop", ""},
	{"hostname", "a", false, "a", ""},
	{"hostname", "web-01", false, "web-01", ""},
	{"hostname", "9lives", false, "9lives", ""},
	{"hostname", strings.Repeat("a", 63), false, strings.Repeat("a", 63), ""},
	{"hostname", strings.Repeat("a", 64), false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "` + strings.Repeat("a", 63) + `…`},
	{"hostname", "a;reboot", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "a;reboot"`},
	{"hostname", `"a;reboot"`, true, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "a;reboot"`},
	{"hostname", "-a", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "-a"`},
	{"hostname", "a-", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "a-"`},
	{"hostname", "a.b", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "a.b"`},
	{"hostname", "", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got ""`},
	{"hostname", "a\nb", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "a\nb"`},
	{"hostname", "ünï", false, nil, `parameter "hostname": expected hostname (one DNS label: letters, digits and inner '-', at most 63), got "ünï"`},
	{"fqdn", "shop.example.com", false, "shop.example.com", ""},
	{"fqdn", "shop", false, "shop", ""},
	{"fqdn", "a..b", false, nil, `parameter "fqdn": expected DNS name (labels of letters, digits and inner '-', joined by '.', at most 253), got "a..b"`},
	{"fqdn", "a.", false, nil, `parameter "fqdn": expected DNS name (labels of letters, digits and inner '-', joined by '.', at most 253), got "a."`},
	{"fqdn", strings.Repeat("abcdefg.", 32) + "a", false, nil, `parameter "fqdn": expected DNS name (labels of letters, digits and inner '-', joined by '.', at most 253), got "` + strings.Repeat("abcdefg.", 7) + `abcdefg…`},
	{"keep", "0", false, int64(0), ""},
	{"keep", "-5", false, nil, `parameter "keep": expected int >= 0, got "-5"`},
	{"keep", `-5`, true, nil, `parameter "keep": expected int >= 0, got -5`},
	{"pct", "100", false, int64(100), ""},
	{"pct", "101", false, nil, `parameter "pct": expected int in 0..100, got "101"`},
	{"below", "11", false, nil, `parameter "below": expected int <= 10, got "11"`},
	{"below", "-9223372036854775808", false, int64(-9223372036854775808), ""},
	{"storage", "usb-1", false, "usb-1", ""},
	{"storage", "USB", false, nil, `parameter "storage": expected string matching "[a-z][a-z0-9-]*" of at most 8 bytes, got "USB"`},
	{"storage", "x|y", false, nil, `parameter "storage": expected string matching "[a-z][a-z0-9-]*" of at most 8 bytes, got "x|y"`},
	{"storage", "toolongname", false, nil, `parameter "storage": expected string matching "[a-z][a-z0-9-]*" of at most 8 bytes, got "toolongname"`},
	{"storage", "ok\nx", false, nil, `parameter "storage": expected string matching "[a-z][a-z0-9-]*" of at most 8 bytes, got "ok\nx"`},
	{"short", "abc", false, "abc", ""},
	{"short", "ééé", false, nil, `parameter "short": expected string of at most 3 bytes, got "ééé"`},
	// Any string: valid UTF-8 without NUL, from the command line and JSON.
	{"text", "line one\nline two", false, "line one\nline two", ""},
	{"text", "a\x00b", false, nil, `parameter "text": expected string, got "a\x00b"`},
	{"text", `"a\u0000b"`, true, nil, `parameter "text": expected string, got "a\u0000b"`},
	{"text", "\xff\xfe", false, nil, `parameter "text": expected string, got "\xff\xfe"`},
	{"text", "\"\xff\"", true, nil, `parameter "text": expected string, got invalid UTF-8`},
	{"mode", "a\x00", false, nil, `parameter "mode": expected one of "a", "b", got "a\x00"`},
	{"pw", "a\x00b", false, nil, `parameter "pw": expected secret, got a string`},
	{"pw", `"a\u0000b"`, true, nil, `parameter "pw": expected secret, got a string`},
}

func TestCoerceConstraints(t *testing.T) {
	d := constrainedDecl(t)
	for _, tt := range constraintTests {
		t.Run(tt.param+"="+tt.input, func(t *testing.T) {
			strs := map[string]string{}
			if tt.param != "pw" {
				strs["pw"] = "x"
			}
			var raw map[string]json.RawMessage
			if tt.json {
				raw = map[string]json.RawMessage{tt.param: json.RawMessage(tt.input)}
			} else {
				strs[tt.param] = tt.input
			}
			p, err := d.Coerce(strs, raw)
			if tt.wantErr != "" {
				var pe *ParamError
				if err == nil || err.Error() != tt.wantErr || !errors.As(err, &pe) || pe.Param != tt.param {
					t.Fatalf("Coerce(%s=%q) error = %v\nwant *ParamError %s", tt.param, tt.input, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Coerce(%s=%q) = %v", tt.param, tt.input, err)
			}
			if got := p.Record()[tt.param]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Coerce(%s=%q) record = %#v; want %#v", tt.param, tt.input, got, tt.want)
			}
		})
	}
}

// TestConstraintDeclarations: a constraint that cannot hold, or a default
// that breaks its own constraint, fails the file as it loads.
func TestConstraintDeclarations(t *testing.T) {
	tests := []struct{ name, params, want string }{
		{"vmid default", `{"x": param.vmid(default = 99)}`, `param.vmid: default: expected vmid (100..999999999), got int 99`},
		{"vmid list default", `{"x": param.list(param.vmid(), default = [100, 5])}`, `param.list: default: expected list of vmid (100..999999999), got list [100, 5]`},
		{"hostname default", `{"x": param.hostname(default = "a b")}`, `param.hostname: default: expected hostname (one DNS label: letters, digits and inner '-', at most 63), got string "a b"`},
		{"int default below", `{"x": param.int(min = 0, default = -1)}`, `param.int: default: expected int >= 0, got int -1`},
		{"min above max", `{"x": param.int(min = 5, max = 1)}`, `param.int: min 5 is above max 1`},
		{"min type", `{"x": param.int(min = "1")}`, `param.int: min: got string, want int`},
		{"min huge", `{"x": param.int(min = 1 << 64)}`, `param.int: min: 18446744073709551616 is out of the 64-bit range`},
		{"bad pattern", `{"x": param.string(pattern = "(")}`, "param.string: pattern: error parsing regexp"},
		{"pattern default", `{"x": param.string(pattern = "[a-z]+", default = "A")}`, `param.string: default: expected string matching "[a-z]+", got string "A"`},
		{"max_len negative", `{"x": param.string(max_len = -1)}`, `param.string: max_len: want 0 (no bound) or more, got -1`},
		{"string default NUL", `{"x": param.string(default = "a\x00")}`, `param.string: default: expected string, got string "a\x00"`},
		{"vmid no bounds", `{"x": param.vmid(min = 1)}`, `param.vmid: unexpected keyword argument "min"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "def run(ctx):\n    pass\n\nplaybook(name = \"p\", run = run, params = " + tt.params + ")\n"
			_, err := loadTree(t, map[string]string{"p.star": src}, "p.star")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("load error = %v\nwant one containing %s", err, tt.want)
			}
		})
	}
}

// FuzzCoerceConstraints: whatever a client sends, Coerce never panics, a
// refusal is a *ParamError, and an accepted value meets its declaration
// and survives a round trip through its record.
func FuzzCoerceConstraints(f *testing.F) {
	for _, tt := range constraintTests {
		f.Add(tt.param, tt.input, tt.json)
	}
	d := constrainedDecl(f)
	f.Fuzz(func(t *testing.T, param, input string, isJSON bool) {
		strs := map[string]string{"pw": "x"}
		var raw map[string]json.RawMessage
		if isJSON {
			delete(strs, param)
			raw = map[string]json.RawMessage{param: json.RawMessage(input)}
		} else {
			strs[param] = input
		}
		p, err := d.Coerce(strs, raw)
		if err != nil {
			if _, ok := errors.AsType[*ParamError](err); !ok {
				t.Fatalf("Coerce error %v is not a *ParamError", err)
			}
			return
		}
		if d.Param(param) == nil || param == "pw" {
			return
		}
		rec := p.Record()[param]
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("record value %#v does not marshal: %v", rec, err)
		}
		p2, err := d.Coerce(map[string]string{"pw": "x"}, map[string]json.RawMessage{param: data})
		if err != nil {
			t.Fatalf("record %s of %q does not coerce back: %v", data, input, err)
		}
		if got := p2.Record()[param]; !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip of %q: %#v, then %#v", input, rec, got)
		}
		if s, ok := rec.(string); ok && (strings.ContainsRune(s, 0) || !utf8.ValidString(s)) {
			t.Fatalf("accepted a string with NUL: %q", s)
		}
	})
}

// TestLoadErrorEscapesControlBytes: a load error quoting what a playbook
// wrote (its fail() message) cannot carry terminal escapes or newlines.
func TestLoadErrorEscapesControlBytes(t *testing.T) {
	_, err := loadTree(t, map[string]string{"p.star": "fail(\"\\x1b[2J\\x1b]0;pwned\\x07\\nfake: line\\x00\")\n"}, "p.star")
	if err == nil {
		t.Fatal("loaded")
	}
	const want = `p.star:1:5: fail: \x1b[2J\x1b]0;pwned\x07\nfake: line\x00`
	if got := err.Error(); !strings.HasSuffix(got, "/"+want) {
		t.Errorf("load error = %q; want %q", got, want)
	}
}
