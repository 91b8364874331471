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
	for _, d := range l.Check(nil) {
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
			if isPlaybookFile(rel) {
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
	if d := l.Check([]string{good}); len(d) != 0 {
		t.Errorf("Check(good.star) = %v; want nothing", d)
	}
	// Checked alone, name_taken.star is fine: names clash only among the
	// files checked together.
	if d := l.Check([]string{filepath.Join(checkRoot, "name_taken.star")}); len(d) != 0 {
		t.Errorf("Check(name_taken.star) = %v", d)
	}
	if d := l.Check([]string{good, filepath.Join(checkRoot, "name_taken.star")}); len(d) != 1 || !strings.Contains(d[0].Msg, `playbook name "good" is already declared`) {
		t.Errorf("Check(good, name_taken) = %v", d)
	}
	// A directory is every .star file under it.
	d := l.Check([]string{filepath.Join(checkRoot, "lib")})
	var files []string
	for _, x := range d {
		files = append(files, filepath.Base(x.File))
	}
	if got := strings.Join(slices.Compact(files), " "); got != "cycle_a.star cycle_b.star declares.star" {
		t.Errorf("Check(lib/) reported for %q", got)
	}
	if d := l.Check([]string{filepath.Join(checkRoot, "nope.star")}); len(d) != 1 || !strings.Contains(d[0].String(), "nope.star: no such file") {
		t.Errorf("Check(missing file) = %v", d)
	}
	if d := l.Check([]string{"check_test.go"}); len(d) != 1 || !strings.Contains(d[0].Msg, "is not under the playbooks root") {
		t.Errorf("Check(file outside the root) = %v", d)
	}
}

func TestCheckPackageFunction(t *testing.T) {
	dir := enginetest.WriteTree(t, map[string]string{"p.star": pbSource("p", "    return log"), "q.star": "x = \n"})
	d := Check(dir, nil)
	if len(d) != 1 || d[0].File != filepath.Join(dir, "q.star") || d[0].Line != 1 {
		t.Errorf("Check = %v; want one diagnostic in q.star", d)
	}
	if d := Check(filepath.Join(dir, "missing"), nil); len(d) != 1 || !strings.Contains(d[0].Msg, "playbooks root") {
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
