package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// recorder is a slog.Handler that keeps every record with the
// attributes of With() applied.
type recorder struct {
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: new(sync.Mutex), records: new([]slog.Record)} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.records = append(*r.records, rec)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clip(r.attrs), as...)
	return &c
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

// lines renders every record as "LEVEL msg k=v ...".
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range *r.records {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}
