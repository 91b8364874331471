package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// A playbook is loaded once and run with parameters checked against its
// declaration.
func ExampleEngine_Run() {
	dir, _ := os.MkdirTemp("", "playbooks")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "greet.star"), []byte(`
"""Greets someone."""

def run(ctx):
    return {"greeting": "hello, " + ctx.params.who, "times": ctx.params.times}

playbook(
    name = "greet",
    run = run,
    params = {"who": param.string(), "times": param.int(default = 1)},
)
`), 0o644)

	pb, err := engine.LoadFile(filepath.Join(dir, "greet.star"), dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	eng := engine.NewEngine(engine.Config{Logger: slog.New(slog.DiscardHandler)})

	if _, err := pb.Decl.Coerce(map[string]string{"who": "world", "times": "twice"}, nil); err != nil {
		fmt.Println(err)
	}
	params, _ := pb.Decl.Coerce(map[string]string{"who": "world"}, nil)
	res := eng.Run(context.Background(), pb, params, engine.RunOptions{Trigger: "cli"})
	fmt.Println(pb.Decl.Doc)
	fmt.Println(res.Status, string(res.Output))
	// Output:
	// parameter "times": expected int, got "twice"
	// Greets someone.
	// succeeded {"greeting":"hello, world","times":1}
}
