package playtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// TestReturnsMatch holds the test modules' declared Shapes to what they
// return, as the builtins' own test does for theirs: a test file calls
// each and hands the value to shape.match, a module of this test only.
func TestReturnsMatch(t *testing.T) {
	matched := map[string]bool{}
	match := func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var name string
		var v starlark.Value
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "value", &v); err != nil {
			return nil, err
		}
		for _, tab := range Tables() {
			for _, f := range tab.Funcs {
				if qualified(tab.Name, f.Name) == name && f.Returns != nil {
					matched[name] = true
					return starlark.None, f.Returns.Match(v)
				}
			}
		}
		return nil, fmt.Errorf("%s declares no Returns", name)
	}
	shapeTable := &builtins.Table{Name: "shape", Doc: "Test only.", Funcs: []builtins.Func{{Name: "match", Sig: "match(name, value)", Doc: "Matches.", Fn: match}}}

	dir := t.TempDir()
	src, err := os.ReadFile("testdata/hello.star")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"hello.star": string(src),
		"shapes_test.star": `
def test_shapes():
    shape.match("run_playbook", run_playbook("hello.star", {"count": 1}))
    shape.match("sim.guest", sim.guest(101))
    proxmox.snapshot(101, "shapes")
    shape.match("sim.tasks", sim.tasks())
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := engine.NewLoader(dir, engine.LoaderOptions{Tables: append(append(builtins.Tables(), Tables()...), shapeTable)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runFile(context.Background(), l, filepath.Join(dir, "shapes_test.star"), Options{Logger: slog.New(slog.DiscardHandler)}) {
		if !r.Passed() {
			t.Errorf("%s: %q", r.Test, r.Failures)
		}
	}
	for _, tab := range Tables() {
		for _, f := range tab.Funcs {
			if name := qualified(tab.Name, f.Name); f.Returns != nil && !matched[name] {
				t.Errorf("%s declares Returns %s, but this test does not match it", name, f.Returns.Name)
			}
		}
	}
}

func qualified(table, name string) string {
	if table == "" {
		return name
	}
	return table + "." + name
}
