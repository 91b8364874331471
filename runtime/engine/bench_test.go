package engine

import (
	"context"
	"path/filepath"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// benchFiles is a small playbook over a module: the shape of a real one,
// without Proxmox calls.
var benchFiles = map[string]string{
	"lib/guests.star": `
def pick(guests, only):
    return [g for g in guests if not only or g["vmid"] in only]
`,
	"bench.star": `
"""Picks guests and reports them."""

load("lib/guests.star", "pick")

GUESTS = [{"vmid": 100 + i, "name": "ct%d" % i} for i in range(20)]

def run(ctx):
    out = []
    for g in pick(GUESTS, ctx.params.only):
        log.debug("picked", vmid = g["vmid"])
        out.append(g["name"])
    return {"picked": out}

playbook(name = "bench", run = run, params = {"only": param.list(param.int(), default = [101, 105])})
`,
}

func benchRun(b *testing.B, e *Engine, pb *Playbook) {
	res := e.Run(context.Background(), pb, nil, RunOptions{ID: "bench"})
	if res.Status != runstate.Succeeded || string(res.Output) != `{"picked":["ct1","ct5"]}` {
		b.Fatalf("run = %s %q %s", res.Status, res.Error, res.Output)
	}
}

// BenchmarkRunCached runs a loaded playbook: no parsing, compiling or
// module execution, only the entry function.
func BenchmarkRunCached(b *testing.B) {
	dir := enginetest.WriteTree(b, benchFiles)
	pb, err := LoadFile(filepath.Join(dir, "bench.star"), dir)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(Config{Logger: enginetest.Logger()})
	for b.Loop() {
		benchRun(b, e, pb)
	}
}

// BenchmarkRunFromSource reads, compiles and executes the playbook and
// its module before every run, as an engine without the cache would.
func BenchmarkRunFromSource(b *testing.B) {
	dir := enginetest.WriteTree(b, benchFiles)
	e := NewEngine(Config{Logger: enginetest.Logger()})
	for b.Loop() {
		l, err := NewLoader(dir, LoaderOptions{Logger: enginetest.Logger()})
		if err != nil {
			b.Fatal(err)
		}
		pb, err := l.Load(filepath.Join(dir, "bench.star"))
		if err != nil {
			b.Fatal(err)
		}
		benchRun(b, e, pb)
	}
}

// TestRunsDoNotCompile: running an unchanged playbook again, or reloading
// it, parses and executes nothing.
func TestRunsDoNotCompile(t *testing.T) {
	dir := enginetest.WriteTree(t, benchFiles)
	r, err := NewRegistry(dir, LoaderOptions{Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	r.LoadAll()
	before := r.Loader().Stats()
	if before.Compiles != 2 || before.Execs != 2 {
		t.Fatalf("first load: %+v; want 2 compiles, 2 execs", before)
	}
	e := NewEngine(Config{Logger: enginetest.Logger()})
	for range 3 {
		if res := e.Run(context.Background(), r.Get("bench"), nil, RunOptions{}); res.Status != runstate.Succeeded {
			t.Fatal(res.Error)
		}
	}
	if ch := r.Reload(filepath.Join(dir, "bench.star"), filepath.Join(dir, "lib/guests.star")); !ch.Empty() {
		t.Errorf("reload of unchanged files = %+v", ch)
	}
	if after := r.Loader().Stats(); after != before {
		t.Errorf("runs and an unchanged reload: Stats %+v -> %+v; want no compile or exec", before, after)
	}
}

// BenchmarkOperators is a run that spends its time on + and * (and +=):
// what the sized operators cost (sized.go) against Starlark's opcodes.
func BenchmarkOperators(b *testing.B) {
	dir := enginetest.WriteTree(b, map[string]string{"ops.star": `
def run(ctx):
    n = 0
    s = ""
    l = []
    for i in range(1000):
        n = n + i * 2
        n += 1
        s = s + "x"
        l += [i]
    return len(s) + len(l) + n

playbook(name = "ops", run = run)
`})
	pb, err := LoadFile(filepath.Join(dir, "ops.star"), dir)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(Config{Logger: enginetest.Logger()})
	for b.Loop() {
		if res := e.Run(context.Background(), pb, nil, RunOptions{ID: "ops"}); res.Status != runstate.Succeeded {
			b.Fatalf("run = %s %q", res.Status, res.Error)
		}
	}
}
