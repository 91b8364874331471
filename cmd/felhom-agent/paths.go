package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// playbookPaths expands args (files and directories; none means the
// playbooks directory) into the playbook files to consider and the root
// their load() statements resolve in: the playbooks directory when every
// file lies under it, otherwise the directory of the first argument.
func playbookPaths(playbooks string, args []string) (root string, files []string, err error) {
	if len(args) == 0 {
		args = []string{playbooks}
	}
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return "", nil, err
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(a, "*.star"))
		if err != nil {
			return "", nil, err
		}
		for _, m := range matches {
			if !isTestFile(m) {
				files = append(files, m)
			}
		}
	}
	return rootFor(playbooks, args[0], files), files, nil
}

// rootFor picks the load() root for files: the playbooks directory when it
// holds all of them, else first itself (a directory) or its directory.
func rootFor(playbooks, first string, files []string) string {
	if under(playbooks, files) {
		return playbooks
	}
	if fi, err := os.Stat(first); err == nil && fi.IsDir() {
		return first
	}
	return filepath.Dir(first)
}

// under reports whether every file lies below dir.
func under(dir string, files []string) bool {
	absDir, err := filepath.Abs(dir)
	if err != nil || len(files) == 0 {
		return false
	}
	for _, f := range files {
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

// isTestFile reports whether path is a playbook test (*_test.star).
func isTestFile(path string) bool {
	return strings.HasSuffix(path, "_test.star")
}

// starFiles expands args (none means the playbooks directory) into every
// .star file, directories walked recursively.
func starFiles(playbooks string, args []string) ([]string, error) {
	return walkFiles(playbooks, args, func(p string) bool { return filepath.Ext(p) == ".star" })
}

// testFiles expands args (none means the playbooks directory) into
// *_test.star files, directories searched recursively.
func testFiles(playbooks string, args []string) ([]string, error) {
	return walkFiles(playbooks, args, isTestFile)
}

// walkFiles expands args (none means the playbooks directory): a file is
// taken as given, a directory is walked for the files keep accepts.
func walkFiles(playbooks string, args []string, keep func(string) bool) ([]string, error) {
	if len(args) == 0 {
		args = []string{playbooks}
	}
	var files []string
	for _, a := range args {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (p == a || keep(p)) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
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
