package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// rootFor picks the load() root for the files or directories args name
// (none: the playbooks directory): the playbooks directory when it holds
// all of them, else the first argument itself (a directory) or its
// directory. Which files under them count is the engine's one rule
// ([engine.ListFiles]).
func rootFor(playbooks string, args []string) string {
	if len(args) == 0 || under(playbooks, args) {
		return playbooks
	}
	if fi, err := os.Stat(args[0]); err == nil && fi.IsDir() {
		return args[0]
	}
	return filepath.Dir(args[0])
}

// loadPlaybook loads file for run and plan with rootFor's root. When that
// root is not the playbooks directory (the file lies outside it), a failed
// load() says which root it resolved in, and why.
func loadPlaybook(playbooks, file string) (*engine.Playbook, error) {
	root := rootFor(playbooks, []string{file})
	pb, err := engine.LoadFile(file, root)
	if err != nil && root != playbooks && strings.Contains(err.Error(), "cannot load ") {
		return nil, fmt.Errorf("%w\n(load() resolved in %s, the file's own directory, since the file is outside the playbooks directory %s; pass --playbooks DIR to load from another)", err, root, playbooks)
	}
	return pb, err
}

// under reports whether every path lies below dir (or is dir).
func under(dir string, paths []string) bool {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for _, f := range paths {
		abs, err := filepath.Abs(f)
		if err != nil {
			return false
		}
		rel, err := filepath.Rel(absDir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return false
		}
	}
	return true
}

// listFiles is [engine.ListFiles] for the command line: args (none: the
// playbooks directory) expanded to the files of the given kinds, as paths
// under their root, and that root.
func listFiles(playbooks string, args []string, kinds ...engine.FileKind) (root string, files []string, err error) {
	root = rootFor(playbooks, args)
	rels, err := engine.ListFiles(root, args, kinds...)
	if err != nil {
		return "", nil, err
	}
	for _, rel := range rels {
		files = append(files, filepath.Join(root, filepath.FromSlash(rel)))
	}
	return root, files, nil
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory, keeping path's mode, so a crash never leaves half a file
// (and an editor or the agent's watcher sees one rename).
func writeFileAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
