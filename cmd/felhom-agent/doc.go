package main

import (
	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/playtest"
)

// DocCmd prints the reference of every builtin module, rendered from the
// same tables that register them, so it cannot drift from what playbooks
// can call.
type DocCmd struct {
	Format string `help:"Output format: text or markdown." enum:"text,markdown" default:"text" env:"-"`
}

// Run writes the reference to standard output.
func (c *DocCmd) Run(g *Globals) error {
	return builtins.RenderDoc(g.stdout, reference(), c.Format)
}

// reference is every table a playbook or a test file can use, in the
// order the reference lists them: the engine's (declarations and
// builtins), then the test modules.
func reference() []*builtins.Table { return append(engine.Reference(), playtest.Tables()...) }
