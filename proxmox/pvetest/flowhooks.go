package pvetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// A flow script (proxmoxer's) cannot create every situation it checks by
// itself: a task held running, a node of the cluster down. It asks the
// test for them over a line protocol: the test writes the configuration
// as one JSON line on the script's stdin; the script prints
// "HOOK VERB [ARG]" on stdout and reads one reply line ("ok", or
// "error: WHY") from stdin. Every hook opens a scope that lasts until the
// script asks "HOOK end VERB [ARG]"; the test answers that end only once
// the scope's cleanup has run (the tasks released, the node back). Other
// stdout lines are the script's log. The verbs:
//
//	hold       World.HoldTasks: running tasks keep running
//	down NODE  World.Cluster.NodeDown(NODE)
//
// flowHooks lists the verbs w offers, for the script's configuration (a
// step whose hook is missing is skipped, and says so).
func flowHooks(w World) []string {
	var out []string
	if w.HoldTasks != nil {
		out = append(out, "hold")
	}
	if w.Cluster != nil && w.Cluster.NodeDown != nil {
		out = append(out, "down")
	}
	return out
}

// runFlow runs cmd with cfg as its first stdin line, serving its hooks
// until it exits; it returns the script's output and how it ended.
func runFlow(t *testing.T, ctx context.Context, cmd *exec.Cmd, cfg []byte, w World) (string, error) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	f := &flow{w: w, in: stdin, lines: bufio.NewScanner(stdout)}
	if _, err := fmt.Fprintf(stdin, "%s\n", cfg); err != nil {
		f.log.WriteString("writing the configuration: " + err.Error() + "\n")
	} else {
		f.serve(t, "")
	}
	_ = stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	return f.log.String() + stderr.String(), err
}

type flow struct {
	w     World
	in    io.Writer
	lines *bufio.Scanner
	log   strings.Builder
}

func (f *flow) reply(s string) { _, _ = fmt.Fprintln(f.in, s) }

// serve handles the script's lines until it asks for end (not answered
// here: the caller answers once the scope is closed) or exits. It reports
// whether end came.
func (f *flow) serve(t *testing.T, end string) bool {
	for f.lines.Scan() {
		line := f.lines.Text()
		req, hook := strings.CutPrefix(line, "HOOK ")
		if !hook {
			f.log.WriteString(line + "\n")
			continue
		}
		if end != "" && req == end {
			return true
		}
		verb, arg, _ := strings.Cut(req, " ")
		var open func(t *testing.T)
		switch {
		case verb == "hold" && f.w.HoldTasks != nil:
			open = func(t *testing.T) { f.w.HoldTasks(t) }
		case verb == "down" && arg != "" && f.w.Cluster != nil && f.w.Cluster.NodeDown != nil:
			open = func(t *testing.T) { f.w.Cluster.NodeDown(t, arg) }
		default:
			f.reply("error: no hook " + req)
			continue
		}
		closed := false
		ok := t.Run(strings.ReplaceAll(req, " ", "-"), func(t *testing.T) {
			open(t)
			f.reply("ok")
			closed = f.serve(t, "end "+req)
		})
		if !closed {
			// The script exited inside the scope, or opening it failed.
			if !ok {
				f.reply("error: hook " + req + " failed")
				continue
			}
			return false
		}
		f.reply("ok")
	}
	return false
}
