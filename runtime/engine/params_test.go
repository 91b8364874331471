package engine

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const paramsPlaybook = `
def run(ctx):
    return ctx.params

playbook(
    name = "params",
    run = run,
    params = {
        "storage": param.string(default = "usb-backup"),
        "vmid": param.int(),
        "dry": param.bool(default = False),
        "wait": param.duration(default = "5m"),
        "mode": param.enum(["snapshot", "stop"], default = "snapshot"),
        "password": param.secret(),
        "only": param.list(param.int(), default = []),
        "names": param.list(param.string(), default = ["a"]),
        "maybe": param.int(default = None),
    },
)
`

func paramsDecl(t testing.TB) *Declaration {
	t.Helper()
	pb, err := loadTree(t, map[string]string{"params.star": paramsPlaybook}, "params.star")
	if err != nil {
		t.Fatal(err)
	}
	return pb.Decl
}

// required are values for the required parameters, so each case below
// varies one parameter only.
var required = map[string]string{"vmid": "101", "password": "hunter2"}

var coerceTests = []struct {
	param   string
	input   string
	json    bool
	want    any    // the record value after success
	wantErr string // the exact error otherwise
}{
	{"storage", "nas", false, "nas", ""},
	{"storage", `"nas"`, true, "nas", ""},
	{"storage", ``, false, "", ""},
	{"storage", `1`, true, nil, `parameter "storage": expected string, got 1`},
	{"vmid", "101", false, int64(101), ""},
	{"vmid", "-7", false, int64(-7), ""},
	{"vmid", "abc", false, nil, `parameter "vmid": expected int, got "abc"`},
	{"vmid", "1.5", false, nil, `parameter "vmid": expected int, got "1.5"`},
	{"vmid", "99999999999999999999", false, nil, `parameter "vmid": expected int, got "99999999999999999999"`},
	{"vmid", `101`, true, int64(101), ""},
	{"vmid", `"101"`, true, nil, `parameter "vmid": expected int, got "101"`},
	{"vmid", `1.5`, true, nil, `parameter "vmid": expected int, got 1.5`},
	{"vmid", `1e3`, true, nil, `parameter "vmid": expected int, got 1e3`},
	{"vmid", `{"a": 1}`, true, nil, `parameter "vmid": expected int, got {"a":1}`},
	{"vmid", `[1`, true, nil, `parameter "vmid": expected int, got invalid JSON`},
	{"dry", "true", false, true, ""},
	{"dry", "0", false, false, ""},
	{"dry", "yes", false, nil, `parameter "dry": expected bool, got "yes"`},
	{"dry", `true`, true, true, ""},
	{"dry", `"true"`, true, nil, `parameter "dry": expected bool, got "true"`},
	{"wait", "90s", false, "1m30s", ""},
	{"wait", "300", false, "5m0s", ""},
	{"wait", "-5s", false, nil, `parameter "wait": expected duration (such as "90s" or "1h30m"), got "-5s"`},
	{"wait", "soon", false, nil, `parameter "wait": expected duration (such as "90s" or "1h30m"), got "soon"`},
	{"wait", `"1h"`, true, "1h0m0s", ""},
	{"wait", `60`, true, "1m0s", ""},
	{"wait", `1.5`, true, nil, `parameter "wait": expected duration (such as "90s" or "1h30m"), got 1.5`},
	{"mode", "stop", false, "stop", ""},
	{"mode", "STOP", false, nil, `parameter "mode": expected one of "snapshot", "stop", got "STOP"`},
	{"mode", `"snapshot"`, true, "snapshot", ""},
	{"mode", `3`, true, nil, `parameter "mode": expected one of "snapshot", "stop", got 3`},
	{"password", "correct horse", false, Redacted, ""},
	{"password", `"correct horse"`, true, Redacted, ""},
	{"password", `4242`, true, nil, `parameter "password": expected secret, got a number`},
	{"password", `{"pw": "correct horse"}`, true, nil, `parameter "password": expected secret, got an object`},
	{"only", "101,102", false, []any{int64(101), int64(102)}, ""},
	{"only", " 101 , 102 ", false, []any{int64(101), int64(102)}, ""},
	{"only", "", false, []any{}, ""},
	{"only", "[101, 102]", false, []any{int64(101), int64(102)}, ""},
	{"only", "101,x", false, nil, `parameter "only": expected list of int, got "101,x"`},
	{"only", `[1, 2]`, true, []any{int64(1), int64(2)}, ""},
	{"only", `[]`, true, []any{}, ""},
	{"only", `["1"]`, true, nil, `parameter "only": expected list of int, got ["1"]`},
	{"only", `"1,2"`, true, nil, `parameter "only": expected list of int, got "1,2"`},
	{"names", "a,b", false, []any{"a", "b"}, ""},
	{"maybe", "5", false, int64(5), ""},
	{"maybe", `null`, true, nil, ""},
	{"storage", `null`, true, "usb-backup", ""},
}

func TestCoerce(t *testing.T) {
	d := paramsDecl(t)
	for _, tt := range coerceTests {
		t.Run(tt.param+"="+tt.input, func(t *testing.T) {
			strs := map[string]string{}
			for k, v := range required {
				if k != tt.param {
					strs[k] = v
				}
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
					t.Fatalf("Coerce(%s=%s) error = %v; want *ParamError %q", tt.param, tt.input, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Coerce(%s=%s) = %v", tt.param, tt.input, err)
			}
			if got := p.Record()[tt.param]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Coerce(%s=%s) record = %#v; want %#v", tt.param, tt.input, got, tt.want)
			}
		})
	}
}

func TestCoerceRefusals(t *testing.T) {
	d := paramsDecl(t)
	tests := []struct {
		name string
		strs map[string]string
		raw  map[string]json.RawMessage
		want string
	}{
		{"missing required", map[string]string{"password": "x"}, nil,
			`parameter "vmid": expected int, got no value (it has no default)`},
		{"null is not a value", map[string]string{"password": "x"}, map[string]json.RawMessage{"vmid": json.RawMessage(`null`)},
			`parameter "vmid": expected int, got no value (it has no default)`},
		{"unknown", map[string]string{"vmid": "1", "password": "x", "vmdi": "2"}, nil,
			`unknown parameter "vmdi" (declared: dry, maybe, mode, names, only, password, storage, vmid, wait)`},
		{"a typo", map[string]string{"vmid": "1", "password": "x", "storag": "2"}, nil,
			`unknown parameter "storag": did you mean storage? (declared: dry, maybe, mode, names, only, password, storage, vmid, wait)`},
		{"twice", map[string]string{"vmid": "1", "password": "x"}, map[string]json.RawMessage{"vmid": json.RawMessage(`1`)},
			`parameter "vmid": expected one value, got two (as a string and as JSON)`},
		{"all problems, in order", map[string]string{"vmid": "x", "zzz": "1"}, nil,
			"unknown parameter \"zzz\" (declared: dry, maybe, mode, names, only, password, storage, vmid, wait)\n" +
				"parameter \"password\": expected secret, got no value (it has no default)\n" +
				"parameter \"vmid\": expected int, got \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Coerce(tt.strs, tt.raw)
			var pe *ParamError
			if err == nil || err.Error() != tt.want || !errors.As(err, &pe) {
				t.Errorf("Coerce() error = %v; want *ParamError(s)\n%s", err, tt.want)
			}
		})
	}
}

func TestParamsValueAndRecord(t *testing.T) {
	d := paramsDecl(t)
	p, err := d.Coerce(map[string]string{"vmid": "101", "password": "hunter2", "wait": "90s"}, map[string]json.RawMessage{"only": json.RawMessage(`[5]`)})
	if err != nil {
		t.Fatal(err)
	}
	want := `struct(dry = False, maybe = None, mode = "snapshot", names = ["a"], only = [5], password = "hunter2", storage = "usb-backup", vmid = 101, wait = 1m30s)`
	if got := p.Value().String(); got != want {
		t.Errorf("Value() = %s\nwant %s", got, want)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"dry":false,"maybe":null,"mode":"snapshot","names":["a"],"only":[5],"password":"[redacted]","storage":"usb-backup","vmid":101,"wait":"1m30s"}`
	if string(data) != wantJSON {
		t.Errorf("json.Marshal(params) = %s\nwant %s", data, wantJSON)
	}
	if strings.Contains(string(data), "hunter2") {
		t.Error("the record contains the secret")
	}
	// Record returns a copy.
	p.Record()["vmid"] = "changed"
	if p.Record()["vmid"] != int64(101) {
		t.Error("Record() exposes the Params' own map")
	}
}

// FuzzCoerceParams feeds untrusted values of every kind to Coerce. It
// must never panic; a refusal must be a *ParamError that does not echo a
// secret; an accepted value must survive a round trip through its record.
func FuzzCoerceParams(f *testing.F) {
	for _, tt := range coerceTests {
		f.Add(tt.param, tt.input, tt.json)
	}
	d := paramsDecl(f)
	secretRefusal := regexp.MustCompile(`^parameter "password": expected secret, got (a number|an object|an array|a boolean|a string|invalid JSON|nothing|null|no value \(it has no default\))$`)
	f.Fuzz(func(t *testing.T, param, input string, isJSON bool) {
		strs := map[string]string{"vmid": "1", "password": "x"}
		var raw map[string]json.RawMessage
		if isJSON {
			delete(strs, param)
			raw = map[string]json.RawMessage{param: json.RawMessage(input)}
		} else {
			strs[param] = input
		}
		p, err := d.Coerce(strs, raw)
		if err != nil {
			var pe *ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("Coerce error %v is not a *ParamError", err)
			}
			if param == "password" && !secretRefusal.MatchString(err.Error()) {
				t.Fatalf("secret refusal %q may echo the value", err)
			}
			return
		}
		if d.Param(param) == nil || param == "password" {
			return
		}
		rec := p.Record()[param]
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatalf("record value %#v does not marshal: %v", rec, err)
		}
		p2, err := d.Coerce(map[string]string{"vmid": "1", "password": "x"}, map[string]json.RawMessage{param: data})
		if param == "vmid" {
			p2, err = d.Coerce(map[string]string{"password": "x"}, map[string]json.RawMessage{param: data})
		}
		if err != nil {
			t.Fatalf("record %s of %q does not coerce back: %v", data, input, err)
		}
		if got := p2.Record()[param]; !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip of %q: %#v, then %#v", input, rec, got)
		}
	})
}

// TestCoerceDefaultsShared: runs of defaults share one Params, which no
// caller can change (Record is a copy), and a declaration whose defaults
// do not suffice refuses every time rather than once.
func TestCoerceDefaultsShared(t *testing.T) {
	pb, err := loadTree(t, map[string]string{"d.star": `
def run(ctx):
    return ctx.params

playbook(name = "d", run = run, params = {"only": param.list(param.int(), default = [1])})
`}, "d.star")
	if err != nil {
		t.Fatal(err)
	}
	a, err := pb.Decl.Coerce(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Record()["only"] = "changed"
	b, err := pb.Decl.Coerce(map[string]string{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("two runs of defaults coerced apart; want one shared Params")
	}
	if got := b.Record()["only"]; !reflect.DeepEqual(got, []any{int64(1)}) {
		t.Errorf("record only = %#v after a caller changed its copy; want [1]", got)
	}
	if c, err := pb.Decl.Coerce(map[string]string{"only": "[2]"}, nil); err != nil || c == a {
		t.Errorf("Coerce(only=[2]) = %p, %v; want its own Params", c, err)
	}
	d := paramsDecl(t) // vmid and password have no default
	for range 2 {
		if _, err := d.Coerce(nil, nil); err == nil {
			t.Error("Coerce(nil, nil) of required parameters succeeded")
		}
	}
}
