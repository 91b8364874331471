package engine

import (
	"bytes"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

// TestReferenceGolden renders `felhom-agent doc` for every table a
// playbook can use. When a module changes, go test -update rewrites the
// golden files; the diff is the reference's changelog.
func TestReferenceGolden(t *testing.T) {
	// The markdown reference is the one the README links.
	for format, file := range map[string]string{"text": "../../testdata/golden/doc.txt", "markdown": "../../docs/builtins.md"} {
		var buf bytes.Buffer
		if err := builtins.RenderDoc(&buf, Reference(), format); err != nil {
			t.Fatal(err)
		}
		golden(t, file, buf.Bytes())
	}
}

// TestDeclarationTablesComplete holds the declaration builtins to the
// Table invariant: every function has a signature naming it and a doc,
// and the module has no member without one.
func TestDeclarationTablesComplete(t *testing.T) {
	for _, tab := range DeclarationTables() {
		seen := map[string]bool{}
		for _, f := range tab.Funcs {
			if seen[f.Name] || !strings.HasPrefix(f.Sig, f.Name+"(") || strings.TrimSpace(f.Doc) == "" || f.Fn == nil {
				t.Errorf("%s.%s: duplicate, or Sig %q / Doc / Fn missing", tab.Name, f.Name, f.Sig)
			}
			seen[f.Name] = true
		}
		if tab.Name == "" {
			continue
		}
		for name := range tab.Module().Members {
			if !seen[name] {
				t.Errorf("%s.%s: member without a documented Func", tab.Name, name)
			}
		}
	}
	// Every param kind has its constructor.
	for _, kind := range []ParamKind{KindString, KindInt, KindBool, KindDuration, KindEnum, KindSecret, KindList} {
		if _, ok := ParamTable.Module().Members[string(kind)]; !ok {
			t.Errorf("param.%s is missing", kind)
		}
	}
}
