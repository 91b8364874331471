// Package logtest holds the slog handler that tests use to see what was
// logged: a Recorder keeps every record with the attributes of With()
// applied. It is for tests only; nothing in the agent binary imports it.
package logtest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Recorder is a slog.Handler that keeps every record, with the
// attributes of With() calls applied. Handlers derived from it with
// WithAttrs share its records. It is safe for concurrent use.
type Recorder struct {
	mu      *sync.Mutex
	records *[]slog.Record
	attrs   []slog.Attr
}

var _ slog.Handler = (*Recorder)(nil)

// New returns an empty Recorder.
func New() *Recorder { return &Recorder{mu: new(sync.Mutex), records: new([]slog.Record)} }

// Enabled implements slog.Handler: every level is recorded.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.records = append(*r.records, rec)
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clip(r.attrs), as...)
	return &c
}

// WithGroup implements slog.Handler; groups are not kept.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

// Records returns a copy of every record so far.
func (r *Recorder) Records() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*r.records)
}

// Lines renders every record as "LEVEL msg k=v ...".
func (r *Recorder) Lines() []string {
	var out []string
	for _, rec := range r.Records() {
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
