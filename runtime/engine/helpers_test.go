package engine

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

// loadTree writes files and loads the playbook main from them.
func loadTree(t testing.TB, files map[string]string, main string) (*Playbook, error) {
	t.Helper()
	dir := enginetest.WriteTree(t, files)
	l, err := NewLoader(dir, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Load(filepath.Join(dir, main))
}

// diagStrings renders the diagnostics of a *LoadError relative to dir.
func diagStrings(err error, dir string) []string {
	var lerr *LoadError
	if !errors.As(err, &lerr) {
		if err == nil {
			return nil
		}
		return []string{"not a LoadError: " + err.Error()}
	}
	var out []string
	for _, d := range lerr.Diagnostics {
		out = append(out, relDiag(d, dir))
	}
	return out
}

func relDiag(d Diagnostic, dir string) string {
	if rel, err := filepath.Rel(dir, d.File); err == nil && !strings.HasPrefix(rel, "..") {
		d.File = filepath.ToSlash(rel)
	}
	return d.String()
}
