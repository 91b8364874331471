package main

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/golden/doc.txt, docs/builtins.md)")

// TestReferenceGolden renders `felhom-agent doc` — every table a playbook
// or a test file can use. When a module changes, go test -update rewrites
// the golden files; the diff is the reference's changelog.
func TestReferenceGolden(t *testing.T) {
	// The markdown reference is the one the README links.
	for format, file := range map[string]string{"text": "../../testdata/golden/doc.txt", "markdown": "../../docs/builtins.md"} {
		var buf bytes.Buffer
		if err := builtins.RenderDoc(&buf, reference(), format); err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (go test -update creates it)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("felhom-agent doc --format %s differs from %s (go test -update rewrites it)", format, file)
		}
	}
}
