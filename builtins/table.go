package builtins

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Table is one Starlark module as data: the same table registers the
// module's members and renders its reference (`felhom-agent doc`), so the
// documentation cannot drift from what playbooks can call.
//
// Invariant (checked by [Table.Check], which every package that defines
// tables runs over them in a test): the table has a Doc; every Func has a
// Sig reading "name(...)" that parses as a def header and matches what its
// Fn unpacks (see [Func.Signature]), a Doc and an Fn; every Attr a Doc and
// a Value; names are unique; and the module has no member the table does
// not document.
type Table struct {
	Name  string // module name as playbooks see it: "proxmox"
	Doc   string // one paragraph: what the module is for
	Funcs []Func // in the order the reference lists them
	Attrs []Attr // constants, documented like functions
	// Effect is the safety-gate effect of every Func that declares none
	// ("" means each Func must declare its own). See [Effect].
	Effect Effect
	// Waits marks a module whose builtins wait on Proxmox or the host (an
	// HTTP answer, a task, a root command, a guest lock): a run inside one
	// is parked (Env.Parked) — it takes no Starlark steps and allocates
	// little — and the memory guard does not stop it for memory others
	// took.
	Waits bool
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
	// Returns declares the struct (or list of structs) the function
	// returns, for `felhom-agent check` to know its fields; nil when it
	// returns something else or check should not reason about it. See
	// [Shape] for the invariant that holds it true.
	Returns *Shape
	// Journal declares how the builtin is journaled in a durable run
	// ([Journaling]); the zero value is no declaration, which Check
	// refuses.
	Journal Journaling
	// Effect declares what the builtin may do to the host, for the safety
	// gate's reference (docs/safety.md); "" takes the Table's.
	Effect Effect
	// Destructive says, for a Gated builtin, when a call is destructive
	// and so needs an operator's signature; empty otherwise.
	Destructive string
	// Fn implements it. It starts with starlark.UnpackArgs.
	Fn func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)
}

// Effect is what a builtin may do to the host, as the safety gate
// (runtime/safety) classifies its calls. It is a declaration for people
// and for the reference: the gate itself classifies every Proxmox
// mutation and changing root command by what it does, whichever builtin
// sends it, and anything it does not know is destructive.
type Effect string

const (
	// Reads change nothing on the host (a log line, a gauge, a
	// notification change only the agent's own state).
	Reads Effect = "reads"
	// Benign changes the host but never destroys: every call passes.
	Benign Effect = "benign"
	// Gated is classified call by call: destructive (an operator's
	// signature needed) when it destroys or overwrites what the run did
	// not create — Func.Destructive says when — benign otherwise.
	Gated Effect = "gated"
)

// EffectOf is f's effect in t: its own, or the table's.
func (t *Table) EffectOf(f *Func) Effect {
	if f.Effect != "" {
		return f.Effect
	}
	return t.Effect
}

// Attr is a documented constant member of a Table.
type Attr struct {
	Name  string
	Doc   string
	Value starlark.Value
}

// qualified is the name a member is registered under: "proxmox.vzdump",
// or the bare name of a global.
func qualified(table, name string) string {
	if table == "" {
		return name
	}
	return table + "." + name
}

// Module builds the Starlark module from the table.
func (t *Table) Module() *starlarkstruct.Module {
	m := &starlarkstruct.Module{Name: t.Name, Members: make(starlark.StringDict, len(t.Funcs)+len(t.Attrs))}
	for _, f := range t.Funcs {
		fn := journaled(f.Journal, f.Fn)
		if t.Waits {
			fn = parking(fn)
		}
		m.Members[f.Name] = starlark.NewBuiltin(t.Name+"."+f.Name, fn)
	}
	for _, a := range t.Attrs {
		m.Members[a.Name] = a.Value
	}
	return m
}

// Check reports every way t breaks the Table invariant, joined; nil when
// it holds. Tests call it for each table they define, so a builtin cannot
// be added without its documentation.
func (t *Table) Check() error {
	label := t.Name
	if label == "" {
		label = "(globals)"
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(label+format, args...)) }
	if strings.TrimSpace(t.Doc) == "" {
		bad(": table has no Doc")
	}
	seen := map[string]bool{}
	for _, f := range t.Funcs {
		if seen[f.Name] {
			bad(".%s: listed twice", f.Name)
		}
		seen[f.Name] = true
		if !strings.HasPrefix(f.Sig, f.Name+"(") || !strings.HasSuffix(f.Sig, ")") {
			bad(".%s: Sig %q does not read %s(...)", f.Name, f.Sig, f.Name)
		}
		if strings.TrimSpace(f.Doc) == "" {
			bad(".%s: no Doc", f.Name)
		}
		if f.Journal == journalingUnset || f.Journal > Mutation {
			bad(".%s: declares no Journal (Pure, Replayed, Once or Mutation)", f.Name)
		}
		switch e := t.EffectOf(&f); {
		case e != Reads && e != Benign && e != Gated:
			bad(".%s: no Effect (reads, benign or gated) for the safety gate's reference", f.Name)
		case e == Gated && strings.TrimSpace(f.Destructive) == "":
			bad(".%s: gated, but Destructive does not say when a call is destructive", f.Name)
		case e != Gated && f.Destructive != "":
			bad(".%s: Destructive is set, but the effect is %s", f.Name, e)
		}
		if f.Fn == nil {
			bad(".%s: no Fn", f.Name)
		} else {
			for _, err := range checkSignature(qualified(t.Name, f.Name), &f) {
				bad(".%s: %v", f.Name, err)
			}
		}
	}
	for _, a := range t.Attrs {
		if seen[a.Name] {
			bad(".%s: listed twice", a.Name)
		}
		seen[a.Name] = true
		if strings.TrimSpace(a.Doc) == "" {
			bad(".%s: no Doc", a.Name)
		}
		if a.Value == nil {
			bad(".%s: no Value", a.Name)
		}
	}
	m := t.Module()
	for name, v := range m.Members {
		if !seen[name] {
			bad(".%s: module member without a Func or Attr", name)
		}
		if b, ok := v.(*starlark.Builtin); ok && t.Name != "" && b.Name() != t.Name+"."+name {
			bad(".%s: registered as %q; want %q so its errors start with it", name, b.Name(), t.Name+"."+name)
		}
	}
	return errors.Join(errs...)
}

// parking marks the run parked (Env.Parked) while fn runs.
func parking(fn func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if env := EnvOf(thread); env != nil && env.Parked != nil {
			env.Parked.Add(1)
			defer env.Parked.Add(-1)
		}
		return fn(thread, b, args, kwargs)
	}
}
