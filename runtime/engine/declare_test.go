package engine

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // schedules name zones; do not depend on the test machine's zoneinfo

	"go.starlark.net/starlark"
)

const declTemplate = `"""Backs up guests."""

def run(ctx):
    return None

playbook(name = "p", run = run, %s)
`

func declSource(kwargs string) string { return strings.Replace(declTemplate, "%s", kwargs, 1) }

func TestDeclarationGood(t *testing.T) {
	pb, err := loadTree(t, map[string]string{"p.star": declSource(`
    params = {
        "storage": param.string(default = "usb-backup", doc = "where to"),
        "only": param.list(param.int(), default = []),
        "vmid": param.int(),
        "dry": param.bool(default = False),
        "wait": param.duration(default = "5m"),
        "mode": param.enum(["snapshot", "stop"], default = "snapshot"),
        "password": param.secret(),
        "maybe": param.int(default = None),
        "tags": param.list(param.enum(["a", "b"]), default = ("a",)),
    },
    schedule = "TZ=Europe/Budapest 0 3 * * *",
    jitter = "10m",
    triggers = ["backup", "backup-now"],
    timeout = "4h",
    concurrent = True,
`)}, "p.star")
	if err != nil {
		t.Fatal(err)
	}
	d := pb.Decl
	if d.Name != "p" || d.Doc != "Backs up guests." || d.Schedule != "TZ=Europe/Budapest 0 3 * * *" ||
		strings.Join(d.Triggers, ",") != "backup,backup-now" || d.Timeout != 4*time.Hour || !d.Concurrent || d.Jitter != 10*time.Minute {
		t.Errorf("declaration = %+v", d)
	}
	if got, want := d.Pos.String(), "p.star:6:9"; !strings.HasSuffix(got, want) {
		t.Errorf("Pos = %s; want ...%s", got, want)
	}
	var names []string
	for _, p := range d.Params {
		names = append(names, p.Name)
	}
	if got, want := strings.Join(names, " "), "dry maybe mode only password storage tags vmid wait"; got != want {
		t.Errorf("params = %s; want %s (sorted)", got, want)
	}
	checks := []struct {
		name     string
		typ      string
		required bool
		def      string
	}{
		{"storage", "string", false, `"usb-backup"`},
		{"only", "list of int", false, "[]"},
		{"vmid", "int", true, ""},
		{"dry", "bool", false, "False"},
		{"wait", `duration (such as "90s" or "1h30m")`, false, "5m0s"},
		{"mode", `one of "snapshot", "stop"`, false, `"snapshot"`},
		{"password", "secret", true, ""},
		{"maybe", "int", false, "None"},
		{"tags", `list of one of "a", "b"`, false, `["a"]`},
	}
	for _, c := range checks {
		p := d.Param(c.name)
		if p == nil {
			t.Errorf("Param(%q) = nil", c.name)
			continue
		}
		def := ""
		if p.Default != nil {
			def = p.Default.String()
		}
		if p.Type.String() != c.typ || p.Required != c.required || def != c.def {
			t.Errorf("Param(%q) = %s required=%v default=%s; want %s required=%v default=%s", c.name, p.Type.String(), p.Required, def, c.typ, c.required, c.def)
		}
	}
	if d.Param("storage").Doc != "where to" {
		t.Errorf("storage doc = %q", d.Param("storage").Doc)
	}
	if d.Param("nope") != nil {
		t.Error(`Param("nope") != nil`)
	}
	if _, ok := d.Entry().(*starlark.Function); !ok {
		t.Errorf("Entry() = %v; want the run function", d.Entry())
	}
}

func TestDeclarationGuestTriggers(t *testing.T) {
	pb, err := loadTree(t, map[string]string{"p.star": declSource(`
    params = {"vmids": param.list(param.vmid(), default = []), "mode": param.enum(["snapshot", "stop"], default = "snapshot"), "storage": param.string(default = "x")},
    triggers = ["backup", "other"],
    guest_triggers = ["backup"],
    guest_params = ["mode"],
`)}, "p.star")
	if err != nil {
		t.Fatal(err)
	}
	d := pb.Decl
	if strings.Join(d.GuestTriggers, ",") != "backup" || d.GuestVMID != "vmids" || strings.Join(d.GuestParams, ",") != "mode" {
		t.Errorf("guest declaration = %v %q %v; want [backup] vmids [mode]", d.GuestTriggers, d.GuestVMID, d.GuestParams)
	}
}

func TestDeclarationDocOverrideAndDefaults(t *testing.T) {
	pb, err := loadTree(t, map[string]string{"p.star": declSource(`doc = "  Explicit.  ", timeout = 90`)}, "p.star")
	if err != nil {
		t.Fatal(err)
	}
	if pb.Decl.Doc != "Explicit." || pb.Decl.Timeout != 90*time.Second || pb.Decl.Schedule != "" || pb.Decl.Concurrent {
		t.Errorf("declaration = %+v", pb.Decl)
	}
}

func TestDeclarationBad(t *testing.T) {
	tests := []struct {
		name, kwargs string
		want         string // regexp matched against the first diagnostic, "p.star:L:C: msg"
	}{
		{"unknown param type", `params = {"x": param.float()}`, `^p\.star:6:\d+: module has no \.float field or method`},
		{"param not a spec", `params = {"x": "string"}`, `playbook: params: "x": got string, want a param\.\*\(\) declaration`},
		{"param name", `params = {"Bad": param.int()}`, `params: "Bad": a parameter name is lower-case`},
		{"param key", `params = {1: param.int()}`, `params: key 1: got int, want string`},
		{"string default", `params = {"x": param.string(default = 1)}`, `param\.string: default: expected string, got int`},
		{"int default", `params = {"x": param.int(default = "1")}`, `param\.int: default: expected int, got string "1"`},
		{"int default float", `params = {"x": param.int(default = 1.0)}`, `param\.int: default: expected int, got float`},
		{"int default huge", `params = {"x": param.int(default = 1 << 64)}`, `expected int, got 18446744073709551616 \(out of the 64-bit range\)`},
		{"bool default", `params = {"x": param.bool(default = 0)}`, `param\.bool: default: expected bool, got int`},
		{"duration default", `params = {"x": param.duration(default = "soon")}`, `param\.duration: default: expected duration .*, got string "soon"`},
		{"duration negative", `params = {"x": param.duration(default = -5)}`, `param\.duration: default: expected duration`},
		{"enum default", `params = {"x": param.enum(["a", "b"], default = "c")}`, `param\.enum: default: expected one of "a", "b", got string "c"`},
		{"enum empty", `params = {"x": param.enum([])}`, `param\.enum: values: want at least one value`},
		{"enum duplicate", `params = {"x": param.enum(["a", "a"])}`, `param\.enum: values: "a" is listed twice`},
		{"enum blank", `params = {"x": param.enum(["a", ""])}`, `param\.enum: values\[1\]: want a non-empty string`},
		{"enum values type", `params = {"x": param.enum("ab")}`, `param\.enum: for parameter "?values"?: got string, want list of strings`},
		{"list default", `params = {"x": param.list(param.int(), default = [1, "2"])}`, `param\.list: default: element 1: expected int, got string "2"`},
		{"list of list", `params = {"x": param.list(param.list(param.int()))}`, `param\.list: elem: a list's elements cannot be of kind list`},
		{"list of secret", `params = {"x": param.list(param.secret())}`, `elem: a list's elements cannot be of kind secret`},
		{"list elem default", `params = {"x": param.list(param.int(default = 1))}`, `param\.list: elem: an element type has no default`},
		{"list elem type", `params = {"x": param.list("int")}`, `param\.list: for parameter "?elem"?: got string, want param`},
		{"secret default", `params = {"x": param.secret(default = "hunter2")}`, `param\.secret: unexpected keyword argument "default"`},
		{"bad schedule", `schedule = "0 3 * *"`, `playbook: schedule: schedule "0 3 \* \*": has 4 fields, want 5`},
		{"invalid schedule", `schedule = "0 25 * * *"`, `playbook: schedule: schedule "0 25 \* \* \*": hour field "25": 25 is out of range 0-23`},
		{"schedule zone", `schedule = "TZ=Mars/Olympus 0 3 * * *"`, `schedule: schedule "TZ=Mars/Olympus 0 3 \* \* \*": time zone "Mars/Olympus": unknown time zone`},
		{"schedule empty zone", `schedule = "TZ= 0 3 * * *"`, `empty time zone in "TZ="`},
		{"trigger name", `triggers = ["Backup"]`, `playbook: triggers\[0\] "Backup": want lower-case letters`},
		{"trigger twice", `triggers = ["a", "a"]`, `playbook: triggers: "a" is listed twice`},
		{"triggers string", `triggers = "a"`, `playbook: for parameter "triggers": got string, want list of strings`},
		{"timeout zero", `timeout = "0s"`, `playbook: timeout: must be longer than zero`},
		{"timeout bad", `timeout = "forever"`, `playbook: timeout: got "forever", want a duration`},
		{"doc type", `doc = 1`, `playbook: doc: got int, want string`},
		{"jitter without schedule", `jitter = "5m"`, `playbook: jitter: want a duration of zero or more, with a schedule`},
		{"jitter bad", `schedule = "@daily", jitter = "soon"`, `playbook: jitter: got "soon", want a duration`},
		{"unknown keyword", `shedule = "@daily"`, `playbook: unexpected keyword argument "shedule" \(did you mean schedule\?\)`},
		{"concurrent type", `concurrent = "yes"`, `playbook: for parameter "concurrent": got string, want bool`},
		{"guest trigger not a trigger", `triggers = ["a"], guest_triggers = ["b"]`, `playbook: guest_triggers\[0\] "b": not among triggers \[a\]`},
		{"guest trigger twice", `triggers = ["a"], params = {"vmid": param.vmid()}, guest_triggers = ["a", "a"]`, `guest_triggers: "a" is listed twice`},
		{"guest trigger without vmid", `triggers = ["a"], params = {"vmid": param.int()}, guest_triggers = ["a"]`, `guest_triggers: the playbook needs a parameter vmid = param.vmid\(\) or vmids`},
		{"guest params alone", `guest_params = ["x"]`, `guest_params: given without guest_triggers`},
		{"guest param unknown", `triggers = ["a"], params = {"vmid": param.vmid()}, guest_triggers = ["a"], guest_params = ["mode"]`, `guest_params\[0\] "mode": not a declared parameter`},
		{"guest param vmid", `triggers = ["a"], params = {"vmids": param.list(param.vmid(), default = [])}, guest_triggers = ["a"], guest_params = ["vmids"]`, `guest_params\[0\] "vmids": the guest's vmid is bound by the agent`},
		{"guest param secret", `triggers = ["a"], params = {"vmid": param.vmid(), "pw": param.secret()}, guest_triggers = ["a"], guest_params = ["pw"]`, `guest_params\[0\] "pw": a secret cannot come from a guest`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadTree(t, map[string]string{"p.star": declSource(tt.kwargs)}, "p.star")
			checkFirstDiag(t, err, tt.want)
		})
	}
}

func TestDeclarationBadShape(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"missing run", "playbook(name = \"p\")\n", `^p\.star:1:9: playbook: missing argument for run$`},
		{"run not callable", "playbook(name = \"p\", run = 1)\n", `playbook: for parameter "run": got int, want callable`},
		{"run a builtin", "playbook(name = \"p\", run = len)\n", `playbook: run: got builtin_function_or_method len, want a function defined with def`},
		{"run without ctx", "def run():\n    pass\nplaybook(name = \"p\", run = run)\n", `playbook: run: run takes no parameters; it must take one \(ctx\)`},
		{"run two params", "def run(ctx, x):\n    pass\nplaybook(name = \"p\", run = run)\n", `run has 2 required parameters; it is called with one`},
		{"run kwonly", "def run(ctx, *, x):\n    pass\nplaybook(name = \"p\", run = run)\n", `run has the required keyword-only parameter x`},
		{"bad name", "def run(ctx):\n    pass\nplaybook(name = \"Backup!\", run = run)\n", `playbook: name "Backup!": want lower-case letters`},
		{"positional", "def run(ctx):\n    pass\nplaybook(\"p\", run)\n", `playbook: takes keyword arguments only`},
		{"twice", "def run(ctx):\n    pass\nplaybook(name = \"p\", run = run)\nplaybook(name = \"q\", run = run)\n", `^p\.star:4:9: playbook: called twice \(first at .*p\.star:3:9\)$`},
		{"no declaration", "def run(ctx):\n    pass\n", `^p\.star:1:1: no playbook\(\) declaration`},
		{"acting at load", "test.act()\n", `^p\.star:1:9: test\.act: may only be called while a playbook runs, not while its file is loaded$`},
		{"syntax", "def run(ctx)\n    pass\n", `^p\.star:2:1: got newline, want ':'$`},
		{"undefined", "def run(ctx):\n    return proxmux.guests()\n", `^p\.star:2:12: undefined: proxmux$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadTree(t, map[string]string{"p.star": tt.src}, "p.star")
			checkFirstDiag(t, err, tt.want)
		})
	}
}

// The run variants that are accepted: extra parameters with defaults and
// *args.
func TestDeclarationEntryShapes(t *testing.T) {
	for _, def := range []string{"def run(ctx, retries = 3):", "def run(*args):", "def run(ctx, *rest, **kw):", "def run(ctx = None):"} {
		_, err := loadTree(t, map[string]string{"p.star": def + "\n    pass\nplaybook(name = \"p\", run = run)\n"}, "p.star")
		if err != nil {
			t.Errorf("%s: %v", def, err)
		}
	}
}

func checkFirstDiag(t *testing.T, err error, want string) {
	t.Helper()
	var lerr *LoadError
	if !errors.As(err, &lerr) || len(lerr.Diagnostics) == 0 {
		t.Fatalf("error = %v; want a *LoadError matching %q", err, want)
	}
	got := relDiag(lerr.Diagnostics[0], filepath.Dir(lerr.Diagnostics[0].File))
	if !regexp.MustCompile(want).MatchString(got) {
		t.Errorf("diagnostic = %q; want match for %q", got, want)
	}
}
