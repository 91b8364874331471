package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"

	"github.com/fsnotify/fsnotify"
)

// Hot reload: a watcher reports every path under the playbooks root that
// was created, written, renamed or removed; after a burst of events has
// been quiet for the debounce interval, the registry reloads what those
// paths affect (the playbook files among them and every playbook that
// loads one of them), and the agent applies the change: timers follow,
// refusals are logged and counted. The registry keeps the last good
// version of a refused file serving; a run keeps the *Playbook it started
// with, so runs in flight finish on their version.
//
// Editors that save by writing a temporary file and renaming it over the
// original produce a create (or rename) of the original's name, which is
// a path like any other here. New subdirectories are watched as they
// appear, and the files already inside them count as changed.
//
// The debounce is short (DefaultDebounce, 10 ms), so a save serves within
// milliseconds. A writer that does not rename atomically may be caught
// mid-file: a file written in place (a write event, not a create or
// rename) whose reload fails is not reported at once but reloaded again
// once it has been quiet for settleDelay, and only that second outcome is
// logged and counted. A failed reload never activates anything: the last
// good version keeps serving meanwhile.

// maxDebounceDelay bounds how long a stream of events that never goes
// quiet can hold a reload back.
const maxDebounceDelay = 2 * time.Second

// settleDelay is how long a file written in place must be quiet before a
// failed reload of it is retried and reported.
const settleDelay = 250 * time.Millisecond

// reloadFunc reloads what paths affect. provisional holds the paths that
// were written in place in this batch; a failure of one of them is not
// reported but returned in held, for the watcher to retry once settled.
type reloadFunc func(paths []string, provisional map[string]bool) (held []string)

// watcher turns file events under root into debounced reloads.
type watcher struct {
	fw       *fsnotify.Watcher
	root     string
	debounce time.Duration
	reload   reloadFunc
	log      *slog.Logger
}

// newWatcher watches root and every directory below it.
func newWatcher(root string, debounce time.Duration, reload reloadFunc, logger *slog.Logger) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching playbooks: %w", err)
	}
	w := &watcher{fw: fw, root: filepath.Clean(root), debounce: debounce, reload: reload, log: logger}
	if _, err := w.addTree(w.root); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching playbooks: %w", err)
	}
	return w, nil
}

// addTree watches dir and the directories below it (hidden ones, such as
// .git, excepted) and returns the files it found in them.
func (w *watcher) addTree(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // vanished meanwhile: its own event will tell
		}
		if !d.IsDir() {
			files = append(files, p)
			return nil
		}
		if p != w.root && engine.Hidden(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.fw.Add(p); err != nil {
			if p == dir {
				return err
			}
			w.log.Warn("cannot watch a playbooks subdirectory", "dir", p, "err", err)
		}
		return nil
	})
	return files, err
}

// run handles events until ctx ends, then closes the watcher.
func (w *watcher) run(ctx context.Context) {
	defer w.fw.Close()
	pending := map[string]bool{}
	written := map[string]bool{} // pending paths written in place
	held := map[string]bool{}    // failed reloads waiting to settle
	var first time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue // permissions or timestamps only
			}
			pending[ev.Name] = true
			if held[ev.Name] {
				delete(held, ev.Name) // still being written: back to the debounce
			}
			switch {
			case ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Remove):
				delete(written, ev.Name) // replaced whole (or gone)
			case ev.Has(fsnotify.Write):
				written[ev.Name] = true
			}
			if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					files, err := w.addTree(ev.Name)
					if err != nil {
						w.log.Warn("cannot watch a new playbooks subdirectory", "dir", ev.Name, "err", err)
					}
					for _, f := range files {
						pending[f] = true
					}
				}
			}
			if first.IsZero() {
				first = time.Now()
			}
			timer.Reset(min(w.debounce, max(0, maxDebounceDelay-time.Since(first))))
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			// An overflow lost events: only a full reload is sure to
			// catch what they said.
			w.log.Warn("file watcher error", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("file watcher lost events; reloading every playbook")
				pending[w.root] = true
				timer.Reset(w.debounce)
			}
		case <-timer.C:
			paths := make([]string, 0, len(pending))
			for p := range pending {
				paths = append(paths, p)
			}
			slices.Sort(paths)
			provisional := maps.Clone(written)
			clear(pending)
			clear(written)
			first = time.Time{}
			for _, p := range w.reload(paths, provisional) {
				held[p] = true
			}
			if len(held) > 0 {
				settle.Reset(settleDelay)
			}
		case <-settle.C:
			if len(held) == 0 {
				continue
			}
			paths := slices.Sorted(maps.Keys(held))
			clear(held)
			w.reload(paths, nil)
		}
	}
}

// reload reloads what paths affect and applies the change: the
// watcher's reloadFunc. A failure of a file among provisional (written in
// place in this batch) is held back, unreported, for the watcher to retry
// once the file has settled.
func (a *Agent) reload(paths []string, provisional map[string]bool) (held []string) {
	// What each in-place write affects, as of the last load: the file
	// itself and the playbooks that load it.
	affects := map[string][]string{}
	for p := range provisional {
		if rel, err := a.registry.Loader().Rel(p); err == nil {
			affects[p] = append(a.registry.Dependents(p), rel)
		}
	}
	ch := a.registry.Reload(paths...)
	for _, p := range slices.Sorted(maps.Keys(affects)) {
		hold := false
		for _, rel := range affects[p] {
			if _, failed := ch.Failed[rel]; failed {
				delete(ch.Failed, rel)
				hold = true
			}
		}
		if hold {
			held = append(held, p)
		}
	}
	a.applyChange(ch)
	return held
}

// applyChange logs what a load or reload did, updates the metrics and the
// timers, and tells the test hook.
func (a *Agent) applyChange(ch engine.Change) {
	for _, pb := range ch.Loaded {
		if !pb.Saved {
			a.log.Info("playbook loaded", "playbook", pb.Name, "file", pb.File, "version", pb.ShortVersion())
		}
	}
	a.saveVersions(ch)
	for _, file := range slices.Sorted(maps.Keys(ch.Failed)) {
		diags := ch.Failed[file]
		msgs := make([]string, len(diags))
		for i, d := range diags {
			msgs[i] = d.String()
		}
		serving := "no version serves"
		for _, e := range a.registry.Entries() {
			if e.File == file && e.Playbook != nil {
				serving = "version " + e.Playbook.ShortVersion() + " keeps serving"
				if e.Playbook.Saved {
					serving = "its last good version " + e.Playbook.ShortVersion() + " serves from the version store"
				}
			}
		}
		a.log.Error("playbook refused; "+serving, "file", file, "error", strings.Join(msgs, "\n"))
	}
	a.metrics.reloadErrors.Add(float64(len(ch.Failed)))
	for _, name := range ch.Removed {
		a.log.Info("playbook removed", "playbook", name)
	}
	a.metrics.playbooksLoaded.Set(float64(len(a.registry.Playbooks())))
	a.metrics.loadErrors.Set(float64(a.loadErrors()))
	a.syncTimers()
	if a.hooks.reloaded != nil {
		a.hooks.reloaded(ch)
	}
}
