package builtins

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// exec runs src as a file with the predeclared tables plus extra, on a
// thread that carries env (nil: a loading thread).
func exec(t *testing.T, env *Env, src string, extra ...*Table) (starlark.StringDict, error) {
	t.Helper()
	thread := &starlark.Thread{Name: t.Name()}
	if env != nil {
		SetEnv(thread, env)
	}
	return execThread(thread, src, extra...)
}

// newLoadThread is a thread loading a file, with its load logger set.
func newLoadThread(l *slog.Logger) *starlark.Thread {
	thread := &starlark.Thread{Name: "load"}
	SetLoadLogger(thread, l)
	return thread
}

func execThread(thread *starlark.Thread, src string, extra ...*Table) (starlark.StringDict, error) {
	opts := &syntax.FileOptions{While: true, TopLevelControl: true}
	return starlark.ExecFileOptions(opts, thread, "test.star", src, Predeclared(append(Tables(), extra...)))
}

// attrs renders a record's attributes as "k=v" in order.
func attrs(rec slog.Record) string {
	var parts []string
	rec.Attrs(func(a slog.Attr) bool {
		parts = append(parts, a.Key+"="+a.Value.String())
		return true
	})
	return strings.Join(parts, " ")
}

func TestPredeclaredBindsGlobalsAndModules(t *testing.T) {
	env := Predeclared(Tables())
	for _, name := range []string{"catch", "log", "json", "time"} {
		if !env.Has(name) {
			t.Errorf("Predeclared(Tables()) lacks %q", name)
		}
	}
	if got := env["catch"].(*starlark.Builtin).Name(); got != "catch" {
		t.Errorf("global builtin name = %q; want %q", got, "catch")
	}
	if _, err := exec(t, nil, `x = json.decode(json.encode({"a": [1, True, None]}))["a"]`); err != nil {
		t.Errorf("json round trip: %v", err)
	}
}

func TestPredeclaredPanicsOnDuplicate(t *testing.T) {
	dup := &Table{Name: "", Funcs: []Func{{Name: "log", Sig: "log()", Doc: "x", Fn: catch}}}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"log" is registered twice`) {
			t.Errorf("recover() = %v; want a duplicate-registration panic", r)
		}
	}()
	Predeclared([]*Table{LogTable, dup})
}

func TestErrorfWrapsWithBuiltinName(t *testing.T) {
	cause := context.DeadlineExceeded
	err := Errorf(starlark.NewBuiltin("proxmox.start", nil), "waiting for guest %d: %w", 101, cause)
	if got, want := err.Error(), "proxmox.start: waiting for guest 101: context deadline exceeded"; got != want {
		t.Errorf("Errorf() = %q; want %q", got, want)
	}
	if !strings.HasPrefix(err.Error(), "proxmox.start: ") || !errorsIs(err, cause) {
		t.Errorf("Errorf() does not wrap its %%w operand: %v", err)
	}
}
