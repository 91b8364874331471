package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// The watcher is real (fsnotify); tests wait for the change the agent
// applied, never for time to pass.

func loadedNames(ch engine.Change) []string {
	var out []string
	for _, pb := range ch.Loaded {
		out = append(out, pb.Name)
	}
	return out
}

func hasLoaded(name string) func(engine.Change) bool {
	return func(ch engine.Change) bool { return slices.Contains(loadedNames(ch), name) }
}

// saveRenaming saves like editors that write a temporary file and rename
// it over the original.
func saveRenaming(t testing.TB, dir, rel, src string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".swp")
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

func TestHotReload(t *testing.T) {
	helloV := func(word string) string {
		return "load(\"lib/words.star\", \"greeting\")\n\n" +
			agentPlaybook("hello", "    return greeting() + \" "+word+"\"", `schedule = "TZ=UTC 0 3 * * *"`)
	}
	ta := startAgent(t, map[string]string{
		"hello.star":     helloV("one"),
		"other.star":     "load(\"lib/words.star\", \"greeting\")\n\n" + agentPlaybook("other", "    return greeting()", ""),
		"alone.star":     agentPlaybook("alone", "    return 1", ""),
		"lib/words.star": "def greeting():\n    return \"hi\"\n",
	}, nil)
	result := func(name string) string {
		t.Helper()
		run, _ := ta.wait(ta.start(name, nil).ID)
		return string(run.Result)
	}
	v1 := ta.registry.Get("hello").Version

	t.Run("good edit", func(t *testing.T) {
		enginetest.WriteFile(t, ta.dir, "hello.star", helloV("two"))
		ta.waitReload(hasLoaded("hello"))
		if got := result("hello"); got != `"hi two"` {
			t.Errorf("after the edit hello returns %s; want the new version's \"hi two\"", got)
		}
	})

	t.Run("bad edit keeps the last good version", func(t *testing.T) {
		good := ta.registry.Get("hello").Version
		enginetest.WriteFile(t, ta.dir, "hello.star", helloV("three")+"\nthis is not starlark\n")
		ch := ta.waitReload(func(ch engine.Change) bool { return len(ch.Failed["hello.star"]) > 0 })
		d := ch.Failed["hello.star"][0]
		if d.Line != 8 || d.Col != 8 || !strings.HasSuffix(d.File, "hello.star") {
			t.Errorf("diagnostic %s; want hello.star:8:8", d)
		}
		if got := ta.registry.Get("hello"); got == nil || got.Version != good {
			t.Fatal("the last good version stopped serving")
		}
		if got := result("hello"); got != `"hi two"` {
			t.Errorf("hello returns %s; want the last good version's \"hi two\"", got)
		}
		pbs, _ := ta.client.Playbooks(context.Background())
		for _, p := range pbs {
			if p.Name == "hello" && (p.Version != good || !strings.Contains(p.LoadError, "hello.star:8:8: ")) {
				t.Errorf("playbooks shows hello as %+v; want the good version and the load error", p)
			}
		}
		if _, m := ta.get("/metrics"); !strings.Contains(m, "felhom_reload_errors_total 1") {
			t.Error("/metrics: want felhom_reload_errors_total 1")
		}
	})

	t.Run("rename save", func(t *testing.T) {
		saveRenaming(t, ta.dir, "hello.star", helloV("four"))
		ta.waitReload(hasLoaded("hello"))
		if got := result("hello"); got != `"hi four"` {
			t.Errorf("after a write-rename save hello returns %s", got)
		}
		pbs, _ := ta.client.Playbooks(context.Background())
		for _, p := range pbs {
			if p.Name == "hello" && p.LoadError != "" {
				t.Errorf("load error %q still shown after a good save", p.LoadError)
			}
		}
	})

	t.Run("a library change reloads its dependents only", func(t *testing.T) {
		saveRenaming(t, ta.dir, "lib/words.star", "def greeting():\n    return \"hello\"\n")
		ch := ta.waitReload(func(ch engine.Change) bool { return len(ch.Loaded) > 0 })
		if got := loadedNames(ch); !slices.Equal(got, []string{"hello", "other"}) {
			t.Errorf("reloaded %v; want hello and other, which load the library, and not alone", got)
		}
		if got := result("other"); got != `"hello"` {
			t.Errorf("other returns %s after the library changed", got)
		}
	})

	t.Run("new subdirectory is watched", func(t *testing.T) {
		enginetest.WriteFile(t, ta.dir, "more/extra.star", "def extra():\n    return 1\n")
		ta.waitReload(func(engine.Change) bool { return true })
		enginetest.WriteFile(t, ta.dir, "alone.star", "load(\"more/extra.star\", \"extra\")\n\n"+agentPlaybook("alone", "    return extra()", ""))
		ta.waitReload(hasLoaded("alone"))
		enginetest.WriteFile(t, ta.dir, "more/extra.star", "def extra():\n    return 2\n")
		ta.waitReload(hasLoaded("alone"))
		if got := result("alone"); got != "2" {
			t.Errorf("alone returns %s; want 2 from the edited module in the new directory", got)
		}
	})

	t.Run("added and removed files, with their timers", func(t *testing.T) {
		enginetest.WriteFile(t, ta.dir, "added.star", agentPlaybook("added", "    return \"new\"", `schedule = "TZ=UTC */5 * * * *", triggers = ["added"]`))
		ta.waitReload(hasLoaded("added"))
		if _, ok := ta.sched.NextRuns()["added"]; !ok {
			t.Error("the added playbook's timer is not set")
		}
		if got := result("added"); got != `"new"` {
			t.Errorf("added returns %s", got)
		}
		if err := os.Remove(filepath.Join(ta.dir, "added.star")); err != nil {
			t.Fatal(err)
		}
		ch := ta.waitReload(func(ch engine.Change) bool { return slices.Contains(ch.Removed, "added") })
		if len(ch.Loaded) != 0 {
			t.Errorf("a removal loaded %v", loadedNames(ch))
		}
		if _, ok := ta.sched.NextRuns()["added"]; ok {
			t.Error("the removed playbook's timer is still set")
		}
		if _, err := ta.client.Trigger(context.Background(), api.TriggerRequest{Playbook: "added"}); err == nil {
			t.Error("the removed playbook still starts")
		}
	})

	if v1 == ta.registry.Get("hello").Version {
		t.Error("hello's version never changed")
	}
}

func TestHotReloadInFlightRunKeepsItsVersion(t *testing.T) {
	slow := func(word string) string {
		return agentPlaybook("slow", "    test.block()\n    return \""+word+"\"", "concurrent = True")
	}
	ta := startAgent(t, map[string]string{"slow.star": slow("old")}, nil)
	v1 := ta.registry.Get("slow").Version
	started := ta.sig.Arm()
	first := ta.start("slow", nil)
	<-started

	enginetest.WriteFile(t, ta.dir, "slow.star", slow("new"))
	ta.waitReload(hasLoaded("slow"))
	v2 := ta.registry.Get("slow").Version
	started = ta.sig.Arm()
	second := ta.start("slow", nil)
	<-started
	close(ta.sig.Release)

	r1, _ := ta.wait(first.ID)
	r2, _ := ta.wait(second.ID)
	if string(r1.Result) != `"old"` || r1.Version != v1 {
		t.Errorf("run in flight during the reload = %s version %.12s; want \"old\" on %.12s", r1.Result, r1.Version, v1)
	}
	if string(r2.Result) != `"new"` || r2.Version != v2 || v1 == v2 {
		t.Errorf("run after the reload = %s version %.12s; want \"new\" on %.12s", r2.Result, r2.Version, v2)
	}
	rec, _ := ta.store.Get(context.Background(), first.ID)
	if rec.Version != v1 || rec.Status != runstate.Succeeded {
		t.Errorf("record of the first run: version %.12s status %s", rec.Version, rec.Status)
	}
}

func TestWatcherDebounces(t *testing.T) {
	// Many events in a burst make one reload; the deadline below only
	// guards against a hang.
	dir := t.TempDir()
	got := make(chan []string, 10)
	w, err := newWatcher(dir, 50*time.Millisecond, func(p []string, _ map[string]bool) []string { got <- p; return nil }, enginetest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	for i := range 20 {
		enginetest.WriteFile(t, dir, "a.star", strings.Repeat("#\n", i))
	}
	enginetest.WriteFile(t, dir, "sentinel", "")
	for {
		select {
		case paths := <-got:
			if slices.Contains(paths, filepath.Join(dir, "sentinel")) {
				if !slices.Contains(paths, filepath.Join(dir, "a.star")) {
					t.Errorf("reload paths %v; want a.star batched with the sentinel", paths)
				}
				return
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no reload")
		}
	}
}

// TestHotReloadSettlesInPlaceWrites: a writer that does not rename (it
// truncates and writes in place) may be seen mid-file. A reload that
// fails right after such a write is not reported; the file is reloaded
// again once it has settled, and only that outcome counts.
func TestHotReloadSettlesInPlaceWrites(t *testing.T) {
	good := agentPlaybook("inplace", "    return 1", "")
	ta := startAgent(t, map[string]string{"inplace.star": good}, nil)
	path := filepath.Join(ta.dir, "inplace.star")

	t.Run("half a file, then the rest", func(t *testing.T) {
		next := agentPlaybook("inplace", "    return 2", "")
		half := next[:len(next)/2]
		if err := os.WriteFile(path, []byte(half), 0o644); err != nil { // in place: a write event
			t.Fatal(err)
		}
		ch := ta.waitReload(func(engine.Change) bool { return true })
		if len(ch.Failed) != 0 {
			t.Fatalf("the half-written file was reported at once: %v", ch.Failed)
		}
		if err := os.WriteFile(path, []byte(next), 0o644); err != nil {
			t.Fatal(err)
		}
		for ch := ta.waitReload(func(engine.Change) bool { return true }); !slices.Contains(loadedNames(ch), "inplace"); ch = ta.waitReload(func(engine.Change) bool { return true }) {
			if len(ch.Failed) != 0 {
				t.Fatalf("a refusal was reported for a file that became good: %v", ch.Failed)
			}
		}
	})
	t.Run("a file that stays broken is reported once settled", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("def run(ctx)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ch := ta.waitReload(func(ch engine.Change) bool { return len(ch.Failed) > 0 })
		if _, ok := ch.Failed["inplace.star"]; !ok {
			t.Errorf("refusal reported for %v; want inplace.star", ch.Failed)
		}
		if pb := ta.registry.Get("inplace"); pb == nil {
			t.Error("the last good version stopped serving")
		}
	})
}
