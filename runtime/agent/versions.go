package agent

import (
	"context"
	"maps"
	"slices"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// The last good version survives a restart: every version of a playbook
// that loads is put in the run store's version store (its sources, every
// file it loads) and recorded as its file's last good version. At start,
// a playbook file that does not load serves its last good version from
// there instead of disappearing with its timer; the load error still
// shows (felhom-agent playbooks, /healthz, felhom_playbooks_load_errors)
// until the file is fixed, when the new version replaces the saved one as
// any reload does.

// saveVersions records the versions ch loaded from disk as their files'
// last good versions. A store that cannot write loses only this record:
// the versions serve anyway, and the next load records them.
func (a *Agent) saveVersions(ch engine.Change) {
	ctx := context.Background()
	for _, pb := range ch.Loaded {
		if pb.Saved {
			continue
		}
		if err := a.store.PutVersion(ctx, pb.Version, pb.Sources()); err != nil {
			a.log.Error("saving a playbook version failed; it is not kept across a restart", "playbook", pb.Name, "version", pb.ShortVersion(), "err", err)
			continue
		}
		if err := a.store.SetGoodVersion(ctx, pb.File, pb.Name, pb.Version); err != nil {
			a.log.Error("recording the last good version failed", "playbook", pb.Name, "version", pb.ShortVersion(), "err", err)
		}
	}
}

// serveSaved serves, for each playbook file that failed to load at start
// and has no version serving, its last good version from the version
// store, and returns what that changed.
func (a *Agent) serveSaved(failed map[string][]engine.Diagnostic) engine.Change {
	out := engine.Change{Failed: map[string][]engine.Diagnostic{}}
	if len(failed) == 0 {
		return out
	}
	ctx := context.Background()
	good, err := a.store.GoodVersions(ctx)
	if err != nil {
		a.log.Error("reading the last good versions failed; playbooks that do not load are not served", "err", err)
		return out
	}
	for _, file := range slices.Sorted(maps.Keys(failed)) {
		g, ok := good[file]
		if !ok {
			continue
		}
		files, err := a.store.GetVersion(ctx, g.Version)
		if err != nil {
			a.log.Error("the last good version is not in the version store", "file", file, "version", engine.ShortVersion(g.Version), "err", err)
			continue
		}
		ch, err := a.registry.ServeSaved(file, files)
		if err != nil {
			a.log.Error("the last good version cannot serve", "file", file, "version", engine.ShortVersion(g.Version), "err", err)
			continue
		}
		for _, pb := range ch.Loaded {
			a.log.Warn("playbook file does not load; serving its last good version from the version store",
				"playbook", pb.Name, "file", file, "version", pb.ShortVersion(), "saved", g.Updated)
		}
		out.Loaded = append(out.Loaded, ch.Loaded...)
	}
	return out
}

// loadErrors counts the playbook files whose latest version does not
// load.
func (a *Agent) loadErrors() int {
	n := 0
	for _, e := range a.registry.Entries() {
		if len(e.Diagnostics) > 0 {
			n++
		}
	}
	return n
}
