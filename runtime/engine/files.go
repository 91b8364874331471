package engine

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// FileKind is what a file under the playbooks root is to the agent. The
// one rule, [ClassifyFile], serves `check`, `test`, the registry and the
// watcher alike, so they never disagree about which files count.
type FileKind int

// The kinds of files under a playbooks root.
const (
	// FileIgnored: not a .star file, or hidden — a path element starts
	// with "." (editors' lock, swap and backup files such as .#x.star and
	// .x.star.swp; .git).
	FileIgnored FileKind = iota
	// FilePlaybook: a .star file directly in the root that is not a test.
	FilePlaybook
	// FileModule: a .star file in a subdirectory that is not a test; it is
	// loaded by playbooks (load("lib/x.star", ...)).
	FileModule
	// FileTest: a playbook test, *_test.star, anywhere.
	FileTest
)

// ClassifyFile says what the root-relative, slash-separated path rel is.
func ClassifyFile(rel string) FileKind {
	for _, elem := range strings.Split(rel, "/") {
		if Hidden(elem) {
			return FileIgnored
		}
	}
	switch {
	case path.Ext(rel) != ".star":
		return FileIgnored
	case strings.HasSuffix(rel, "_test.star"):
		return FileTest
	case strings.Contains(rel, "/"):
		return FileModule
	}
	return FilePlaybook
}

// Hidden reports whether a file or directory name is hidden from the
// agent: it starts with a dot. The walkers never enter a hidden directory.
func Hidden(name string) bool { return strings.HasPrefix(name, ".") && name != "." && name != ".." }

// ListFiles expands paths into the root-relative slash paths of the files
// to act on, sorted and without repeats: a file named explicitly is taken
// as it is (whatever its kind), a directory is walked recursively for the
// files whose kind is one of kinds, hidden directories skipped. No paths
// means the root. A path outside the root is an error naming it.
func ListFiles(root string, paths []string, kinds ...FileKind) ([]string, error) {
	if len(paths) == 0 {
		paths = []string{root}
	}
	realRoot, err := realPath(root)
	if err != nil {
		return nil, err
	}
	rel := func(p string) (string, error) { return rootRel(realRoot, root, p) }
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			r, err := rel(p)
			if err != nil {
				return nil, err
			}
			files = append(files, r)
			continue
		}
		err = filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if fp != p && Hidden(d.Name()) {
					return filepath.SkipDir
				}
				return nil
			}
			r, err := rel(fp)
			if err != nil {
				return err
			}
			if slices.Contains(kinds, ClassifyFile(r)) {
				files = append(files, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}
