package builtins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

var testUPID = proxmox.MustParseUPID("UPID:pve:0000F00D:00A1B2C3:65F0A1B2:vzdump:101:felhom@pve!agent:")

// fakeErrors are the failures fake.fail(name) raises, wrapped by the
// builtin with %w as real builtins do.
var fakeErrors = map[string]error{
	"task_permission": &proxmox.TaskError{
		UPID:       testUPID,
		ExitStatus: "Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)",
		Permission: &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.Config.Disk", "VM.Config.CPU"}},
		LogTail:    []string{"INFO: starting", "TASK ERROR: Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)"},
	},
	"api_locked": &proxmox.APIError{Method: "POST", Path: "/nodes/pve/lxc/101/status/start", Status: 500, Message: "CT is locked (backup)"},
	"not_found":  &proxmox.APIError{Method: "GET", Path: "/nodes/pve/lxc/999/status/current", Status: 500, Message: "Configuration file 'nodes/pve/lxc/999.conf' does not exist"},
	"plain":      errors.New("something else"),
}

var fakeTable = &Table{
	Name: "fake",
	Doc:  "Test builtins.",
	Funcs: []Func{
		{Name: "fail", Sig: "fail(name)", Doc: "Raises fakeErrors[name].", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var name string
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
				return nil, err
			}
			return nil, Errorf(b, "doing %s: %w", name, fakeErrors[name])
		}},
		{Name: "act", Sig: "act()", Doc: "An acting builtin.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
				return nil, err
			}
			if _, err := RunEnv(thread, b); err != nil {
				return nil, err
			}
			return starlark.String("acted"), nil
		}},
		{Name: "echo", Sig: "echo(*args, **kwargs)", Doc: "Returns its arguments.", Fn: func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return starlark.String(fmt.Sprint(args, kwargs)), nil
		}},
	},
}

func runEnv(ctx context.Context) *Env { return &Env{Context: ctx, Logger: slog.New(logtest.New())} }

// field reads a dotted path of struct attributes from v.
func field(t *testing.T, v starlark.Value, path string) starlark.Value {
	t.Helper()
	for name := range strings.SplitSeq(path, ".") {
		s, ok := v.(*starlarkstruct.Struct)
		if !ok {
			t.Fatalf("%s: %v is %s, not a struct", path, v, v.Type())
		}
		next, err := s.Attr(name)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		v = next
	}
	return v
}

func TestCatchClassifiesFailures(t *testing.T) {
	tests := []struct {
		call string
		want map[string]string // error field -> str() of its value
	}{
		{`catch(fake.fail, "task_permission")`, map[string]string{
			"kind":       `"permission"`,
			"privilege":  `"VM.Config.Disk|VM.Config.CPU"`,
			"path":       `"/vms/101"`,
			"exitstatus": `"Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)"`,
			"upid":       fmt.Sprintf("%q", testUPID.String()),
			"log":        `["INFO: starting", "TASK ERROR: Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)"]`,
			"status":     "0",
			"message":    `"fake.fail: doing task_permission: task vzdump (101 ` + testUPID.String() + `) failed: Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)"`,
		}},
		{`catch(fake.fail, name = "api_locked")`, map[string]string{
			"kind": `"lock"`, "lock": `"backup"`, "status": "500", "exitstatus": `""`, "log": "[]",
		}},
		// Through a Starlark function: the *EvalError chain still unwraps
		// to the typed error.
		{`catch(lambda: fake.fail("not_found"))`, map[string]string{"kind": `"not_found"`, "status": "500"}},
		{`catch(fake.fail, "plain")`, map[string]string{"kind": `"error"`, "message": `"fake.fail: doing plain: something else"`, "privilege": `""`}},
		{`catch(fail, "boom")`, map[string]string{"kind": `"error"`, "message": `"fail: boom"`}},
	}
	for _, tt := range tests {
		t.Run(tt.call, func(t *testing.T) {
			g, err := exec(t, runEnv(context.Background()), "r = "+tt.call, fakeTable)
			if err != nil {
				t.Fatal(err)
			}
			if ok := field(t, g["r"], "ok"); ok != starlark.False {
				t.Errorf("r.ok = %v; want False", ok)
			}
			if v := field(t, g["r"], "value"); v != starlark.None {
				t.Errorf("r.value = %v; want None", v)
			}
			for name, want := range tt.want {
				if got := field(t, g["r"], "error."+name).String(); got != want {
					t.Errorf("r.error.%s = %s; want %s", name, got, want)
				}
			}
		})
	}
}

func TestCatchSuccessPassesArguments(t *testing.T) {
	g, err := exec(t, nil, `r = catch(fake.echo, 1, "x", fn = 2)`, fakeTable)
	if err != nil {
		t.Fatal(err)
	}
	if ok := field(t, g["r"], "ok"); ok != starlark.True {
		t.Errorf("r.ok = %v; want True", ok)
	}
	if got, want := field(t, g["r"], "value").String(), `"(1, \"x\") [(\"fn\", 2)]"`; got != want {
		t.Errorf("r.value = %s; want %s", got, want)
	}
	if e := field(t, g["r"], "error"); e != starlark.None {
		t.Errorf("r.error = %v; want None", e)
	}
}

func TestCatchDoesNotSwallow(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		env     *Env
		src     string
		wantErr string
	}{
		{"acting at load time", nil, `r = catch(fake.act)`, "fake.act: may only be called while a playbook runs"},
		{"cancelled run", runEnv(cancelled), `r = catch(fake.fail, "plain")`, "fake.fail: doing plain"},
		{"no fn", nil, `r = catch()`, "catch: missing argument for fn"},
		{"fn not callable", nil, `r = catch(1)`, "catch: for parameter 1: got int, want callable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := exec(t, tt.env, tt.src, fakeTable)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("exec(%s) = %v; want error containing %q", tt.src, err, tt.wantErr)
			}
		})
	}
	// The same acting call succeeds at run time.
	g, err := exec(t, runEnv(context.Background()), `r = catch(fake.act)`, fakeTable)
	if err != nil {
		t.Fatal(err)
	}
	if v := field(t, g["r"], "value"); v != starlark.String("acted") {
		t.Errorf("r.value = %v; want \"acted\"", v)
	}
}
