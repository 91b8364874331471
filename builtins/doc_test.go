package builtins

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	starjson "go.starlark.net/lib/json"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

func TestTablesAreComplete(t *testing.T) {
	names := map[string]bool{}
	for _, tab := range Tables() {
		if err := tab.Check(); err != nil {
			t.Error(err)
		}
		if tab.Name != "" && names[tab.Name] {
			t.Errorf("module %q listed twice by Tables()", tab.Name)
		}
		names[tab.Name] = true
	}
}

// TestStdlibTablesCoverUpstream fails when go.starlark.net adds a member
// to lib/json or lib/time that our tables do not document.
func TestStdlibTablesCoverUpstream(t *testing.T) {
	for _, c := range []struct {
		table *Table
		mod   *starlarkstruct.Module
	}{{JSONTable, starjson.Module}, {TimeTable, startime.Module}} {
		want := slices.Sorted(maps.Keys(c.mod.Members))
		got := slices.Sorted(maps.Keys(c.table.Module().Members))
		if !slices.Equal(got, want) {
			t.Errorf("%s table members = %v; upstream has %v", c.table.Name, got, want)
		}
	}
}

var docFixture = []*Table{
	{Name: "demo", Doc: "A demo module.", Funcs: []Func{
		{Name: "go", Sig: "go(x, *, fast=False)", Doc: "Goes.\nReturns struct with\n  a  first\n  b  second", Fn: catch},
	}, Attrs: []Attr{{Name: "limit", Doc: "The limit."}}},
	{Name: "", Doc: "Globals.", Funcs: []Func{{Name: "g", Sig: "g()", Doc: "A global.", Fn: catch}}},
}

func TestRenderDoc(t *testing.T) {
	tests := []struct{ format, want string }{
		{"text", `FELHOM-AGENT PLAYBOOK REFERENCE

Global functions
================

Globals.

g()
    A global.

Module demo
===========

A demo module.

demo.go(x, *, fast=False)
    Goes.
    Returns struct with
      a  first
      b  second

demo.limit
    The limit.

`},
		{"markdown", "# Playbook reference\n\n## Global functions\n\nGlobals.\n\n### `g()`\n\nA global.\n\n" +
			"## Module `demo`\n\nA demo module.\n\n### `demo.go(x, *, fast=False)`\n\nGoes.\n\nReturns struct with\n\n```\na  first\nb  second\n```\n\n" +
			"### `demo.limit`\n\nThe limit.\n\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := RenderDoc(&buf, docFixture, tt.format); err != nil {
			t.Fatalf("RenderDoc(%s): %v", tt.format, err)
		}
		if got := buf.String(); got != tt.want {
			t.Errorf("RenderDoc(%s) =\n%s\nwant\n%s", tt.format, got, tt.want)
		}
	}
	if err := RenderDoc(new(bytes.Buffer), docFixture, "html"); err == nil || !strings.Contains(err.Error(), `unknown format "html"`) {
		t.Errorf("RenderDoc(html) = %v; want an unknown-format error", err)
	}
}

func TestTableCheck(t *testing.T) {
	fn := func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var x starlark.Value
		return starlark.None, starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x)
	}
	loose := func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
		return starlark.None, nil
	}
	tests := []struct {
		name string
		tab  *Table
		want []string // fragments of the joined error; none: valid
	}{
		{"valid", &Table{Name: "m", Doc: "M.", Effect: Reads, Funcs: []Func{{Name: "f", Sig: "f(x)", Doc: "F.", Journal: Pure, Fn: fn}}, Attrs: []Attr{{Name: "K", Doc: "K.", Value: starlark.MakeInt(1)}}}, nil},
		{"no table doc", &Table{Name: "m"}, []string{"m: table has no Doc"}},
		{"bad sig", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "g(x)", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{`m.f: Sig "g(x)" does not read f(...)`}},
		{"no doc, no fn", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f()"}}}, []string{"m.f: no Doc", "m.f: no Fn"}},
		{"twice", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f()", Doc: "F.", Journal: Pure, Fn: fn}, {Name: "f", Sig: "f()", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{"m.f: listed twice"}},
		{"sig that is not a def header", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x=)", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{`m.f: sig "f(x=)" is not a def header`}},
		{"sig names a parameter the unpacker does not", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(y)", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{"m.f: sig names parameter y, which the builtin does not take"}},
		{"sig allows fewer positional arguments", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(*, x)", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{"m.f: sig allows 0 positional arguments, but the builtin took 1"}},
		{"sig requires what the builtin does not", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x, y)", Doc: "F.", Journal: Pure, Fn: loose}}}, []string{"m.f: sig requires x, but the builtin accepted a call without it"}},
		{"no journal declaration", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x)", Doc: "F.", Fn: fn}}}, []string{"m.f: declares no Journal"}},
		{"no effect", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x)", Doc: "F.", Journal: Pure, Fn: fn}}}, []string{"m.f: no Effect (reads, benign or gated)"}},
		{"gated without when", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x)", Doc: "F.", Journal: Pure, Fn: fn, Effect: Gated}}}, []string{"m.f: gated, but Destructive does not say when"}},
		{"destructive text on a benign builtin", &Table{Name: "m", Doc: "M.", Funcs: []Func{{Name: "f", Sig: "f(x)", Doc: "F.", Journal: Pure, Fn: fn, Effect: Benign, Destructive: "never"}}}, []string{"m.f: Destructive is set, but the effect is benign"}},
		{"attr without value", &Table{Name: "", Doc: "G.", Attrs: []Attr{{Name: "K", Doc: "K."}}}, []string{"(globals).K: no Value"}},
	}
	for _, tt := range tests {
		err := tt.tab.Check()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: Check() = %v; want nil", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Check() = nil; want %q", tt.name, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Check() = %v; want it to contain %q", tt.name, err, w)
			}
		}
	}
}
