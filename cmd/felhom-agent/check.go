package main

import (
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// CheckCmd loads, resolves and validates playbooks without running them.
type CheckCmd struct {
	Paths []string `arg:"" optional:"" help:"Playbook files or directories (default: the playbooks directory)."`
}

// Run prints one "file:line:col: message" line per problem and fails when
// there is any.
func (c *CheckCmd) Run(g *Globals) error {
	checked, diags := engine.Check(rootFor(g.Playbooks, c.Paths), c.Paths)
	for _, d := range diags {
		fmt.Fprintln(g.stdout, d.String())
	}
	if len(diags) > 0 {
		return failed(fmt.Errorf("check: %d problem(s)", len(diags)))
	}
	var playbooks, modules int
	for _, rel := range checked {
		if engine.ClassifyFile(rel) == engine.FilePlaybook {
			playbooks++
		} else {
			modules++
		}
	}
	fmt.Fprintf(g.stdout, "%s and %s OK\n", plural(playbooks, "playbook"), plural(modules, "module"))
	return nil
}

// plural is "1 playbook", "2 playbooks".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
