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
	root, paths, err := playbookPaths(g.Playbooks, c.Paths)
	if err != nil {
		return err
	}
	diags := engine.Check(root, paths)
	for _, d := range diags {
		fmt.Fprintln(g.stdout, d.String())
	}
	if len(diags) > 0 {
		return failed(fmt.Errorf("check: %d problem(s)", len(diags)))
	}
	fmt.Fprintf(g.stdout, "%d playbook file(s) OK\n", len(paths))
	return nil
}
