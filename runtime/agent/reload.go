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

// maxDebounceDelay bounds how long a stream of events that never goes
// quiet can hold a reload back.
const maxDebounceDelay = 2 * time.Second

// watcher turns file events under root into debounced reloads.
type watcher struct {
	fw       *fsnotify.Watcher
	root     string
	debounce time.Duration
	reload   func(paths []string)
	log      *slog.Logger
}

// newWatcher watches root and every directory below it.
func newWatcher(root string, debounce time.Duration, reload func([]string), logger *slog.Logger) (*watcher, error) {
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
	var first time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
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
			clear(pending)
			first = time.Time{}
			w.reload(paths)
		}
	}
}

// reload reloads what paths affect and applies the change.
func (a *Agent) reload(paths []string) {
	a.applyChange(a.registry.Reload(paths...))
}

// applyChange logs what a load or reload did, updates the metrics and the
// timers, and tells the test hook.
func (a *Agent) applyChange(ch engine.Change) {
	for _, pb := range ch.Loaded {
		a.log.Info("playbook loaded", "playbook", pb.Name, "file", pb.File, "version", pb.ShortVersion())
	}
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
			}
		}
		a.log.Error("playbook refused; "+serving, "file", file, "error", strings.Join(msgs, "\n"))
	}
	a.metrics.reloadErrors.Add(float64(len(ch.Failed)))
	for _, name := range ch.Removed {
		a.log.Info("playbook removed", "playbook", name)
	}
	a.metrics.playbooksLoaded.Set(float64(len(a.registry.Playbooks())))
	a.syncTimers()
	if a.hooks.reloaded != nil {
		a.hooks.reloaded(ch)
	}
}
