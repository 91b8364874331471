package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// A Registry holds the playbooks of one root directory: every top-level
// *.star file that is not a test (*_test.star). Files in subdirectories
// are modules, loaded by playbooks.
//
// Reload is how changes arrive: the daemon's file watcher passes the paths
// that changed, and the registry recompiles those playbooks and every
// playbook that loads them. A version that loads replaces the old one for
// new runs; a version that fails is refused with its diagnostics and the
// last good version keeps serving. A *Playbook never changes, so a run in
// flight finishes on the version it started with.
//
// A Registry is safe for concurrent use; reloads are serialized.
type Registry struct {
	loader *Loader

	reloadMu sync.Mutex // one reload at a time

	mu     sync.RWMutex
	files  map[string]*fileState // by root-relative path of the playbook file
	byName map[string]*Playbook
}

type fileState struct {
	good     *Playbook    // the version serving, nil if none ever loaded
	diags    []Diagnostic // why the latest version was refused; nil when it serves
	deps     []string     // modules the latest version loads (or tried to)
	conflict string       // the name it could not take because another file has it
}

// Change reports what a load or reload did.
type Change struct {
	// Loaded are the playbooks now serving a new version (or serving for
	// the first time), sorted by name.
	Loaded []*Playbook
	// Failed maps each playbook file (root-relative) whose latest version
	// was refused to its diagnostics. Its last good version, if any,
	// keeps serving.
	Failed map[string][]Diagnostic
	// Removed are names no longer served: the file is gone, or it now
	// declares another name.
	Removed []string
}

// Empty reports whether the change did nothing.
func (c Change) Empty() bool { return len(c.Loaded) == 0 && len(c.Failed) == 0 && len(c.Removed) == 0 }

// Entry is one playbook file as the registry sees it.
type Entry struct {
	File string // root-relative
	// Playbook is the version serving, nil when no version ever loaded.
	Playbook *Playbook
	// Diagnostics say why the file's latest version was refused; nil when
	// the latest version is the one serving.
	Diagnostics []Diagnostic
}

// NewRegistry returns an empty registry for the playbooks under root;
// call LoadAll to load them.
func NewRegistry(root string, opts LoaderOptions) (*Registry, error) {
	l, err := NewLoader(root, opts)
	if err != nil {
		return nil, err
	}
	return &Registry{loader: l, files: map[string]*fileState{}, byName: map[string]*Playbook{}}, nil
}

// Loader is the registry's loader (for its root, Rel and Stats).
func (r *Registry) Loader() *Loader { return r.loader }

// Get returns the playbook serving under name, or nil.
func (r *Registry) Get(name string) *Playbook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[name]
}

// Playbooks returns the playbooks serving, sorted by name.
func (r *Registry) Playbooks() []*Playbook {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := slices.Collect(maps.Values(r.byName))
	slices.SortFunc(out, func(a, b *Playbook) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Entries returns every playbook file with its state, sorted by file.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Entry, 0, len(r.files))
	for _, rel := range slices.Sorted(maps.Keys(r.files)) {
		st := r.files[rel]
		out = append(out, Entry{File: rel, Playbook: st.good, Diagnostics: slices.Clone(st.diags)})
	}
	return out
}

// Dependents returns the playbook files (root-relative, sorted) that load
// the file at path, directly or not, as of their latest load; a directory
// path matches the modules under it.
func (r *Registry) Dependents(path string) []string {
	rel, err := r.loader.Rel(path)
	if err != nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.dependents(rel)
}

func (r *Registry) dependents(rel string) []string {
	var out []string
	for file, st := range r.files {
		for _, dep := range st.deps {
			if dep == rel || strings.HasPrefix(dep, rel+"/") {
				out = append(out, file)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// LoadAll loads every playbook file in the root, and forgets those that
// are gone. Use it at start and when the watcher lost track.
func (r *Registry) LoadAll() Change {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	files := r.scan()
	r.mu.RLock()
	for rel := range r.files {
		files = append(files, rel)
	}
	r.mu.RUnlock()
	slices.Sort(files)
	return r.reload(slices.Compact(files))
}

// Reload reloads what the changed paths (file system paths, as a watcher
// reports them: created, written, renamed or removed files, or
// directories) affect: playbook files among them, and every playbook that
// loads one of them. Paths outside the root are ignored; the root itself
// means everything (LoadAll).
func (r *Registry) Reload(paths ...string) Change {
	for _, p := range paths {
		if real, err := realPath(p); err == nil && real == r.loader.realDir {
			return r.LoadAll()
		}
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	affected := map[string]bool{}
	for _, p := range paths {
		rel, err := r.loader.Rel(p)
		if err != nil {
			continue
		}
		if ClassifyFile(rel) == FilePlaybook {
			affected[rel] = true
		}
		r.mu.RLock()
		for _, f := range r.dependents(rel) {
			affected[f] = true
		}
		r.mu.RUnlock()
	}
	return r.reload(slices.Sorted(maps.Keys(affected)))
}

// scan lists the playbook files in the root.
func (r *Registry) scan() []string {
	files, err := ListFiles(r.loader.dir, nil, FilePlaybook)
	if err != nil {
		return nil
	}
	return files
}

// reload loads each of rels (playbook files) and applies the outcome. The
// loads run without r.mu held, so Get keeps answering meanwhile.
func (r *Registry) reload(rels []string) Change {
	ch := Change{Failed: map[string][]Diagnostic{}}
	var freed []string
	for _, rel := range rels {
		freed = append(freed, r.reloadOne(rel, &ch)...)
	}
	// A name that was freed may be what another file failed to take.
	for _, name := range freed {
		r.mu.RLock()
		var retry []string
		for rel, st := range r.files {
			if st.conflict == name {
				retry = append(retry, rel)
			}
		}
		r.mu.RUnlock()
		slices.Sort(retry)
		for _, rel := range retry {
			r.reloadOne(rel, &ch)
		}
	}
	slices.SortFunc(ch.Loaded, func(a, b *Playbook) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(ch.Removed)
	ch.Removed = slices.Compact(ch.Removed)
	// A file that failed and then loaded in the retry pass is not failed.
	for _, pb := range ch.Loaded {
		delete(ch.Failed, pb.File)
	}
	return ch
}

// reloadOne loads one playbook file and records the outcome; it returns
// the names the file stopped serving.
func (r *Registry) reloadOne(rel string, ch *Change) (freed []string) {
	_, statErr := os.Stat(filepath.Join(r.loader.realDir, filepath.FromSlash(rel)))
	gone := errors.Is(statErr, fs.ErrNotExist)
	var pb *Playbook
	var deps []string
	var err error
	if !gone {
		pb, deps, err = r.loader.load(rel)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.files[rel]
	if st == nil {
		st = &fileState{}
	}
	if gone {
		delete(r.files, rel)
		if st.good != nil && r.byName[st.good.Name] == st.good {
			delete(r.byName, st.good.Name)
			ch.Removed = append(ch.Removed, st.good.Name)
			return []string{st.good.Name}
		}
		return nil
	}
	r.files[rel] = st
	st.deps, st.conflict = deps, ""
	if err != nil {
		st.diags = diagnostics(err, r.loader.displayPath(rel))
		ch.Failed[rel] = st.diags
		return nil
	}
	if owner := r.byName[pb.Name]; owner != nil && owner.File != rel {
		st.conflict = pb.Name
		st.diags = []Diagnostic{at(pb.Decl.Pos, fmt.Sprintf("playbook name %q is already declared by %s", pb.Name, owner.Path))}
		ch.Failed[rel] = st.diags
		return nil
	}
	if st.good != nil && st.good.Version == pb.Version && st.good.Name == pb.Name && st.diags == nil {
		return nil // unchanged
	}
	if st.good != nil && st.good.Name != pb.Name && r.byName[st.good.Name] == st.good {
		delete(r.byName, st.good.Name)
		ch.Removed = append(ch.Removed, st.good.Name)
		freed = append(freed, st.good.Name)
	}
	st.good, st.diags = pb, nil
	r.byName[pb.Name] = pb
	ch.Loaded = append(ch.Loaded, pb)
	return freed
}

// ServeSaved serves a saved version of the playbook file rel — its
// sources as Playbook.Sources gave them, from a version store — while the
// file's latest version on disk is refused and no version of it serves:
// at start, so that a broken save followed by a restart does not make the
// playbook (and its timer) disappear. The file's diagnostics stay, so it
// still shows as not loading. It does nothing (an empty Change) when a
// version of rel serves already, or the file loads; a saved version that
// does not load, or whose name another file has taken, is an error.
func (r *Registry) ServeSaved(rel string, files map[string][]byte) (Change, error) {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	ch := Change{Failed: map[string][]Diagnostic{}}
	r.mu.RLock()
	st := r.files[rel]
	r.mu.RUnlock()
	if st == nil || st.good != nil || st.diags == nil {
		return ch, nil
	}
	pb, err := r.loader.LoadSaved(rel, files)
	if err != nil {
		return ch, fmt.Errorf("the saved version of %s does not load: %w", rel, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.good != nil || st.diags == nil || r.files[rel] != st {
		return ch, nil // a reload got there first
	}
	if owner := r.byName[pb.Name]; owner != nil {
		return ch, fmt.Errorf("the saved version of %s declares %q, which %s serves", rel, pb.Name, owner.File)
	}
	st.good = pb
	r.byName[pb.Name] = pb
	ch.Loaded = append(ch.Loaded, pb)
	return ch, nil
}
