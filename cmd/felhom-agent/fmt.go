package main

import (
	"bytes"
	"fmt"
	"os"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// FmtCmd formats playbooks like gofmt: it prints the files whose
// formatting differs, or rewrites them with -w.
type FmtCmd struct {
	Write bool     `short:"w" help:"Rewrite files in place instead of listing them." env:"-"`
	Paths []string `arg:"" optional:"" help:"Files or directories (default: the playbooks directory)."`
}

// Run lists (or rewrites) every file whose formatting differs; a file that
// does not parse is an error naming its position.
func (c *FmtCmd) Run(g *Globals) error {
	_, files, err := listFiles(g.Playbooks, c.Paths, engine.FilePlaybook, engine.FileModule, engine.FileTest)
	if err != nil {
		return err
	}
	var bad int
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out, err := engine.Format(src, f)
		if err != nil {
			fmt.Fprintln(g.stderr, err)
			bad++
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		if !c.Write {
			fmt.Fprintln(g.stdout, f)
			continue
		}
		if err := writeFileAtomic(f, out); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("fmt: %d file(s) do not parse", bad)
	}
	return nil
}
