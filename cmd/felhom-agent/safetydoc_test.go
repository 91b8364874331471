package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

// TestSafetyDocGolden: docs/safety.md lists every builtin with its
// classification, from the same tables the agent registers; go test
// -update rewrites the list between its markers.
func TestSafetyDocGolden(t *testing.T) {
	const file, begin, end = "../../docs/safety.md", "<!-- effects:begin -->\n", "<!-- effects:end -->"
	var buf bytes.Buffer
	if err := builtins.RenderEffects(&buf, reference()); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q … %q section", file, begin, end)
	}
	got := s[:i+len(begin)] + buf.String() + s[j:]
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != s {
		t.Errorf("the builtin list in %s is out of date (go test -update rewrites it)", file)
	}
}
