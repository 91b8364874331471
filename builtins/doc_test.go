package builtins

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	starjson "go.starlark.net/lib/json"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlarkstruct"
)

// CheckTable reports every way t breaks the Table invariant; the tables of
// every package that defines some are walked by a test like this one.
func checkTable(t *testing.T, tab *Table) {
	t.Helper()
	label := tab.Name
	if label == "" {
		label = "(globals)"
	}
	if strings.TrimSpace(tab.Doc) == "" {
		t.Errorf("%s: table has no Doc", label)
	}
	seen := map[string]bool{}
	for _, f := range tab.Funcs {
		if seen[f.Name] {
			t.Errorf("%s.%s: listed twice", label, f.Name)
		}
		seen[f.Name] = true
		if !strings.HasPrefix(f.Sig, f.Name+"(") || !strings.HasSuffix(f.Sig, ")") {
			t.Errorf("%s.%s: Sig %q does not read %s(...)", label, f.Name, f.Sig, f.Name)
		}
		if strings.TrimSpace(f.Doc) == "" {
			t.Errorf("%s.%s: no Doc", label, f.Name)
		}
		if f.Fn == nil {
			t.Errorf("%s.%s: no Fn", label, f.Name)
		}
	}
	for _, a := range tab.Attrs {
		if seen[a.Name] {
			t.Errorf("%s.%s: listed twice", label, a.Name)
		}
		seen[a.Name] = true
		if strings.TrimSpace(a.Doc) == "" {
			t.Errorf("%s.%s: no Doc", label, a.Name)
		}
		if a.Value == nil {
			t.Errorf("%s.%s: no Value", label, a.Name)
		}
	}
	if tab.Name == "" {
		return
	}
	// Every member of the module comes from a documented Func or Attr.
	for name := range tab.Module().Members {
		if !seen[name] {
			t.Errorf("%s.%s: module member without a Func or Attr", label, name)
		}
	}
	if got := len(tab.Module().Members); got != len(seen) {
		t.Errorf("%s: module has %d members; table lists %d", label, got, len(seen))
	}
}

func TestTablesAreComplete(t *testing.T) {
	names := map[string]bool{}
	for _, tab := range Tables() {
		checkTable(t, tab)
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
