package engine

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// A Diagnostic is one problem in a playbook or module, located in source.
// Line and Col are 1-based; 0 means unknown (a file that cannot be read).
type Diagnostic struct {
	File      string
	Line, Col int
	Msg       string
}

// String formats d as "file:line:col: msg", the form editors jump to, on
// one line: control characters and other non-printing bytes in the file
// name or the message (a playbook's fail() text, say) are escaped
// (clip.Printable), so what it prints cannot drive a terminal.
func (d Diagnostic) String() string {
	file, msg := clip.Printable(d.File), clip.Printable(d.Msg)
	switch {
	case d.Line == 0:
		return fmt.Sprintf("%s: %s", file, msg)
	case d.Col == 0:
		return fmt.Sprintf("%s:%d: %s", file, d.Line, msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, d.Line, d.Col, msg)
}

// LoadError is a file that failed to load: a syntax or name error, a
// failing top level, an invalid declaration, a module that cannot be
// loaded. Each Diagnostic points at its cause; a module's problems come
// before the load statement that reached it.
type LoadError struct {
	Diagnostics []Diagnostic
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func at(pos syntax.Position, msg string) Diagnostic {
	return Diagnostic{File: pos.Filename(), Line: int(pos.Line), Col: int(pos.Col), Msg: msg}
}

// locate converts an error from compiling or executing file into a
// *LoadError: scanner and parser errors, every resolver error, and an
// evaluation error at its innermost Starlark frame.
func locate(err error, file string) *LoadError {
	var se syntax.Error
	var rl resolve.ErrorList
	var ee *starlark.EvalError
	switch {
	case errors.As(err, &se):
		return &LoadError{Diagnostics: []Diagnostic{at(se.Pos, se.Msg)}}
	case errors.As(err, &rl):
		diags := make([]Diagnostic, len(rl))
		for i, e := range rl {
			diags[i] = at(e.Pos, e.Msg)
		}
		return &LoadError{Diagnostics: diags}
	case errors.As(err, &ee):
		if pos, ok := sourcePos(ee.CallStack); ok {
			return &LoadError{Diagnostics: []Diagnostic{at(pos, ee.Msg)}}
		}
		return &LoadError{Diagnostics: []Diagnostic{{File: file, Msg: ee.Msg}}}
	}
	return &LoadError{Diagnostics: []Diagnostic{{File: file, Msg: err.Error()}}}
}

// sourcePos is the position of the innermost frame that is Starlark
// source, not a builtin.
func sourcePos(stack starlark.CallStack) (syntax.Position, bool) {
	for i := len(stack) - 1; i >= 0; i-- {
		if pos := stack[i].Pos; pos.IsValid() && pos.Filename() != "<builtin>" {
			return pos, true
		}
	}
	return syntax.Position{}, false
}

// Check loads, resolves and validates the playbooks and modules at paths
// without running anything, as `felhom-agent check` does: each file is
// compiled and its top level executed (acting builtins refuse, as at any
// load), and each playbook's declaration is validated. Top-level files
// under root are checked as playbooks, files in subdirectories as modules.
// A path may be a directory; no paths means everything under root.
// Playbook names must be unique among the files checked.
//
// The result is sorted by position and empty when all is well.
func Check(root string, paths []string) (checked []string, diags []Diagnostic) {
	l, err := NewLoader(root, LoaderOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, []Diagnostic{{File: root, Msg: err.Error()}}
	}
	return l.Check(paths)
}

// Check is [Check] with this loader's tables and options. checked are the
// root-relative files it checked ([ListFiles] of playbooks and modules,
// and of tests when the options have TestTables).
func (l *Loader) Check(paths []string) (checked []string, diags []Diagnostic) {
	files, diags := l.checkTargets(paths)
	names := map[string]string{} // playbook name -> the file that declared it first
	for _, rel := range files {
		if ClassifyFile(rel) == FileTest {
			if _, err := l.testLoader().LoadScript(l.displayPath(rel)); err != nil {
				diags = append(diags, diagnostics(err, l.displayPath(rel))...)
			}
			continue
		}
		if ClassifyFile(rel) != FilePlaybook {
			if err := l.loadModule(rel); err != nil {
				diags = append(diags, diagnostics(err, l.displayPath(rel))...)
			}
			continue
		}
		pb, _, err := l.load(rel)
		if err != nil {
			diags = append(diags, diagnostics(err, l.displayPath(rel))...)
			continue
		}
		if first, dup := names[pb.Name]; dup {
			diags = append(diags, at(pb.Decl.Pos, fmt.Sprintf("playbook name %q is already declared by %s", pb.Name, l.displayPath(first))))
			continue
		}
		names[pb.Name] = rel
	}
	return files, sortDiagnostics(diags)
}

// testLoader is the loader of test files: this one's root and options,
// with the test modules added to the tables.
func (l *Loader) testLoader() *Loader {
	l.testsOnce.Do(func() {
		opts := l.opts
		opts.Tables = append(slices.Clip(opts.Tables), opts.TestTables...)
		opts.TestTables = nil
		tl, err := NewLoader(l.dir, opts)
		if err != nil {
			tl = l // the root was readable a moment ago; report through this one
		}
		l.tests = tl
	})
	return l.tests
}

func diagnostics(err error, file string) []Diagnostic {
	var lerr *LoadError
	if errors.As(err, &lerr) {
		return lerr.Diagnostics
	}
	return []Diagnostic{{File: file, Msg: err.Error()}}
}

// sortDiagnostics orders diags by file and position and drops repeats (a
// broken module is reported once however many files load it).
func sortDiagnostics(diags []Diagnostic) []Diagnostic {
	slices.SortFunc(diags, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.Compact(diags)
}

// checkTargets expands paths to root-relative files: each path on its
// own, so that one that cannot be listed is a diagnostic and the rest are
// still checked.
func (l *Loader) checkTargets(paths []string) ([]string, []Diagnostic) {
	if len(paths) == 0 {
		paths = []string{l.dir}
	}
	kinds := []FileKind{FilePlaybook, FileModule}
	if l.opts.TestTables != nil {
		kinds = append(kinds, FileTest)
	}
	var files []string
	var diags []Diagnostic
	for _, p := range paths {
		listed, err := ListFiles(l.dir, []string{p}, kinds...)
		if err != nil {
			diags = append(diags, Diagnostic{File: p, Msg: readError(err).Error()})
			continue
		}
		files = append(files, listed...)
	}
	slices.Sort(files)
	return slices.Compact(files), diags
}
