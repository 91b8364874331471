package main

import (
	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// DocCmd prints the reference of every builtin module, rendered from the
// same tables that register them, so it cannot drift from what playbooks
// can call.
type DocCmd struct {
	Format string `help:"Output format: text or markdown." enum:"text,markdown" default:"text" env:"-"`
}

// Run writes the reference to standard output.
func (c *DocCmd) Run(g *Globals) error {
	return builtins.RenderDoc(g.stdout, engine.Reference(), c.Format)
}
