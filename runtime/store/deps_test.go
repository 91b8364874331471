package store

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the store a leaf: the standard library and the SQLite
// driver only. The runtime imports the store, never the other way round,
// and UPIDs are plain strings here so that proxmox stays out too.
func TestImports(t *testing.T) {
	allowed := map[string]string{
		"modernc.org/sqlite": "the one dependency: the pure-Go SQLite driver",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if !strings.Contains(first, ".") {
				continue // standard library
			}
			if _, ok := allowed[path]; !ok {
				t.Errorf("%s imports %s; the store may import only the standard library and modernc.org/sqlite", name, path)
			}
		}
	}
}
