package playtest

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

//go:embed assert.star
var assertSrc string

// assertFile is the name assert.star runs under; frames in it are skipped
// when a failure is located, so a failure points at the test's line.
const assertFile = "assert.star"

var (
	assertOnce  sync.Once
	assertValue starlark.Value
	assertErr   error
)

// assertModule returns the frozen `assert` struct, built once from
// assert.star over the Go primitives below.
func assertModule() (starlark.Value, error) {
	assertOnce.Do(func() {
		predeclared := starlark.StringDict{
			"_error":  starlark.NewBuiltin("assert.fail", assertError),
			"_catch":  starlark.NewBuiltin("assert.fails", assertCatch),
			"_search": starlark.NewBuiltin("assert.matches", assertSearch),
			"struct":  starlark.NewBuiltin("struct", starlarkstruct.Make),
		}
		thread := &starlark.Thread{Name: "assert"}
		var globals starlark.StringDict
		globals, assertErr = starlark.ExecFileOptions(&syntax.FileOptions{}, thread, assertFile, assertSrc, predeclared)
		if assertErr == nil {
			globals.Freeze()
			assertValue = globals["assert"]
		}
	})
	return assertValue, assertErr
}

// AssertTable is the `assert` module of test files. Its functions are
// written in Starlark (assert.star) over three Go primitives; the table
// documents them and calls them, so `felhom-agent doc` lists them like
// every other builtin. A failed assertion is recorded at the test's line
// and the test goes on.
var AssertTable = &builtins.Table{
	Effect: builtins.Reads,
	Name:   "assert",
	Doc:    "Assertions for test files. A failing assertion records a failure at the calling line of the test (file:line:col: message) and lets the test go on; every failure is reported.",
	Funcs: []builtins.Func{
		{Name: "eq", Journal: builtins.Pure, Sig: `eq(got, want, msg="")`, Doc: "Fails unless got == want.", Fn: assertCall("eq")},
		{Name: "ne", Journal: builtins.Pure, Sig: `ne(got, unwanted, msg="")`, Doc: "Fails if got == unwanted.", Fn: assertCall("ne")},
		{Name: "true", Journal: builtins.Pure, Sig: `true(cond, msg="assertion failed")`, Doc: "Fails unless cond is true.", Fn: assertCall("true")},
		{Name: "false", Journal: builtins.Pure, Sig: `false(cond, msg="assertion failed")`, Doc: "Fails if cond is true.", Fn: assertCall("false")},
		{Name: "contains", Journal: builtins.Pure, Sig: `contains(container, x, msg="")`, Doc: "Fails unless x in container.", Fn: assertCall("contains")},
		{Name: "not_contains", Journal: builtins.Pure, Sig: `not_contains(container, x, msg="")`, Doc: "Fails if x in container.", Fn: assertCall("not_contains")},
		{Name: "matches", Journal: builtins.Pure, Sig: `matches(pattern, s, msg="")`, Doc: "Fails unless the regular expression pattern (RE2) matches somewhere in s.", Fn: assertCall("matches")},
		{Name: "fails", Journal: builtins.Pure, Sig: "fails(fn, pattern, *args, **kwargs)", Doc: "Calls fn(*args, **kwargs) and fails unless it fails with an error matching pattern; returns the error message (\"\" when the call succeeded).", Fn: assertCall("fails")},
		{Name: "fail", Journal: builtins.Pure, Sig: "fail(msg)", Doc: "Records a failure with msg.", Fn: assertCall("fail")},
	},
}

// assertCall is the builtin that calls the assert.star function name.
func assertCall(name string) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		m, err := assertModule()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		fn, err := m.(starlark.HasAttrs).Attr(name)
		if err != nil || fn == nil {
			return nil, fmt.Errorf("%s: assert.star does not define %s", b.Name(), name)
		}
		if f, ok := fn.(*starlark.Function); ok && !f.HasKwargs() {
			names := make([]string, f.NumParams())
			for i := range names {
				names[i], _ = f.Param(i)
			}
			if err := checkKeywords(b.Name(), kwargs, names); err != nil {
				return nil, err
			}
		}
		return starlark.Call(thread, fn, args, kwargs)
	}
}

// reporter collects a test's failures; it is a thread local of the test.
type reporter struct {
	mu       sync.Mutex
	failures []string
}

func (r *reporter) add(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, msg)
}

const reporterKey = "felhom.playtest.reporter"

// assertError records a failure at the innermost frame outside assert.star,
// as "file:line:col: message", and lets the test go on.
func assertError(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &msg); err != nil {
		return nil, err
	}
	r, ok := thread.Local(reporterKey).(*reporter)
	if !ok {
		return nil, fmt.Errorf("%s: %s", b.Name(), msg)
	}
	r.add(callerPos(thread) + msg)
	return starlark.None, nil
}

// callerPos is "file:line:col: " of the innermost frame in a test file.
func callerPos(thread *starlark.Thread) string {
	stack := thread.CallStack()
	for i := len(stack) - 1; i >= 0; i-- {
		pos := stack[i].Pos
		if f := pos.Filename(); f != assertFile && f != "<builtin>" && pos.IsValid() {
			return fmt.Sprintf("%s:%d:%d: ", f, pos.Line, pos.Col)
		}
	}
	return ""
}

// assertCatch calls fn(*args, **kwargs) and returns its error message, or
// None when it succeeded.
func assertCatch(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("%s: missing function to call", b.Name())
	}
	if _, err := starlark.Call(thread, args[0], args[1:], kwargs); err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			return starlark.String(ee.Msg), nil
		}
		return starlark.String(err.Error()), nil
	}
	return starlark.None, nil
}

// assertSearch reports whether the regular expression pattern matches
// anywhere in s.
func assertSearch(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var pattern, s string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 2, &pattern, &s); err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%s: pattern %q: %w", b.Name(), pattern, err)
	}
	return starlark.Bool(re.MatchString(s) || strings.Contains(s, pattern)), nil
}
