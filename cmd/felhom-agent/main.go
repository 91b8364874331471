// Command felhom-agent is the Felhom host agent for Proxmox VE: it runs
// Starlark playbooks against the host's API, from the command line, on hub
// triggers and on timers.
//
// This package only parses flags and configuration (kong) and wires the
// parts together; the behaviour lives in runtime, builtins and proxmox.
//
// Exit codes: 0 success, 1 the playbook (or test) failed, 2 usage,
// configuration or load error, 3 the Proxmox API could not be reached
// (run's start-up check, after retrying for proxmox.read_retry_budget).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kong"
)

// Exit codes every command shares.
const (
	exitOK     = 0
	exitFailed = 1 // the playbook or a test failed
	exitUsage  = 2 // usage, configuration or load error
	// exitUnreachable: the configuration is sound but the Proxmox API did
	// not answer (refused, timed out, 502/503) within the retry budget —
	// worth retrying later, unlike exitUsage.
	exitUnreachable = 3
)

// exitError carries a command's exit code with its message. A command that
// returns a plain error exits with exitUsage: the run never got going.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failed wraps err so that the process exits with exitFailed.
func failed(err error) error { return &exitError{code: exitFailed, err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the selected command and returns the exit code. It
// is main without the process, so tests can drive the whole CLI.
func run(args []string, stdout, stderr io.Writer) int {
	var cli CLI
	parser, err := newParser(&cli, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		return exitUsage
	}
	if completeRequest(parser) {
		return exitOK
	}
	kctx, exited, err := parse(parser, args)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		return exitUsage
	case exited != nil:
		return exited.code
	}
	cli.Globals.stdout, cli.Globals.stderr = stdout, stderr
	cli.Globals.color = colorFor(stdout)
	if err := kctx.Run(&cli.Globals); err != nil {
		fmt.Fprintf(stderr, "felhom-agent: %v\n", err)
		if hint := simSocketHint(err, hostDirs()); hint != "" {
			fmt.Fprintln(stderr, hint)
		}
		if ee, ok := errors.AsType[*exitError](err); ok {
			return ee.code
		}
		return exitUsage
	}
	return exitOK
}

// kongExit is how kong's exit (after --help, say) reaches parse: kong calls
// its exit function in the middle of parsing, and panicking with this value
// unwinds back to parse without ending the process.
type kongExit struct{ code int }

// parse runs kong's parser. exited is set when kong finished the process's
// work itself (help was printed) instead of selecting a command.
func parse(parser *kong.Kong, args []string) (kctx *kong.Context, exited *kongExit, err error) {
	defer func() {
		if r := recover(); r != nil {
			ke, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			kctx, exited, err = nil, &ke, nil
		}
	}()
	kctx, err = parser.Parse(args)
	if ce, ok := errors.AsType[*configError](err); ok {
		// kong prefixes the flag it was resolving; the problem is the
		// file's, named by its keys.
		return nil, nil, ce
	}
	if err == nil {
		err = checkFlagRanges(kctx)
	}
	return kctx, nil, err
}
