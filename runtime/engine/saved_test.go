package engine

import (
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

// TestServeSaved: a version's Sources load again with LoadSaved as the
// same version; ServeSaved serves it for a file whose latest version is
// refused (keeping the diagnostics), and does nothing while a version of
// the file serves.
func TestServeSaved(t *testing.T) {
	files := map[string]string{
		"p.star":     "load(\"lib/x.star\", \"v\")\ndef run(ctx):\n    return v\n\nplaybook(name = \"p\", run = run, triggers = [\"p\"])\n",
		"lib/x.star": "v = 41\n",
	}
	r, dir := newTestRegistry(t, files)
	r.LoadAll()
	good := r.Get("p")
	src := good.Sources()
	if len(src) != 2 || string(src["lib/x.star"]) != "v = 41\n" {
		t.Fatalf("Sources = %v; want the playbook and its module", src)
	}
	again, err := r.Loader().LoadSaved("p.star", src)
	if err != nil || again.Version != good.Version || !again.Saved {
		t.Fatalf("LoadSaved = %v, %v; want version %s, saved", again, err, good.Version)
	}
	if ch, err := r.ServeSaved("p.star", src); err != nil || !ch.Empty() {
		t.Errorf("ServeSaved while the file serves = %+v, %v; want nothing done", ch, err)
	}

	// A broken save, then a new process (a fresh registry) on the same
	// directory: the file does not load, the saved version serves.
	enginetest.WriteFile(t, dir, "p.star", "def run(ctx)\n")
	r2, err := NewRegistry(dir, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if ch := r2.LoadAll(); len(ch.Failed) != 1 || r2.Get("p") != nil {
		t.Fatalf("LoadAll of the broken file: %+v", ch)
	}
	ch, err := r2.ServeSaved("p.star", src)
	if err != nil || len(ch.Loaded) != 1 {
		t.Fatalf("ServeSaved = %+v, %v; want the saved version loaded", ch, err)
	}
	if pb := r2.Get("p"); pb == nil || pb.Version != good.Version || !pb.Saved {
		t.Fatalf("Get after ServeSaved = %+v; want the saved version", pb)
	}
	if e := r2.Entries(); len(e) != 1 || len(e[0].Diagnostics) == 0 || e[0].Playbook == nil {
		t.Errorf("entry = %+v; want the saved version serving with the file's diagnostics", e)
	}
	// The file is fixed: the new version replaces the saved one.
	enginetest.WriteFile(t, dir, "p.star", files["p.star"]+"# fixed\n")
	if ch := r2.Reload(filepath.Join(dir, "p.star")); len(ch.Loaded) != 1 || r2.Get("p").Saved {
		t.Errorf("reload of the fixed file: %+v", ch)
	}
	if _, err := r2.Loader().LoadSaved("p.star", map[string][]byte{"p.star": src["p.star"]}); err == nil {
		t.Error("LoadSaved without the module = nil error")
	}
}
