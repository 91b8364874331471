package builtins

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScripts runs every testdata/scripts/*.star against the fakes with
// privileged operations enabled; each file asserts with the starlarktest
// assert module, so a failed assertion is reported at its line.
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/scripts/*.star")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".star"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rig := newRig(t)
			if _, err := runStar(t, rig.env, string(src)); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		})
	}
}
