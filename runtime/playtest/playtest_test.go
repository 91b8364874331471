package playtest

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	results, err := Run(context.Background(), []string{"testdata/sample_test.star", "testdata/broken_test.star"}, Options{Root: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{ // test → regexps of its failures, in order
		"test_passes":                          nil,
		"test_fresh_world_each_test":           nil,
		"test_assertions_fail_at_their_line":   {`^testdata/sample_test.star:10:14: one: 1 != 2$`, `^testdata/sample_test.star:11:16: two$`},
		"test_fails_helper":                    {`^testdata/sample_test.star:16:17: call succeeded; want an error matching /anything/$`},
		"test_error_stops_the_test":            {`^testdata/sample_test.star:19:9: fail: boom$`},
		"test_run_playbook_refuses_bad_params": nil,
		"":                                     {`^testdata/broken_test.star:4:5: undefined: undefined_name$`},
	}
	if len(results) != len(want) {
		t.Fatalf("got %d results; want %d: %+v", len(results), len(want), results)
	}
	for _, r := range results {
		patterns, ok := want[r.Test]
		if !ok {
			t.Errorf("unexpected result %+v", r)
			continue
		}
		if len(r.Failures) != len(patterns) {
			t.Errorf("%s: failures %q; want %d matching %q", r.Test, r.Failures, len(patterns), patterns)
			continue
		}
		for i, p := range patterns {
			if !regexp.MustCompile(p).MatchString(r.Failures[i]) {
				t.Errorf("%s: failure %q does not match %q", r.Test, r.Failures[i], p)
			}
		}
		if r.Passed() != (len(patterns) == 0) {
			t.Errorf("%s: Passed() = %v", r.Test, r.Passed())
		}
	}
}

// TestGateOwnSnapshots: an unsigned run may delete a snapshot its own task
// took, and not one a failed snapshot task of the same name stood beside
// (testdata/snapgate_test.star).
func TestGateOwnSnapshots(t *testing.T) {
	if results := runPassing(t, "testdata/snapgate_test.star"); len(results) != 2 {
		t.Errorf("ran %d tests; want the 2 of snapgate_test.star", len(results))
	}
}

// runPassing runs the tests of file, failing t for each one that fails.
func runPassing(t *testing.T, file string) []Result {
	t.Helper()
	results, err := Run(context.Background(), []string{file}, Options{Root: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s: %q", r.Test, r.Failures)
		}
	}
	return results
}

// TestClock runs the tests of the test's clock, sim.add_snapshot,
// sim.add_archive and the keyword did-you-means (testdata/clock_test.star).
func TestClock(t *testing.T) {
	if results := runPassing(t, "testdata/clock_test.star"); len(results) < 6 {
		t.Errorf("ran %d tests; want the 6 of clock_test.star", len(results))
	}
}

func TestRunMatch(t *testing.T) {
	results, err := Run(context.Background(), []string{"testdata/sample_test.star"}, Options{Root: "testdata", Match: regexp.MustCompile("fresh")})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Test != "test_fresh_world_each_test" || !results[0].Passed() {
		t.Errorf("results = %+v; want only test_fresh_world_each_test, passed", results)
	}
}

func TestSimNeedsATest(t *testing.T) {
	results, err := Run(context.Background(), []string{"testdata/toplevel_test.star"}, Options{Root: "testdata"})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || len(results[0].Failures) != 1 || !strings.Contains(results[0].Failures[0], "only a test function may shape the simulator") {
		t.Errorf("results = %+v; want one load failure naming the rule", results)
	}
}
