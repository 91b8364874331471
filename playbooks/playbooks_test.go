package playbooks_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/playtest"
)

// TestPlaybookTests runs every *_test.star under this directory, each test
// function a subtest, as `felhom-agent test playbooks/` does.
func TestPlaybookTests(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(p) == ".star" && strings.HasSuffix(p, "_test.star") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("found %d test files (%v); want one per shipped playbook and lib", len(files), files)
	}
	results, err := playtest.Run(context.Background(), files, playtest.Options{Root: "."})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		t.Run(r.File+"/"+r.Test, func(t *testing.T) {
			for _, f := range r.Failures {
				t.Error(f)
			}
		})
	}
}

// TestShippedPlaybooksCheck holds the shipped playbooks to `felhom-agent
// check` and `felhom-agent fmt`.
func TestShippedPlaybooksCheck(t *testing.T) {
	names := []string{"selftest", "golden", "provision", "backup", "restore", "monitor", "guest_reboot"}
	var paths []string
	for _, n := range names {
		paths = append(paths, n+".star")
	}
	_, diags := engine.Check(".", paths)
	for _, d := range diags {
		t.Error(d)
	}
	matches, _ := filepath.Glob("*.star")
	libs, _ := filepath.Glob("lib/*.star")
	for _, f := range append(matches, libs...) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := engine.Format(src, f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !bytes.Equal(src, out) {
			t.Errorf("%s is not formatted; run felhom-agent fmt -w playbooks", f)
		}
	}
	// Each shipped playbook answers the hub trigger of its own name.
	l, err := engine.NewLoader(".", engine.LoaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		pb, err := l.Load(n + ".star")
		if err != nil {
			t.Fatal(err)
		}
		if pb.Name != n || len(pb.Decl.Triggers) != 1 || pb.Decl.Triggers[0] != n {
			t.Errorf("%s.star: name %q, triggers %v; want %q answering trigger %q", n, pb.Name, pb.Decl.Triggers, n, n)
		}
	}
}
