package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/playtest"
)

// TestCmd runs playbook tests (*_test.star), each test function on a fresh
// simulated host, and prints one line per test and a summary.
type TestCmd struct {
	Paths   []string `arg:"" optional:"" help:"Test files or directories, searched recursively (default: the playbooks directory)."`
	Match   string   `name:"run" help:"Run only tests whose name matches this regular expression." placeholder:"REGEXP" env:"-"`
	Verbose bool     `short:"v" help:"Show the logs of the playbooks under test." env:"-"`
}

// Run runs the tests; any failure exits 1.
func (c *TestCmd) Run(g *Globals) error {
	root, files, err := listFiles(g.Playbooks, c.Paths, engine.FileTest)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("test: no *_test.star files found")
	}
	opts := playtest.Options{Root: root, MaxSteps: g.Runtime.MaxSteps}
	if c.Match != "" {
		if opts.Match, err = regexp.Compile(c.Match); err != nil {
			return fmt.Errorf("--run: %w", err)
		}
	}
	if c.Verbose {
		opts.Logger = g.logger(g.stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, err := playtest.Run(ctx, files, opts)
	if err != nil {
		return err
	}
	var passed, failedN int
	for _, r := range results {
		name := r.File
		if r.Test != "" {
			name += ": " + r.Test
		}
		if r.Passed() {
			passed++
			fmt.Fprintf(g.stdout, "--- PASS: %s (%s)\n", name, r.Duration.Round(time.Millisecond))
			continue
		}
		failedN++
		fmt.Fprintf(g.stdout, "--- FAIL: %s (%s)\n", name, r.Duration.Round(time.Millisecond))
		for _, f := range r.Failures {
			fmt.Fprintf(g.stdout, "    %s\n", f)
		}
	}
	fmt.Fprintf(g.stdout, "%d passed, %d failed (%s)\n", passed, failedN, time.Since(start).Round(time.Millisecond))
	if failedN > 0 {
		return failed(fmt.Errorf("test: %d failed", failedN))
	}
	return nil
}
