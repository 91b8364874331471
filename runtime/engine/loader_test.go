package engine

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

const simplePlaybook = `
load("lib/guests.star", "pick")

def run(ctx):
    return pick(ctx.params.only)

playbook(name = "%s", run = run, params = {"only": param.list(param.int(), default = [101])})
`

const guestsLib = `
"""Guest helpers."""

load("lib/util.star", "double")

def pick(only):
    return [double(v) for v in only]
`

const utilLib = `
def double(x):
    return 2 * x
`

func simpleTree() map[string]string {
	return map[string]string{
		"a.star":          strings.Replace(simplePlaybook, "%s", "a", 1),
		"b.star":          strings.Replace(simplePlaybook, "%s", "b", 1),
		"lib/guests.star": guestsLib,
		"lib/util.star":   utilLib,
	}
}

func TestLoadResolvesModulesUnderRoot(t *testing.T) {
	dir := enginetest.WriteTree(t, simpleTree())
	l, err := NewLoader(dir, LoaderOptions{Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	if pb.Name != "a" || pb.File != "a.star" || pb.Path != filepath.Join(dir, "a.star") {
		t.Errorf("playbook = %+v", pb)
	}
	if got, want := strings.Join(pb.Modules, " "), "lib/guests.star lib/util.star"; got != want {
		t.Errorf("Modules = %s; want %s", got, want)
	}
	if len(pb.Version) != 64 || pb.ShortVersion() != pb.Version[:12] {
		t.Errorf("Version = %q, ShortVersion = %q", pb.Version, pb.ShortVersion())
	}
	// The module's frozen globals are executed once and shared.
	if _, err := l.Load(filepath.Join(dir, "b.star")); err != nil {
		t.Fatal(err)
	}
	if got := l.Stats(); got.Compiles != 4 || got.Execs != 4 {
		t.Errorf("Stats() = %+v; want 4 compiles and 4 execs (a, b, and each module once)", got)
	}
}

func TestLoadCachesByContent(t *testing.T) {
	dir := enginetest.WriteTree(t, simpleTree())
	l, err := NewLoader(dir, LoaderOptions{Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	before := l.Stats()
	again, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Stats(); got != before {
		t.Errorf("loading an unchanged playbook again: Stats %+v -> %+v; want no compile or exec", before, got)
	}
	if again.Version != first.Version || again.Decl != first.Decl {
		t.Errorf("unchanged playbook: version %s -> %s, same declaration %v", first.ShortVersion(), again.ShortVersion(), again.Decl == first.Decl)
	}

	// Changing a module two levels down changes the version and compiles
	// that module only; the files above it are executed again.
	enginetest.WriteFile(t, dir, "lib/util.star", utilLib+"\n# changed\n")
	changed, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	if changed.Version == first.Version {
		t.Error("version did not change when a loaded module changed")
	}
	if got := l.Stats(); got.Compiles != before.Compiles+1 || got.Execs != before.Execs+3 {
		t.Errorf("after a module edit: Stats %+v -> %+v; want 1 compile, 3 execs", before, got)
	}

	// A file the playbook does not load does not change its version.
	enginetest.WriteFile(t, dir, "lib/other.star", "x = 1\n")
	enginetest.WriteFile(t, dir, "b.star", "# b changed\n"+strings.Replace(simplePlaybook, "%s", "b", 1))
	same, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	if same.Version != changed.Version {
		t.Error("version changed though nothing a.star loads did")
	}
	// Reverting restores the first version, from the cache.
	enginetest.WriteFile(t, dir, "lib/util.star", utilLib)
	reverted, err := l.Load(filepath.Join(dir, "a.star"))
	if err != nil {
		t.Fatal(err)
	}
	if reverted.Version != first.Version {
		t.Error("reverting the module did not restore the version")
	}
}

func TestLoadErrors(t *testing.T) {
	outside := t.TempDir()
	enginetest.WriteFile(t, outside, "evil.star", "x = 1\n")
	tests := []struct {
		name  string
		files map[string]string
		want  []string // all diagnostics, relative to the root
	}{
		{"escape with ..", map[string]string{"p.star": `load("../evil.star", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load ../evil.star: path escapes the playbooks root`}},
		{"escape inside a path", map[string]string{"p.star": `load("lib/../../evil.star", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load lib/../../evil.star: path escapes the playbooks root`}},
		{"absolute", map[string]string{"p.star": `load("/etc/evil.star", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load /etc/evil.star: absolute paths are not allowed; name a file relative to the playbooks root`}},
		{"not .star", map[string]string{"p.star": `load("lib/x.py", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load lib/x.py: a module name ends in .star`}},
		{"missing", map[string]string{"p.star": `load("lib/nope.star", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load lib/nope.star: no such file under the playbooks root`}},
		{"cycle through the playbook", map[string]string{
			"p.star":     `load("lib/b.star", "b")` + "\n",
			"lib/b.star": `load("p.star", "p")` + "\nb = 1\n",
		}, []string{`p.star:1:6: cannot load lib/b.star: cannot load p.star: cycle in load graph`}},
		{"cycle below", map[string]string{
			"p.star":     "\n" + `load("lib/a.star", "a")` + "\n",
			"lib/a.star": `load("lib/b.star", "b")` + "\na = 1\n",
			"lib/b.star": `load("lib/a.star", "a")` + "\nb = 1\n",
		}, []string{`p.star:2:6: cannot load lib/a.star: cannot load lib/b.star: cannot load lib/a.star: cycle in load graph`}},
		{"self load", map[string]string{"p.star": `load("p.star", "x")` + "\n"},
			[]string{`p.star:1:6: cannot load p.star: cycle in load graph`}},
		{"module with a syntax error", map[string]string{
			"p.star":     `load("lib/a.star", "a")` + "\n",
			"lib/a.star": "a = (\n",
		}, []string{`lib/a.star:2:1: got end of file, want primary expression`, `p.star:1:6: cannot load lib/a.star: it has errors`}},
		{"module failing at load", map[string]string{
			"p.star":     `load("lib/a.star", "a")` + "\n",
			"lib/a.star": "a = 1 // 0\n",
		}, []string{`lib/a.star:1:7: floored division by zero`, `p.star:1:6: cannot load lib/a.star: it has errors`}},
		{"module declaring a playbook", map[string]string{
			"p.star":     `load("lib/a.star", "a")` + "\n",
			"lib/a.star": "def a(ctx):\n    pass\nplaybook(name = \"a\", run = a)\n",
		}, []string{`lib/a.star:3:9: playbook: may only be called by a playbook file, not by the loaded module lib/a.star`, `p.star:1:6: cannot load lib/a.star: it has errors`}},
		{"missing name in module", map[string]string{
			"p.star":     `load("lib/a.star", "nope")` + "\n",
			"lib/a.star": "a = 1\n",
		}, []string{`p.star:1:1: load: name nope not found in module lib/a.star`}},
		{"step budget while loading", map[string]string{"p.star": "def spin():\n    while True:\n        pass\nspin()\n"},
			[]string{`p.star:1:1: Starlark computation cancelled: step budget of 10000 exceeded while loading`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := enginetest.WriteTree(t, tt.files)
			l, err := NewLoader(dir, LoaderOptions{MaxSteps: 10000, Logger: enginetest.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Load(filepath.Join(dir, "p.star"))
			if got := diagStrings(err, dir); !slices.Equal(got, tt.want) {
				t.Errorf("Load() diagnostics =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestLoadRefusesSymlinkOutOfRoot(t *testing.T) {
	outside := t.TempDir()
	enginetest.WriteFile(t, outside, "evil.star", "x = 1\n")
	dir := enginetest.WriteTree(t, map[string]string{"p.star": `load("lib/evil.star", "x")` + "\n"})
	if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "evil.star"), filepath.Join(dir, "lib", "evil.star")); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	_, err := LoadFile(filepath.Join(dir, "p.star"), dir)
	want := []string{`p.star:1:6: cannot load lib/evil.star: path escapes the playbooks root (through a symbolic link)`}
	if got := diagStrings(err, dir); !slices.Equal(got, want) {
		t.Errorf("Load() diagnostics = %q; want %q", got, want)
	}

	// A symbolic link inside the root is fine.
	enginetest.WriteFile(t, dir, "lib/real.star", "x = 1\n")
	if err := os.Symlink("real.star", filepath.Join(dir, "lib", "alias.star")); err != nil {
		t.Fatal(err)
	}
	enginetest.WriteFile(t, dir, "q.star", `load("lib/alias.star", "x")`+"\ndef run(ctx):\n    return x\nplaybook(name = \"q\", run = run)\n")
	if _, err := LoadFile(filepath.Join(dir, "q.star"), ""); err != nil {
		t.Errorf("load through an in-root symlink: %v", err)
	}
}

func TestLoadFileOutsideRoot(t *testing.T) {
	root := t.TempDir()
	other := enginetest.WriteTree(t, map[string]string{"p.star": "x = 1\n"})
	_, err := LoadFile(filepath.Join(other, "p.star"), root)
	var lerr *LoadError
	if !errors.As(err, &lerr) || !strings.Contains(err.Error(), "is not under the playbooks root") {
		t.Errorf("LoadFile outside root = %v; want a not-under-root LoadError", err)
	}
	if _, err := NewLoader(filepath.Join(root, "missing"), LoaderOptions{}); err == nil {
		t.Error("NewLoader(missing dir) succeeded")
	}
}

func TestModuleName(t *testing.T) {
	for name, want := range map[string]string{
		"lib/x.star":      "lib/x.star",
		"./lib/x.star":    "lib/x.star",
		"lib//x.star":     "lib/x.star",
		"x.star":          "x.star",
		"":                "error",
		"../x.star":       "error",
		"/x.star":         "error",
		`lib\x.star`:      "error",
		"lib/x":           "error",
		"lib/./../x.star": "error",
	} {
		got, err := moduleName(name)
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("moduleName(%q) = %q (%v); want %q", name, got, err, want)
		}
	}
}
