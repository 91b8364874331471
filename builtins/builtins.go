// Package builtins is the Starlark surface of felhom-agent: every module a
// playbook can call, each one [Table] of documented functions, and the Go
// values they convert to and from.
//
// A playbook reaches the host only through these tables. Builtins that act
// (call Proxmox, run a fenced root command, wait, read the host) get what a
// run gives them from the thread's [Env] and refuse while a file loads
// ([ErrAtLoadTime]); pure builtins (log, json, time, catch) work at load
// time too. The same tables render `felhom-agent doc` ([RenderDoc]), so the
// reference cannot drift from what playbooks can call.
//
// builtins knows nothing of files, timers, runs or the hub: the runtime
// package builds the predeclared environment with [Predeclared] and attaches
// an [Env] to each run's thread.
package builtins

import (
	"fmt"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// Tables returns every module playbooks can use, in reference order: the
// global functions first (a Table with an empty Name), then the modules
// that reach Proxmox and the host in the order a flow uses them —
// ProxmoxTable, TaskTable, HostTable, MonitorTable, HubTable — then the
// general-purpose modules log, json and time.
//
// The result is a fresh slice; the Tables themselves are shared and must
// not be modified.
func Tables() []*Table {
	return []*Table{
		GlobalTable,
		ProxmoxTable,
		TaskTable,
		HostTable,
		MonitorTable,
		HubTable,
		LogTable,
		NotifyTable,
		GuestTable,
		JSONTable,
		TimeTable,
	}
}

// GlobalTable holds the builtins a playbook calls without a module prefix.
// A Table with an empty Name is how global functions are registered:
// [Predeclared] binds each of its Funcs under its own name, and
// [RenderDoc] lists them in one section before the modules.
//
// Starlark's own universe (len, range, fail, print, ...) is available to
// every file as well; print writes to the run's log.
var GlobalTable = &Table{
	Effect: Reads,
	Name:   "",
	Doc:    "Functions every file can call without a module prefix, besides Starlark's own built-ins (len, range, sorted, fail, print, ...). print writes a line to the run's log.",
	Funcs: []Func{
		catchFunc,
		undoFunc,
		{
			Name:    "struct",
			Journal: Pure,
			Sig:     "struct(**fields)",
			Doc:     "Returns an immutable value with the given fields (s.name). json.encode and run results show it as an object.",
			Fn:      starlarkstruct.Make,
		},
	},
}

// Predeclared builds the environment every playbook and module file is
// executed in: one module per named Table, and each Func of an unnamed
// Table bound directly under its name. It panics when two tables claim the
// same name, because that is a registration mistake caught at start-up.
//
// The result is frozen and may be shared by any number of threads.
func Predeclared(tables []*Table) starlark.StringDict {
	env := make(starlark.StringDict)
	claim := func(name string, v starlark.Value) {
		if name == "" {
			panic("builtins: a table member has no name")
		}
		if _, dup := env[name]; dup {
			panic(fmt.Sprintf("builtins: %q is registered twice", name))
		}
		env[name] = v
	}
	for _, t := range tables {
		if t.Name != "" {
			claim(t.Name, t.Module())
			continue
		}
		for _, f := range t.Funcs {
			claim(f.Name, starlark.NewBuiltin(f.Name, journaled(f.Journal, f.Fn)))
		}
		for _, a := range t.Attrs {
			claim(a.Name, a.Value)
		}
	}
	env.Freeze()
	return env
}
