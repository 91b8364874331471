package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestRunsBounded (issue 12, "Runs are bounded"): at the default 512 MiB
// limit, a run that allocates gigabytes in a few Starlark steps (thirty
// s = s + s doublings; json.decode of a 60-million-element array) fails
// with kind memory, and a run stuck where cancellation cannot reach (a
// 70-deep tuple DAG hashed as a dict key) is given up within a second of
// its 2 s timeout. Figures: time to stop and the process's peak RSS.
func TestRunsBounded(t *testing.T) {
	t.Parallel()
	root := filepath.Join("testdata", "bounded")
	tests := []struct {
		file, status, kind string
		ceiling            time.Duration // from process start to exit, generous
		maxRSSMiB          int64         // generous ceiling; the figure is recorded
	}{
		{"doubling.star", "failed", "memory", 30 * time.Second, 512 + 1024 + 256},
		{"decode.star", "failed", "memory", 30 * time.Second, 512 + 256},
		{"tuples.star", "timed_out", "", 2*time.Second + 15*time.Second, 256},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out := runPlaybook(t, nil, root, tt.file, "--sim")
			took := time.Since(start)
			s := out.mustSummary(t)
			if s.Status != tt.status || s.Kind != tt.kind {
				t.Errorf("status %s kind %q (%s); want %s %q", s.Status, s.Kind, s.Error, tt.status, tt.kind)
			}
			if took > tt.ceiling {
				t.Errorf("took %v; want under %v", took, tt.ceiling)
			}
			if rss := out.MaxRSSKB >> 10; rss > tt.maxRSSMiB {
				t.Errorf("peak RSS %d MiB; want at most %d MiB", rss, tt.maxRSSMiB)
			}
			record(t, tt.file+" at the default 512 MiB limit: status / run took / process took / peak RSS", "%s %s / %s / %s / %d MiB",
				s.Status, s.Kind, s.Duration, took.Round(100*time.Millisecond), out.MaxRSSKB>>10)
		})
	}
}
