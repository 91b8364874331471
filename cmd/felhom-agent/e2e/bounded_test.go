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
		// maxRSSMiB is a generous ceiling (0: not asserted); the figure is
		// recorded either way. The doubling's last step alone allocates
		// 1 GiB in one Go call the guard cannot see into, so its peak
		// depends on whether the sampler caught the step before it — on a
		// loaded machine it may not — and says nothing the status does not:
		// unbounded, the run succeeds.
		maxRSSMiB int64
	}{
		{"doubling.star", "failed", "memory", 30 * time.Second, 768},        // unbounded: 2 GB; before the sized operators the limit plus the last doubling (1,071 MiB)
		{"repeat.star", "failed", "memory", 30 * time.Second, 768},          // before the sized operators it succeeded at 790 MiB
		{"decode.star", "failed", "memory", 30 * time.Second, 1024},         // unbounded: 4.4 GB
		{"tuples.star", "timed_out", "", 2*time.Second + 15*time.Second, 0}, // its point is the time; memory is the race build's
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
			if rss := out.MaxRSSKB >> 10; tt.maxRSSMiB > 0 && rss > tt.maxRSSMiB {
				t.Errorf("peak RSS %d MiB; want at most %d MiB", rss, tt.maxRSSMiB)
			}
			record(t, tt.file+" at the default 512 MiB limit: status / run took / process took / peak RSS", "%s %s / %s / %s / %d MiB",
				s.Status, s.Kind, s.Duration, took.Round(100*time.Millisecond), out.MaxRSSKB>>10)
		})
	}
}
