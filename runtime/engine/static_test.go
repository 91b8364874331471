package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
)

// TestCtxShape holds the checker's idea of ctx to the struct a run gets.
func TestCtxShape(t *testing.T) {
	h := newHarness(t, map[string]string{"p.star": pbSource("p", "    return dir(ctx)")}, Config{})
	res := h.run(context.Background(), "p.star", nil, RunOptions{})
	want := `["` + strings.Join(slices.Sorted(slices.Values(ctxShape.Fields)), `","`) + `"]`
	if string(res.Output) != want {
		t.Errorf("dir(ctx) = %s; the checker's ctxShape has %s", res.Output, want)
	}
}

// TestStaticCheckRefusesAReload: a version the static check refuses is
// refused by the registry like a syntax error, and the last good version
// keeps serving.
func TestStaticCheckRefusesAReload(t *testing.T) {
	r, dir := newTestRegistry(t, map[string]string{"p.star": pbSource("p", "    return [g.name for g in proxmox.guests()]")})
	if ch := r.LoadAll(); len(ch.Failed) != 0 {
		t.Fatalf("LoadAll: %v", ch.Failed)
	}
	good := r.Get("p")
	enginetest.WriteFile(t, dir, "p.star", pbSource("p", "    return [g.hostname for g in proxmox.guests()]"))
	ch := r.Reload(filepath.Join(dir, "p.star"))
	diags := ch.Failed["p.star"]
	if len(diags) != 1 || !strings.Contains(diags[0].String(), "p.star:2:14: a guest (from proxmox.guests()) has no field hostname") {
		t.Errorf("reload of a version with g.hostname: Failed = %v", ch.Failed)
	}
	if r.Get("p") != good {
		t.Errorf("the last good version no longer serves")
	}
	enginetest.WriteFile(t, dir, "p.star", pbSource("p", "    return [g.vmid for g in proxmox.guests()]"))
	if ch := r.Reload(filepath.Join(dir, "p.star")); len(ch.Loaded) != 1 {
		t.Errorf("reload of the fixed version: %+v", ch)
	}
}

// TestStaticCheckCases covers what the fixtures in testdata/check do not:
// each source is the body of run(ctx) in a playbook with one parameter,
// storage; want is a fragment of the one diagnostic, "" for none.
func TestStaticCheckCases(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"negative literal", `proxmox.guest(-1)`, `proxmox.guest: for parameter "vmid": got -1, want a guest id`},
		{"literal out of range", `proxmox.guest(42)`, `got 42, want a guest id between 100`},
		{"None skips an optional argument", `proxmox.vzdump(None, vmids = [101], storage = "x")`, ""},
		{"literal dict", `proxmox.set_config(101, set = {"cores": 2})`, ""},
		{"positional and keyword", `proxmox.guest(101, vmid = 102)`, `proxmox.guest: got multiple values for parameter "vmid"`},
		{"keyword-only by position", `proxmox.vzdump(101, "usb-backup")`, `want at most 1; pass storage`},
		{"unknown keyword, no suggestion", `proxmox.guests(frobnicate = 1)`, `proxmox.guests: unexpected keyword argument "frobnicate"`},
		{"**kwargs takes any keyword", `log.info("m", anything = 1)`, ""},
		{"positional-only by name", `json.indent(str = "{}")`, `json.indent: unexpected keyword argument "str"`},
		{"shadowed module", `proxmox = struct(guets = 1)
    return proxmox.guets`, ""},
		{"module attribute", `return time.hour * 2`, ""},
		{"unknown time member", `return time.hours`, `module time has no .hours field or method (did you mean .hour?)`},
		{"global function", `return catch(proxmox.guests).value`, ""},
		{"global function field", `return catch(proxmox.guests).valeu`, `a catch result (from catch(proxmox.guests)) has no field valeu (did you mean .value?)`},
		{"nested error field", `return catch(proxmox.guests).error.knd`, `an error (from catch(proxmox.guests)) has no field knd (did you mean .kind?)`},
		{"caught value field", `return catch(proxmox.guest, 101).value.nme`, `a guest status (from catch(proxmox.guest)) has no field nme (did you mean .name?)`},
		{"caught value of a lambda", `return catch(lambda: proxmox.guest(101)).value.nme`, ""},
		{"caught call keyword", `return catch(proxmox.snapshot, 101, "s", descripton = "d")`, `proxmox.snapshot: unexpected keyword argument "descripton" (did you mean description?)`},
		{"caught call missing argument", `return catch(proxmox.start)`, `proxmox.start: missing argument for vmid`},
		{"caught call literal", `return catch(proxmox.snapshot, "abc", "s")`, `proxmox.snapshot: for parameter "vmid": got string, want int`},
		{"caught call by name", `return catch(fn = proxmox.start)`, ""},
		{"config rootfs", `return proxmox.config(101).rootfs.volume`, ""},
		{"config rootfs typo", `return proxmox.config(101).rootfs.volum`, `has no field volum`},
		{"monitor reading", `return monitor.node().mem_percent`, ""},
		{"monitor reading typo", `return monitor.node().mem_percnt`, `a node reading (from monitor.node()) has no field mem_percnt (did you mean .mem_percent?)`},
		{"monitor list element", `return [s.used_percnt for s in monitor.storage()]`, `a storage reading (from monitor.storage()) has no field used_percnt (did you mean .used_percent?)`},
		{"monitor.all nested", `return monitor.all().tunnel.upp`, `a tunnel reading (from monitor.all()) has no field upp (did you mean .up?)`},
		{"monitor.all smart", `return [d.passed for d in monitor.all().smart]`, ""},
		{"list method", `gs = proxmox.guests()
    gs.append(1)
    return gs`, ""},
		{"variable bound twice", `g = proxmox.guest(101)
    g = struct(hostname = "x")
    return g.hostname`, ""},
		{"loop variable rebound in its loop", `for g in proxmox.guests():
        g = struct(hostname = g.name)
        log.info(g.hostname)`, ""},
		{"two loops over one name", `for g in proxmox.storages():
        log.info(g.storage)
    for g in proxmox.guests():
        log.info(g.storge)`, `a guest (from proxmox.guests()) has no field storge`},
		{"closure", `g = proxmox.guest(101)
    f = lambda: g.nam
    return f()`, `a guest status (from proxmox.guest()) has no field nam (did you mean .name?)`},
		{"a = a[0] does not loop the checker", `a = a[0]`, ""},
		{"ctx passed on", `return helper(ctx)

def helper(c):
    return c.params.nope`, ""},
		{"ctx param", `return ctx.params.storage`, ""},
		{"ctx param typo", `return ctx.params.storaeg`, `ctx.params has no parameter storaeg (did you mean .storage?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "def run(ctx):\n    " + tt.body + "\n\nplaybook(name = \"p\", run = run, params = {\"storage\": param.string(default = \"x\")})\n"
			dir := enginetest.WriteTree(t, map[string]string{"p.star": src})
			_, diags := Check(dir, nil)
			var got []string
			for _, d := range diags {
				got = append(got, d.Msg)
			}
			switch {
			case tt.want == "" && len(got) > 0:
				t.Errorf("Check reported %q; want nothing", got)
			case tt.want != "" && (len(got) != 1 || !strings.Contains(got[0], tt.want)):
				t.Errorf("Check reported %q; want one diagnostic containing %q", got, tt.want)
			}
		})
	}
}

// TestStaticCheckFollowsTheTables: the checker reads whatever the tables
// say, so a builtin added to a table is checked at once.
func TestStaticCheckFollowsTheTables(t *testing.T) {
	fn := func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var n int
		return starlark.None, starlark.UnpackArgs(b.Name(), args, kwargs, "n", &n)
	}
	extra := &builtins.Table{Name: "extra", Doc: "A module another engineer adds.", Funcs: []builtins.Func{
		{Name: "thing", Sig: "thing(n)", Doc: "Returns a thing.", Fn: fn, Returns: builtins.StructShape("thing", "size")},
	}}
	dir := enginetest.WriteTree(t, map[string]string{"p.star": pbSource("p", `    extra.thing("3")
    extra.thing(3).colour
    return extra.thng`)})
	l, err := NewLoader(dir, LoaderOptions{Tables: append(enginetest.Tables(nil), extra), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	_, diags := l.Check(nil)
	var got []string
	for _, d := range diags {
		got = append(got, relDiag(d, dir))
	}
	want := []string{
		`p.star:2:17: extra.thing: for parameter "n": got string, want int`,
		`p.star:3:19: a thing (from extra.thing()) has no field colour; its fields are size`,
		`p.star:4:17: module extra has no .thng field or method (did you mean .thing?)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Check reported\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestStaticCheckCorpus is the false-positive sweep: every playbook and
// module the project ships or keeps as test data loads without one
// finding of the static check. (Test files are swept through the CLI,
// which knows the test modules: cmd/felhom-agent's TestCheckCorpus.)
func TestStaticCheckCorpus(t *testing.T) {
	roots := []string{"../../playbooks", "../../cmd/felhom-agent/testdata/cli", "../../cmd/felhom-agent/testdata/bench", "../playtest/testdata"}
	e2e, _ := filepath.Glob("../../cmd/felhom-agent/e2e/testdata/*")
	for _, r := range e2e {
		if fi, err := os.Stat(r); err == nil && fi.IsDir() {
			roots = append(roots, r)
		}
	}
	files := 0
	for _, root := range roots {
		l, err := NewLoader(root, LoaderOptions{Tables: enginetest.Tables(nil), Logger: enginetest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		checked, _ := l.Check(nil)
		files += len(checked)
		for _, key := range l.programs.Keys() {
			c, _ := l.programs.Peek(key)
			for _, d := range c.static.diags {
				t.Errorf("false positive: %s", d)
			}
		}
	}
	if files < 20 {
		t.Errorf("swept %d files; the corpus is larger than that", files)
	}
	t.Logf("swept %d playbooks and modules", files)
}
