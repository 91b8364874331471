package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

const undoLib = `
def say(what):
    print("undo " + what)

def broken(what):
    fail("cannot undo " + what)
`

func TestUndoRunsNewestFirstWhenTheRunFails(t *testing.T) {
	files := map[string]string{
		"fails.star": undoLib + pbSource("fails", `    undo(say, "first")
    undo(broken, "second")
    undo(say, what = "third")
    fail("boom")`),
		"ok.star": undoLib + pbSource("ok", `    undo(say, "never")
    return 1`),
		"block.star": undoLib + pbSource("block", `    undo(say, "after cancel")
    test.block()`),
	}
	t.Run("failed", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		res := h.run(context.Background(), "fails.star", nil, RunOptions{})
		if res.Status != runstate.Failed {
			t.Fatalf("status = %s; want failed", res.Status)
		}
		var calls []string
		for _, s := range res.Undo {
			calls = append(calls, s.Call)
		}
		want := []string{`say(what = "third")`, `broken("second")`, `say("first")`}
		if len(calls) != 3 || !strings.HasPrefix(calls[0], want[0]) || !strings.HasPrefix(calls[1], want[1]) || !strings.HasPrefix(calls[2], want[2]) {
			t.Fatalf("undo ran %q; want %q, newest first", calls, want)
		}
		if res.Undo[1].Error == "" || !strings.Contains(res.Undo[1].Error, "cannot undo second") || res.Undo[0].Error != "" || res.Undo[2].Error != "" {
			t.Errorf("undo steps = %+v; want only the second to fail, with its error", res.Undo)
		}
		if !strings.Contains(res.Error, "boom") || !strings.Contains(res.Error, "cleanup failed: broken(") {
			t.Errorf("error = %q; want the failure and the failed cleanup named", res.Error)
		}
		lines := h.rec.Lines()
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "undo third") }) ||
			!slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "undo first") }) {
			t.Errorf("log = %q; want both working compensations to have run", lines)
		}
	})
	t.Run("succeeded: nothing undone", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		res := h.run(context.Background(), "ok.star", nil, RunOptions{})
		if res.Status != runstate.Succeeded || len(res.Undo) != 0 {
			t.Errorf("result = %s, undo %+v; want succeeded with nothing undone", res.Status, res.Undo)
		}
	})
	t.Run("cancelled: undone", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		ctx, cancel := context.WithCancelCause(context.Background())
		started := h.sig.Arm()
		go func() { <-started; cancel(errors.New("by the operator")) }()
		res := h.run(ctx, "block.star", nil, RunOptions{})
		if res.Status != runstate.Cancelled || len(res.Undo) != 1 || res.Undo[0].Error != "" || !strings.Contains(res.Error, "undone: 1") {
			t.Errorf("result = %s %q, undo %+v; want cancelled and undone", res.Status, res.Error, res.Undo)
		}
	})
	t.Run("interrupted by the agent's stop: not undone", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		ctx, cancel := context.WithCancelCause(context.Background())
		started := h.sig.Arm()
		go func() { <-started; cancel(ErrInterrupt) }()
		res := h.run(ctx, "block.star", nil, RunOptions{})
		if res.Status != runstate.Interrupted || len(res.Undo) != 0 {
			t.Errorf("result = %s %q, undo %+v; want interrupted and nothing undone", res.Status, res.Error, res.Undo)
		}
	})
}
