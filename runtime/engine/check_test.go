package engine

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

// checkRoot holds one broken playbook per file. The first line of each
// says what `check` must report for it:
//
//	### FILE:LINE:COL "REGEXP"   a diagnostic at that position (itself a
//	                             regexp) whose message matches REGEXP
//	### ok                       no diagnostics
//
// Modules under lib/ may carry the same line.
const checkRoot = "../../testdata/check"

var expectation = regexp.MustCompile(`^### (?:(ok)|(\S+) "(.*)")$`)

func TestCheckTestdata(t *testing.T) {
	l, err := NewLoader(checkRoot, LoaderOptions{Tables: enginetest.Tables(nil), MaxSteps: 100_000, Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	byFile := map[string][]string{}
	_, all := l.Check(nil)
	for _, d := range all {
		rel, err := filepath.Rel(checkRoot, d.File)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel)
		d.File = rel
		byFile[rel] = append(byFile[rel], d.String())
	}

	seen := map[string]bool{}
	err = filepath.WalkDir(checkRoot, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".star") {
			return err
		}
		rel, _ := filepath.Rel(checkRoot, path)
		rel = filepath.ToSlash(rel)
		seen[rel] = true
		first := firstLine(t, path)
		m := expectation.FindStringSubmatch(first)
		if m == nil {
			if ClassifyFile(rel) == FilePlaybook {
				t.Errorf("%s: first line %q is not a ### expectation", rel, first)
			}
			return nil
		}
		t.Run(rel, func(t *testing.T) {
			if m[1] == "ok" {
				if got := byFile[rel]; len(got) > 0 {
					t.Errorf("Check reported %q; want nothing", got)
				}
				return
			}
			posFile := strings.SplitN(m[2], ":", 2)[0]
			want := regexp.MustCompile("^" + m[2] + ": .*" + m[3])
			if !slices.ContainsFunc(byFile[posFile], want.MatchString) {
				t.Errorf("Check reported\n  %s\nwant a diagnostic matching %s", strings.Join(byFile[posFile], "\n  "), want)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for file, diags := range byFile {
		if !seen[file] {
			t.Errorf("diagnostics for a file that is not in testdata: %s %q", file, diags)
		}
	}
}

func firstLine(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan()
	return s.Text()
}

func TestCheckPaths(t *testing.T) {
	l, err := NewLoader(checkRoot, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(checkRoot, "good.star")
	if _, d := l.Check([]string{good}); len(d) != 0 {
		t.Errorf("Check(good.star) = %v; want nothing", d)
	}
	// Checked alone, name_taken.star is fine: names clash only among the
	// files checked together.
	if _, d := l.Check([]string{filepath.Join(checkRoot, "name_taken.star")}); len(d) != 0 {
		t.Errorf("Check(name_taken.star) = %v", d)
	}
	if _, d := l.Check([]string{good, filepath.Join(checkRoot, "name_taken.star")}); len(d) != 1 || !strings.Contains(d[0].Msg, `playbook name "good" is already declared`) {
		t.Errorf("Check(good, name_taken) = %v", d)
	}
	// A directory is every .star file under it.
	_, d := l.Check([]string{filepath.Join(checkRoot, "lib")})
	var files []string
	for _, x := range d {
		files = append(files, filepath.Base(x.File))
	}
	if got := strings.Join(slices.Compact(files), " "); got != "broken_helper.star cycle_a.star cycle_b.star declares.star" {
		t.Errorf("Check(lib/) reported for %q", got)
	}
	if _, d := l.Check([]string{filepath.Join(checkRoot, "nope.star")}); len(d) != 1 || !strings.Contains(d[0].String(), "nope.star: no such file") {
		t.Errorf("Check(missing file) = %v", d)
	}
	if _, d := l.Check([]string{"check_test.go"}); len(d) != 1 || !strings.Contains(d[0].Msg, "is not under the playbooks root") {
		t.Errorf("Check(file outside the root) = %v", d)
	}
}

func TestCheckPackageFunction(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{"p.star": pbSource("p", "    return log"), "q.star": "x = \n"})
	checked, d := Check(dir, nil)
	if len(d) != 1 || d[0].File != filepath.Join(dir, "q.star") || d[0].Line != 1 || !slices.Equal(checked, []string{"p.star", "q.star"}) {
		t.Errorf("Check = %v, %v; want p.star and q.star checked, one diagnostic in q.star", checked, d)
	}
	if _, d := Check(filepath.Join(dir, "missing"), nil); len(d) != 1 || !strings.Contains(d[0].Msg, "playbooks root") {
		t.Errorf("Check(missing root) = %v", d)
	}
}

func TestDiagnosticString(t *testing.T) {
	for d, want := range map[Diagnostic]string{
		{File: "a.star", Line: 3, Col: 9, Msg: "m"}: "a.star:3:9: m",
		{File: "a.star", Line: 3, Msg: "m"}:         "a.star:3: m",
		{File: "a.star", Msg: "m"}:                  "a.star: m",
	} {
		if got := d.String(); got != want {
			t.Errorf("String() = %q; want %q", got, want)
		}
		if d.Error() != want {
			t.Errorf("Error() = %q; want %q", d.Error(), want)
		}
	}
}

func TestClassifyFile(t *testing.T) {
	tests := []struct {
		rel  string
		want FileKind
	}{
		{"backup.star", FilePlaybook},
		{"backup_test.star", FileTest},
		{"lib/retention.star", FileModule},
		{"lib/retention_test.star", FileTest},
		{"lib/deep/x.star", FileModule},
		{".#backup.star", FileIgnored},        // an Emacs lock file
		{".backup.star.swp", FileIgnored},     // a vim swap file
		{".backup.star", FileIgnored},         // hidden
		{"lib/.#retention.star", FileIgnored}, // hidden in a subdirectory
		{".git/hooks/x.star", FileIgnored},    // in a hidden directory
		{"backup.star~", FileIgnored},         // a backup file
		{"README.md", FileIgnored},
		{"star", FileIgnored},
	}
	for _, tt := range tests {
		if got := ClassifyFile(tt.rel); got != tt.want {
			t.Errorf("ClassifyFile(%q) = %v; want %v", tt.rel, got, tt.want)
		}
	}
}

// TestCheckAndRegistryAgree: check of a directory and the registry see
// the same playbooks: editors' files are skipped by both, modules in
// subdirectories are checked, and a broken module is reported.
func TestCheckAndRegistryAgree(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{
		"ok.star":           pbSource("ok", "    return 1"),
		".#ok.star":         "this is an editor's lock file, not Starlark",
		".ok.star.swp":      "binary junk",
		"ok_test.star":      "def test_x():\n    pass\n",
		"lib/broken.star":   "def f(:\n",
		"lib/.#broken.star": "junk",
		".git/x.star":       "junk",
	})
	checked, d := Check(dir, nil)
	if !slices.Equal(checked, []string{"lib/broken.star", "ok.star"}) {
		t.Errorf("Check checked %q; want lib/broken.star and ok.star", checked)
	}
	if len(d) != 1 || d[0].File != filepath.Join(dir, "lib/broken.star") {
		t.Errorf("Check = %v; want one diagnostic, in lib/broken.star", d)
	}
	reg, err := NewRegistry(dir, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	reg.LoadAll()
	var files []string
	for _, e := range reg.Entries() {
		files = append(files, e.File)
	}
	if !slices.Equal(files, []string{"ok.star"}) {
		t.Errorf("registry entries %q; want ok.star only", files)
	}
	tests, err := ListFiles(dir, nil, FileTest)
	if err != nil || !slices.Equal(tests, []string{"ok_test.star"}) {
		t.Errorf("ListFiles(tests) = %q, %v; want ok_test.star", tests, err)
	}
}
