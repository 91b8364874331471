package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bazelbuild/buildtools/build"
	"go.starlark.net/syntax"
)

// Format formats a playbook or module the way buildifier formats a .bzl
// file, as `felhom-agent fmt` does: 4-space indents, normalized spacing
// and double quotes, loads moved to the top and sorted, multi-line
// collections one element per line with a trailing comma; comments stay.
// path is used in messages only.
//
// buildifier's grammar is Bazel's Starlark, which has no while loop: a
// file with one cannot be formatted, and the error says so at the loop.
// A source that does not parse is an error located at the problem; the
// error is a [Diagnostic].
func Format(src []byte, path string) ([]byte, error) {
	f, err := build.ParseBzl(path, src)
	if err != nil {
		// Starlark's own parser is the authority on what a playbook may
		// say, and its messages are clearer; buildifier's error is left
		// for what Starlark accepts and buildifier does not.
		sf, serr := FileOptions.Parse(path, src, 0)
		if serr != nil {
			return nil, locate(serr, path).Diagnostics[0]
		}
		if pos, ok := firstWhile(sf); ok {
			return nil, at(pos, "cannot format: the formatter (buildifier) does not support while loops")
		}
		var pe build.ParseError
		if errors.As(err, &pe) {
			return nil, Diagnostic{File: path, Line: pe.Pos.Line, Col: pe.Pos.LineRune, Msg: "cannot format: " + strings.TrimSpace(pe.Message)}
		}
		return nil, Diagnostic{File: path, Msg: "cannot format: " + err.Error()}
	}
	out := build.Format(f)
	// The formatter must not change what the file means; a result that
	// Starlark cannot parse would be a formatter bug, not the author's.
	if _, err := FileOptions.Parse(path, out, 0); err != nil {
		return nil, Diagnostic{File: path, Msg: fmt.Sprintf("cannot format: the formatted text does not parse (%v)", err)}
	}
	return out, nil
}

// Error makes a Diagnostic usable as an error.
func (d Diagnostic) Error() string { return d.String() }

// firstWhile returns the position of the first while statement in f.
func firstWhile(f *syntax.File) (syntax.Position, bool) {
	var pos syntax.Position
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if w, ok := n.(*syntax.WhileStmt); ok && !found {
			pos, found = w.While, true
		}
		return !found
	})
	return pos, found
}
