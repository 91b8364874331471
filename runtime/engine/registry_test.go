package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func newTestRegistry(t *testing.T, files map[string]string) (*Registry, string) {
	t.Helper()
	dir := enginetest.WriteTree(t, files)
	r, err := NewRegistry(dir, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func names(pbs []*Playbook) string {
	var out []string
	for _, pb := range pbs {
		out = append(out, pb.Name)
	}
	return strings.Join(out, " ")
}

func failedFiles(c Change) string {
	var out []string
	for f := range c.Failed {
		out = append(out, f)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestRegistryLoadAll(t *testing.T) {
	files := simpleTree()
	files["broken.star"] = "def run(ctx)\n"
	files["a_test.star"] = "this is not even starlark"
	files["lib/unused.star"] = "this is not even starlark"
	files["README.md"] = "# playbooks"
	files[".#a.star"] = "an editor's lock file"
	r, _ := newTestRegistry(t, files)
	ch := r.LoadAll()
	if got := names(ch.Loaded); got != "a b" {
		t.Errorf("Loaded = %q; want \"a b\" (tests, modules and other files are not playbooks)", got)
	}
	if got := failedFiles(ch); got != "broken.star" {
		t.Errorf("Failed = %q; want broken.star", got)
	}
	if r.Get("a") == nil || r.Get("broken") != nil || names(r.Playbooks()) != "a b" {
		t.Errorf("Get/Playbooks after LoadAll: %q", names(r.Playbooks()))
	}
	entries := r.Entries()
	if len(entries) != 3 || entries[1].File != "b.star" || entries[2].File != "broken.star" || entries[2].Playbook != nil ||
		len(entries[2].Diagnostics) != 1 || entries[2].Diagnostics[0].Line != 2 {
		t.Errorf("Entries() = %+v", entries)
	}
	if again := r.LoadAll(); !again.Empty() && len(again.Failed) != 1 {
		t.Errorf("second LoadAll = %+v; want only the still broken file", again)
	}
}

func TestRegistryReload(t *testing.T) {
	r, dir := newTestRegistry(t, simpleTree())
	r.LoadAll()
	a1, b1 := r.Get("a"), r.Get("b")
	path := func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) }

	if got := r.Dependents(path("lib/util.star")); !slices.Equal(got, []string{"a.star", "b.star"}) {
		t.Errorf("Dependents(lib/util.star) = %v", got)
	}
	if got := r.Dependents(path("lib")); !slices.Equal(got, []string{"a.star", "b.star"}) {
		t.Errorf("Dependents(lib) = %v", got)
	}

	// Nothing changed: nothing reloads.
	if ch := r.Reload(path("a.star"), path("lib/util.star")); !ch.Empty() {
		t.Errorf("reload without changes = %+v", ch)
	}

	// A module edit reloads every playbook that loads it.
	enginetest.WriteFile(t, dir, "lib/util.star", utilLib+"\ndef triple(x):\n    return 3 * x\n")
	ch := r.Reload(path("lib/util.star"))
	if names(ch.Loaded) != "a b" || r.Get("a") == a1 || r.Get("a").Version == a1.Version {
		t.Errorf("after a module edit: Loaded %q", names(ch.Loaded))
	}
	a2 := r.Get("a")

	// A broken edit is refused; the last good version keeps serving.
	enginetest.WriteFile(t, dir, "a.star", "def run(ctx):\n    return undefined_name\n")
	ch = r.Reload(path("a.star"))
	if got := failedFiles(ch); got != "a.star" || len(ch.Loaded) != 0 {
		t.Errorf("broken edit: Failed %q, Loaded %q", got, names(ch.Loaded))
	}
	if d := ch.Failed["a.star"]; len(d) != 1 || !strings.HasSuffix(d[0].String(), "a.star:2:12: undefined: undefined_name") {
		t.Errorf("diagnostics = %v", d)
	}
	if r.Get("a") != a2 {
		t.Error("the last good version stopped serving after a broken edit")
	}
	if e := r.Entries()[0]; e.File != "a.star" || e.Playbook != a2 || len(e.Diagnostics) != 1 {
		t.Errorf("Entries()[0] = %+v", e)
	}

	// A broken module breaks its dependents, which keep serving. (a.star's
	// latest version loads nothing, so it is not one of them.)
	enginetest.WriteFile(t, dir, "lib/util.star", "def double(x)\n")
	ch = r.Reload(path("lib/util.star"))
	if got := failedFiles(ch); got != "b.star" {
		t.Errorf("broken module: Failed %q", got)
	}
	if r.Get("b") == nil {
		t.Error("b stopped serving")
	}

	// Fixing both brings new versions.
	enginetest.WriteFile(t, dir, "lib/util.star", utilLib)
	enginetest.WriteFile(t, dir, "a.star", strings.Replace(simplePlaybook, "%s", "a", 1))
	ch = r.Reload(path("lib/util.star"), path("a.star"))
	if names(ch.Loaded) != "a b" || len(ch.Failed) != 0 {
		t.Errorf("fix: Loaded %q Failed %q", names(ch.Loaded), failedFiles(ch))
	}
	if r.Get("a").Version != a1.Version || r.Get("b").Version != b1.Version {
		t.Error("restoring the sources did not restore the versions")
	}

	// A new playbook appears, a renamed one moves, a deleted one goes.
	enginetest.WriteFile(t, dir, "c.star", pbSource("c", "    pass"))
	enginetest.WriteFile(t, dir, "b.star", strings.Replace(simplePlaybook, "%s", "b2", 1))
	if err := os.Remove(path("a.star")); err != nil {
		t.Fatal(err)
	}
	ch = r.Reload(path("c.star"), path("b.star"), path("a.star"), "/elsewhere/x.star")
	if names(ch.Loaded) != "b2 c" || strings.Join(ch.Removed, " ") != "a b" {
		t.Errorf("add/rename/delete: Loaded %q Removed %q", names(ch.Loaded), ch.Removed)
	}
	if names(r.Playbooks()) != "b2 c" || r.Get("a") != nil {
		t.Errorf("Playbooks() = %q", names(r.Playbooks()))
	}

	// The root itself means everything.
	enginetest.WriteFile(t, dir, "d.star", pbSource("d", "    pass"))
	if ch := r.Reload(dir); names(ch.Loaded) != "d" {
		t.Errorf("Reload(root): Loaded %q", names(ch.Loaded))
	}
}

func TestRegistryDuplicateNames(t *testing.T) {
	r, dir := newTestRegistry(t, map[string]string{
		"a.star": pbSource("same", "    pass"),
		"b.star": pbSource("same", "    pass"),
	})
	ch := r.LoadAll()
	if names(ch.Loaded) != "same" || failedFiles(ch) != "b.star" || r.Get("same").File != "a.star" {
		t.Fatalf("LoadAll: Loaded %q Failed %q", names(ch.Loaded), failedFiles(ch))
	}
	if d := ch.Failed["b.star"]; len(d) != 1 || !strings.Contains(d[0].String(), "b.star:4:9: playbook name \"same\" is already declared by ") {
		t.Errorf("diagnostic = %v", d)
	}
	// When a.star lets the name go, b.star takes it in the same reload.
	enginetest.WriteFile(t, dir, "a.star", pbSource("other", "    pass"))
	ch = r.Reload(filepath.Join(dir, "a.star"))
	if names(ch.Loaded) != "other same" || len(ch.Failed) != 0 || r.Get("same").File != "b.star" {
		t.Errorf("after the rename: Loaded %q Failed %q, same from %s", names(ch.Loaded), failedFiles(ch), r.Get("same").File)
	}
}

// A run in flight keeps the version it started with while a reload
// replaces it for new runs.
func TestRegistryRunInFlightKeepsItsVersion(t *testing.T) {
	sig := enginetest.NewSignal()
	dir := enginetest.WriteTree(t, map[string]string{"p.star": pbSource("p", "    test.block()\n    return ctx.version")})
	r, err := NewRegistry(dir, LoaderOptions{Tables: enginetest.Tables(sig), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	r.LoadAll()
	old := r.Get("p")
	e := NewEngine(Config{Logger: enginetest.Logger()})
	started := sig.Arm()
	done := make(chan *Result)
	go func() { done <- e.Run(context.Background(), old, nil, RunOptions{}) }()
	<-started

	enginetest.WriteFile(t, dir, "p.star", pbSource("p", "    test.block()\n    return \"new\""))
	if ch := r.Reload(filepath.Join(dir, "p.star")); names(ch.Loaded) != "p" {
		t.Fatalf("reload: %+v", ch)
	}
	close(sig.Release)
	res := <-done
	if res.Status != runstate.Succeeded || string(res.Output) != `"`+old.Version+`"` || res.Version != old.Version {
		t.Errorf("in-flight run = %s %s; want the old version %s", res.Status, res.Output, old.ShortVersion())
	}
	if r.Get("p").Version == old.Version {
		t.Error("the registry still serves the old version")
	}
}
