package main

import (
	"fmt"
	"log/slog"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/playtest"
)

// CheckCmd loads, resolves and validates playbooks without running them.
type CheckCmd struct {
	Paths []string `arg:"" optional:"" help:"Playbook files or directories (default: the playbooks directory)."`
}

// Run prints one "file:line:col: message" line per problem and fails when
// there is any. Test files (*_test.star) are checked against the test
// modules as well as the builtins.
func (c *CheckCmd) Run(g *Globals) error {
	root := rootFor(g.Playbooks, c.Paths)
	l, err := engine.NewLoader(root, engine.LoaderOptions{Logger: slog.New(slog.DiscardHandler), TestTables: playtest.Tables()})
	if err != nil {
		fmt.Fprintln(g.stdout, engine.Diagnostic{File: root, Msg: err.Error()}.String())
		return failed(fmt.Errorf("check: 1 problem(s)"))
	}
	checked, diags := l.Check(c.Paths)
	for _, d := range diags {
		fmt.Fprintln(g.stdout, d.String())
	}
	if len(diags) > 0 {
		return failed(fmt.Errorf("check: %d problem(s)", len(diags)))
	}
	var playbooks, modules, tests int
	for _, rel := range checked {
		switch engine.ClassifyFile(rel) {
		case engine.FilePlaybook:
			playbooks++
		case engine.FileTest:
			tests++
		default:
			modules++
		}
	}
	fmt.Fprintf(g.stdout, "%s, %s and %s OK\n", plural(playbooks, "playbook"), plural(modules, "module"), plural(tests, "test file"))
	return nil
}

// plural is "1 playbook", "2 playbooks", "2 retries".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if stem, ok := strings.CutSuffix(noun, "y"); ok && !strings.HasSuffix(stem, "a") && !strings.HasSuffix(stem, "e") && !strings.HasSuffix(stem, "o") {
		return fmt.Sprintf("%d %sies", n, stem)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
