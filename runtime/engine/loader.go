package engine

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
)

// FileOptions is the Starlark dialect of playbooks and the modules they
// load: while loops, top-level control flow and sets are allowed (the step
// budget bounds them); globals are assigned once. Recursion stays refused,
// as in standard Starlark: the step budget cannot bound the memory of a
// deep call stack (go.starlark.net stops only at 100,000 frames, hundreds
// of MiB later), while a refused recursive call fails at once, at its
// position.
var FileOptions = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true}

// Defaults for the zero values of [LoaderOptions] and [Config].
const (
	DefaultMaxSteps  = 10_000_000
	DefaultCacheSize = 256
)

// LoaderOptions configures a [Loader]. The zero value loads playbooks with
// builtins.Tables(), the default step budget and cache size, and logs
// load-time output to slog.Default().
type LoaderOptions struct {
	// Tables are the modules files may use, besides [DeclarationTables]
	// which are always present; nil means builtins.Tables().
	Tables []*builtins.Table
	// MaxSteps bounds the execution of one file's top level;
	// 0 means DefaultMaxSteps.
	MaxSteps uint64
	// CacheSize is the number of compiled programs, and separately of
	// executed modules, kept; 0 means DefaultCacheSize.
	CacheSize int
	// Logger receives print() and log.* output of files while they load;
	// nil means slog.Default().
	Logger *slog.Logger
	// TestTables are the modules playbook tests (*_test.star) have besides
	// Tables: playtest's sim, assert and run_playbook. When set, Check
	// checks test files too, against Tables and TestTables; nil leaves
	// them out (the engine does not know the test modules).
	TestTables []*builtins.Table
}

// A Loader reads, compiles and executes playbook files under one root
// directory, and caches both compiled programs and frozen module globals
// by content, so loading an unchanged file again neither parses nor
// executes anything.
//
// load("lib/x.star", ...) resolves relative to the root. A module name
// must be a relative, slash-separated path ending in .star with no ".."
// element; files are opened through an [os.Root], so a symbolic link that
// resolves outside the root is refused as well. A load cycle is an error
// naming the chain. Loaded modules are executed once per version, frozen,
// and shared by every playbook that loads them; they must not call
// playbook().
//
// A Loader is safe for concurrent use; loads are serialized.
type Loader struct {
	dir         string // the root as given: file names in messages start with it
	realDir     string // the root, absolute with symbolic links resolved
	opts        LoaderOptions
	predeclared starlark.StringDict
	index       *builtinIndex // the tables, for the static check

	programs *lru.Cache[programKey, *compiled]
	modules  *lru.Cache[moduleKey, *module]
	compiles atomic.Uint64
	execs    atomic.Uint64

	mu sync.Mutex // one load session at a time: a module version is executed once

	testsOnce sync.Once
	tests     *Loader // loads test files for Check, when TestTables are set
}

// LoaderStats counts the work a Loader has done; the cache tests and
// benchmarks read it.
type LoaderStats struct {
	Compiles uint64 // files parsed and compiled
	Execs    uint64 // files whose top level was executed
}

// A Playbook is one loaded version of a playbook file. It is immutable: a
// reload makes a new Playbook, and a run keeps the one it started with.
type Playbook struct {
	Name    string // Decl.Name
	File    string // slash-separated path relative to the root: "backup.star"
	Path    string // the file name shown in messages: the root joined with File
	Version string // hex SHA-256 of this file and every module it loads
	Decl    *Declaration
	// Modules are the files this playbook loads, directly or not, as
	// root-relative paths, sorted.
	Modules []string
	// Saved: this version was loaded from saved sources (LoadSaved), not
	// from the files on disk.
	Saved bool

	sources map[string][]byte // every file of the version, by root-relative path
	boxed   [2]starlark.Value // Name and Version for each run's ctx, boxed once (see ctxStrings)
}

// ctxStrings are the playbook's name and version as Starlark values: the
// ones boxed at load while Name and Version are as loaded, else new ones.
func (p *Playbook) ctxStrings() (name, version starlark.Value) {
	name, version = p.boxed[0], p.boxed[1]
	if n, ok := name.(starlark.String); !ok || string(n) != p.Name {
		name = starlark.String(p.Name)
	}
	if v, ok := version.(starlark.String); !ok || string(v) != p.Version {
		version = starlark.String(p.Version)
	}
	return name, version
}

// Sources returns the contents of every file this version was loaded
// from — the playbook file and each module — by root-relative path: what
// a version store keeps so that LoadSaved can load the same version
// later. The caller must not modify the slices.
func (p *Playbook) Sources() map[string][]byte { return maps.Clone(p.sources) }

// ShortVersion is the first 12 hex digits of Version, for display.
func (p *Playbook) ShortVersion() string { return ShortVersion(p.Version) }

// NewLoader returns a Loader for the playbooks under root.
func NewLoader(root string, opts LoaderOptions) (*Loader, error) {
	realDir, err := realPath(root)
	if err != nil {
		return nil, fmt.Errorf("playbooks root: %w", err)
	}
	if fi, err := os.Stat(realDir); err != nil {
		return nil, fmt.Errorf("playbooks root: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("playbooks root %s: not a directory", root)
	}
	if opts.Tables == nil {
		opts.Tables = builtins.Tables()
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = DefaultMaxSteps
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Loader{
		dir:         filepath.Clean(root),
		realDir:     realDir,
		opts:        opts,
		predeclared: builtins.Predeclared(append(DeclarationTables(), opts.Tables...)),
		index:       newBuiltinIndex(append(DeclarationTables(), opts.Tables...)),
	}
	for name, op := range sizedPredeclared {
		l.predeclared[name] = op
	}
	l.programs, _ = lru.New[programKey, *compiled](opts.CacheSize)
	l.modules, _ = lru.New[moduleKey, *module](opts.CacheSize)
	return l, nil
}

// LoadFile loads the playbook at path outside any registry, as
// `felhom-agent run FILE` does. Its modules resolve under root; "" means
// the file's directory.
func LoadFile(path, root string) (*Playbook, error) {
	if root == "" {
		root = filepath.Dir(path)
	}
	l, err := NewLoader(root, LoaderOptions{})
	if err != nil {
		return nil, err
	}
	return l.Load(path)
}

// Root is the root directory as given to NewLoader.
func (l *Loader) Root() string { return l.dir }

// Stats returns the work done so far.
func (l *Loader) Stats() LoaderStats {
	return LoaderStats{Compiles: l.compiles.Load(), Execs: l.execs.Load()}
}

// Load loads the playbook file at path (a file system path under the
// root). The error is a *[LoadError] whose diagnostics point at the
// source.
func (l *Loader) Load(path string) (*Playbook, error) {
	rel, err := l.Rel(path)
	if err != nil {
		return nil, &LoadError{Diagnostics: []Diagnostic{{File: path, Msg: err.Error()}}}
	}
	pb, _, err := l.load(rel)
	return pb, err
}

// Rel converts a file system path (absolute, or relative to the working
// directory) to a slash-separated path relative to the root. It fails
// for a path outside the root. The file need not exist.
func (l *Loader) Rel(p string) (string, error) { return rootRel(l.realDir, l.dir, p) }

// rootRel is [Loader.Rel] for the root whose symbolic links are resolved
// in realRoot; root is how errors name it.
func rootRel(realRoot, root, p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	// Resolve symbolic links in the directory part only: the file itself
	// may have been removed (a reload after a delete).
	dir, err := realPath(filepath.Dir(abs))
	if err != nil {
		dir = filepath.Dir(abs)
	}
	rel, err := filepath.Rel(realRoot, filepath.Join(dir, filepath.Base(abs)))
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is not under the playbooks root %s", p, root)
	}
	return filepath.ToSlash(rel), nil
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// displayPath is the name of rel in messages and backtraces.
func (l *Loader) displayPath(rel string) string { return filepath.Join(l.dir, filepath.FromSlash(rel)) }

// load loads rel as a playbook. deps are the modules it loads (as far as
// they could be resolved), returned even on failure so a registry can
// reload it when one of them changes.
func (l *Loader) load(rel string) (pb *Playbook, deps []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.newSession()
	if err != nil {
		return nil, nil, &LoadError{Diagnostics: []Diagnostic{{File: l.dir, Msg: err.Error()}}}
	}
	return s.load(rel)
}

// LoadSaved loads the playbook rel (root-relative) from files, a
// version's sources as Playbook.Sources returned them, instead of from
// disk: the same sources give the same Version. It is how the agent serves
// the last good version of a playbook whose file does not load, and how a
// run can go on with the version it started with.
func (l *Loader) LoadSaved(rel string, files map[string][]byte) (*Playbook, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &session{l: l, root: savedSources(files), nodes: map[string]*node{}, srcs: map[string][]byte{}}
	pb, _, err := s.load(rel)
	if pb != nil {
		pb.Saved = true
	}
	return pb, err
}

// load loads rel as a playbook in s (and closes s).
func (s *session) load(rel string) (pb *Playbook, deps []string, err error) {
	defer s.root.Close()
	n, err := s.resolve(rel)
	deps = s.deps(rel)
	if err != nil {
		return nil, deps, s.rootError(rel, err)
	}
	m, err := s.exec(n, true)
	if err != nil {
		return nil, deps, err
	}
	return &Playbook{
		Name:    m.decl.Name,
		File:    rel,
		Path:    n.path,
		Version: n.version,
		Decl:    m.decl,
		Modules: deps,
		sources: s.srcs,
		boxed:   [2]starlark.Value{starlark.String(m.decl.Name), starlark.String(n.version)},
	}, deps, nil
}

// loadModule loads rel as a module, the way load() would: for checking
// libraries on their own.
func (l *Loader) loadModule(rel string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.newSession()
	if err != nil {
		return &LoadError{Diagnostics: []Diagnostic{{File: l.dir, Msg: err.Error()}}}
	}
	defer s.root.Close()
	n, err := s.resolve(rel)
	if err != nil {
		return s.rootError(rel, err)
	}
	_, err = s.exec(n, false)
	return err
}

// compiled is a parsed and compiled file, cached by content.
type compiled struct {
	prog  *starlark.Program
	doc   string    // the module docstring
	loads []loadRef // load statements, in order
	// static is what the static check found (static.go): its diagnostics
	// refuse the file like a syntax error.
	static *staticInfo
}

type loadRef struct {
	name string
	pos  syntax.Position
}

// programKey identifies a compiled program: the compiler's version, the
// file name baked into its positions, and its source.
type programKey struct {
	compiler int
	name     string
	sum      [sha256.Size]byte
}

// module is a file's executed, frozen top level. A playbook file's
// module carries its declaration.
type module struct {
	globals starlark.StringDict
	decl    *Declaration
}

type moduleKey struct {
	version  string
	playbook bool // executed as a playbook file (playbook() allowed)
}

func (l *Loader) compile(name string, src []byte) (*compiled, error) {
	key := programKey{compiler: starlark.CompilerVersion, name: name, sum: sha256.Sum256(src)}
	if c, ok := l.programs.Get(key); ok {
		return c, nil
	}
	l.compiles.Add(1)
	f, err := FileOptions.Parse(name, src, 0)
	if err != nil {
		return nil, err
	}
	rewriteSized(f)
	prog, err := starlark.FileProgram(f, l.predeclared.Has)
	if err != nil {
		return nil, err
	}
	c := &compiled{prog: prog, doc: docstring(f), static: checkStatic(f, l.index)}
	for i := range prog.NumLoads() {
		name, pos := prog.Load(i)
		c.loads = append(c.loads, loadRef{name, pos})
	}
	l.programs.Add(key, c)
	return c, nil
}

func docstring(f *syntax.File) string {
	if len(f.Stmts) == 0 {
		return ""
	}
	if e, ok := f.Stmts[0].(*syntax.ExprStmt); ok {
		if lit, ok := e.X.(*syntax.Literal); ok && lit.Token == syntax.STRING {
			return strings.TrimSpace(lit.Value.(string))
		}
	}
	return ""
}

// A session is one load: it resolves the graph of files below one file,
// computing each one's version, then executes it bottom-up.
type session struct {
	l     *Loader
	root  sourceReader
	nodes map[string]*node
	// srcs are the contents read, by root-relative path: the sources of
	// the version being loaded.
	srcs map[string][]byte
}

// sourceReader is where a session reads files: the playbooks root on
// disk (*os.Root), or a saved version's files (savedSources).
type sourceReader interface {
	ReadFile(name string) ([]byte, error)
	Close() error
}

// savedSources are the files of a version kept in a version store.
type savedSources map[string][]byte

func (m savedSources) ReadFile(name string) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return b, nil
}

func (savedSources) Close() error { return nil }

type node struct {
	rel, path string
	c         *compiled
	deps      []*node // parallel to c.loads
	version   string
	err       error // the problem found resolving this file or below
	visiting  bool
}

func (l *Loader) newSession() (*session, error) {
	root, err := os.OpenRoot(l.realDir)
	if err != nil {
		return nil, err
	}
	return &session{l: l, root: root, nodes: map[string]*node{}, srcs: map[string][]byte{}}, nil
}

// cycleError is a load cycle on its way up to the file being loaded;
// chain lists the modules from the loading file's load statement on.
type cycleError struct{ chain []string }

func (e *cycleError) Error() string {
	return "cannot load " + strings.Join(e.chain, ": cannot load ") + ": cycle in load graph"
}

// fileError is a module that cannot be read; the loading statement's
// position is added by the caller.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }

// resolve reads and compiles rel and, recursively, what it loads.
func (s *session) resolve(rel string) (*node, error) {
	if n, ok := s.nodes[rel]; ok {
		if n.visiting {
			// Each file on the way back up prepends what it loads.
			return nil, &cycleError{}
		}
		return n, n.err
	}
	n := &node{rel: rel, path: s.l.displayPath(rel), visiting: true}
	s.nodes[rel] = n
	n.err = s.resolveNode(n)
	n.visiting = false
	return n, n.err
}

func (s *session) resolveNode(n *node) error {
	src, err := s.root.ReadFile(n.rel)
	if err != nil {
		return &fileError{readError(err)}
	}
	s.srcs[n.rel] = src
	if n.c, err = s.l.compile(n.path, src); err != nil {
		return locate(err, n.path)
	}
	var diags []Diagnostic
	h := newVersionHash(n.rel, src)
	for _, ld := range n.c.loads {
		depRel, err := moduleName(ld.name)
		if err != nil {
			diags = append(diags, at(ld.pos, fmt.Sprintf("cannot load %s: %v", ld.name, err)))
			continue
		}
		dep, err := s.resolve(depRel)
		var cycle *cycleError
		var ferr *fileError
		var lerr *LoadError
		switch {
		case errors.As(err, &cycle):
			// Keep climbing to the file being loaded, which reports the
			// whole chain at its load statement.
			return &cycleError{chain: append([]string{depRel}, cycle.chain...)}
		case errors.As(err, &ferr):
			diags = append(diags, at(ld.pos, fmt.Sprintf("cannot load %s: %v", ld.name, ferr)))
			continue
		case errors.As(err, &lerr):
			diags = append(diags, lerr.Diagnostics...)
			diags = append(diags, at(ld.pos, fmt.Sprintf("cannot load %s: it has errors", ld.name)))
			continue
		}
		n.deps = append(n.deps, dep)
		h.add(ld.name, dep.version)
	}
	if len(diags) > 0 {
		return &LoadError{Diagnostics: diags}
	}
	n.version = h.sum()
	return nil
}

// rootError turns what resolving the loaded file returned into its
// *LoadError.
func (s *session) rootError(rel string, err error) error {
	var cycle *cycleError
	var ferr *fileError
	switch {
	case errors.As(err, &cycle):
		// Find the loaded file's load statement that starts the chain.
		n := s.nodes[rel]
		for _, ld := range n.c.loads {
			if name, _ := moduleName(ld.name); name == cycle.chain[0] {
				return &LoadError{Diagnostics: []Diagnostic{at(ld.pos, cycle.Error())}}
			}
		}
		return &LoadError{Diagnostics: []Diagnostic{{File: s.l.displayPath(rel), Line: 1, Col: 1, Msg: cycle.Error()}}}
	case errors.As(err, &ferr):
		return &LoadError{Diagnostics: []Diagnostic{{File: s.l.displayPath(rel), Msg: ferr.Error()}}}
	}
	return err
}

// deps lists the modules resolved below rel, including those that failed.
func (s *session) deps(rel string) []string {
	var out []string
	for name := range s.nodes {
		if name != rel {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// moduleName validates a load() module name and returns its root-relative
// path. Everything a playbook loads must come from under the root.
func moduleName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty module name")
	case strings.HasPrefix(name, "/") || filepath.IsAbs(name):
		return "", errors.New("absolute paths are not allowed; name a file relative to the playbooks root")
	case strings.Contains(name, `\`):
		return "", errors.New(`use "/" to separate directories`)
	case !strings.HasSuffix(name, ".star"):
		return "", errors.New("a module name ends in .star")
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", errors.New("path escapes the playbooks root")
		}
	}
	clean := path.Clean(name)
	if clean == "." || !fs.ValidPath(clean) {
		return "", fmt.Errorf("invalid module name")
	}
	return clean, nil
}

// readError says why a module cannot be read, without the root's
// absolute path.
func readError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("no such file under the playbooks root")
	case strings.Contains(err.Error(), "escapes"):
		return errors.New("path escapes the playbooks root (through a symbolic link)")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// exec executes n's dependencies, then n, reusing cached modules.
func (s *session) exec(n *node, asPlaybook bool) (*module, error) {
	key := moduleKey{version: n.version, playbook: asPlaybook}
	if m, ok := s.l.modules.Get(key); ok {
		return m, nil
	}
	loaded := make(map[string]starlark.StringDict, len(n.deps))
	var diags []Diagnostic
	for i, dep := range n.deps {
		m, err := s.exec(dep, false)
		if err != nil {
			var lerr *LoadError
			if errors.As(err, &lerr) {
				diags = append(diags, lerr.Diagnostics...)
			}
			diags = append(diags, at(n.c.loads[i].pos, fmt.Sprintf("cannot load %s: it has errors", n.c.loads[i].name)))
			continue
		}
		loaded[n.c.loads[i].name] = m.globals
	}
	if len(diags) > 0 {
		return nil, &LoadError{Diagnostics: diags}
	}

	s.l.execs.Add(1)
	logger := s.l.opts.Logger.With("file", n.path)
	st := &declState{file: n.rel, lib: !asPlaybook}
	thread := &starlark.Thread{
		Name:  "load " + n.rel,
		Print: func(_ *starlark.Thread, msg string) { logger.Info(msg) },
		Load: func(_ *starlark.Thread, name string) (starlark.StringDict, error) {
			if g, ok := loaded[name]; ok {
				return g, nil
			}
			return nil, fmt.Errorf("module %s was not resolved", name)
		},
	}
	budget := s.l.opts.MaxSteps
	thread.SetMaxExecutionSteps(budget)
	thread.OnMaxSteps = func(t *starlark.Thread) { t.Cancel(fmt.Sprintf("step budget of %d exceeded while loading", budget)) }
	thread.SetLocal(declKey, st)
	builtins.SetLoadLogger(thread, logger)

	globals, err := n.c.prog.Init(thread, s.l.predeclared)
	globals.Freeze()
	// The static check's findings refuse the file like an error of its
	// top level, and are reported with it.
	static := slices.Clone(n.c.static.diags)
	if err != nil {
		return nil, &LoadError{Diagnostics: append(static, locate(err, n.path).Diagnostics...)}
	}
	m := &module{globals: globals}
	if asPlaybook {
		if st.decl == nil {
			return nil, &LoadError{Diagnostics: append(static, Diagnostic{File: n.path, Line: 1, Col: 1,
				Msg: "no playbook() declaration: a playbook file calls playbook(name = ..., run = ...) at its top level"})}
		}
		if st.decl.Doc == "" {
			st.decl.Doc = n.c.doc
		}
		static = append(static, checkCtx(n.c.static, st.decl)...)
		// The entry point may be a closure that is not among the
		// globals; concurrent runs call it, so it must be frozen too.
		st.decl.run.Freeze()
		m.decl = st.decl
	}
	if len(static) > 0 {
		return nil, &LoadError{Diagnostics: static}
	}
	s.l.modules.Add(key, m)
	return m, nil
}
