package builtins

import (
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Table is one Starlark module as data: the same table registers the
// module's members and renders its reference (`felhom-agent doc`), so the
// documentation cannot drift from what playbooks can call.
//
// Invariant: every Func has a non-empty Sig and Doc (a test walks all
// tables), and Func names are unique within a Table.
type Table struct {
	Name  string // module name as playbooks see it: "proxmox"
	Doc   string // one paragraph: what the module is for
	Funcs []Func // in the order the reference lists them
	Attrs []Attr // constants, documented like functions
}

// Func is one builtin of a Table.
type Func struct {
	// Name is the member name; the builtin is registered as Table.Name +
	// "." + Name so every error it raises starts with "proxmox.vzdump: ".
	Name string
	// Sig is the Python-style signature shown in the reference, e.g.
	// "vzdump(vmid, storage, mode=\"snapshot\", wait=True)".
	Sig string
	// Doc says what the function promises: what it returns, when it
	// fails, and whether it blocks.
	Doc string
	// Fn implements it. It starts with starlark.UnpackArgs.
	Fn func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)
}

// Attr is a documented constant member of a Table.
type Attr struct {
	Name  string
	Doc   string
	Value starlark.Value
}

// Module builds the Starlark module from the table.
func (t *Table) Module() *starlarkstruct.Module {
	m := &starlarkstruct.Module{Name: t.Name, Members: make(starlark.StringDict, len(t.Funcs)+len(t.Attrs))}
	for _, f := range t.Funcs {
		m.Members[f.Name] = starlark.NewBuiltin(t.Name+"."+f.Name, f.Fn)
	}
	for _, a := range t.Attrs {
		m.Members[a.Name] = a.Value
	}
	return m
}
