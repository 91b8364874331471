package main

import (
	"context"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/statedir"
)

// StateCmd backs up and restores the agent's state directory (see
// docs/state.md): the run store with its idempotency keys and version
// store, and the operator's files beside it.
type StateCmd struct {
	Export StateExportCmd `cmd:"" help:"Write the state directory to an archive: an online backup of the run store (safe while serve runs) plus the other files."`
	Import StateImportCmd `cmd:"" help:"Restore an archive into a state directory (a new host): refused while an agent holds it, or if it already holds a run store."`
}

// stateFlags are the flags both state commands take.
type stateFlags struct {
	StateDir string `help:"${state_dir_help}" placeholder:"DIR" config:"state_dir"`
}

// dir is --state-dir, or the default state directory (dirs.go).
func (f *stateFlags) dir() string {
	if f.StateDir == "" {
		f.StateDir = hostDirs().stateDir().Dir
	}
	return f.StateDir
}

// StateExportCmd writes an export archive.
type StateExportCmd struct {
	stateFlags
	File string `arg:"" help:"The archive to write (must not exist); mode 0600." type:"path"`
}

// Run exports.
func (c *StateExportCmd) Run(g *Globals) error {
	m, err := statedir.Export(context.Background(), c.dir(), c.File)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "exported %s to %s:\n", c.StateDir, c.File)
	for _, f := range m.Files {
		fmt.Fprintf(g.stdout, "  %s  %d bytes  sha256 %s\n", f.Name, f.Size, f.SHA256)
	}
	return nil
}

// StateImportCmd restores an export archive.
type StateImportCmd struct {
	stateFlags
	File string `arg:"" help:"The archive to restore (from state export)." type:"existingfile"`
}

// Run imports.
func (c *StateImportCmd) Run(g *Globals) error {
	m, err := statedir.Import(context.Background(), c.dir(), c.File)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "imported %s (exported %s from %s) into %s: %d files; start the agent on it\n",
		c.File, m.Created.Format("2006-01-02 15:04:05Z"), m.Source, c.StateDir, len(m.Files))
	return nil
}
