package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestRunQueuesFIFO: the gate goes to the first in line; a withdrawn turn
// is skipped; a full queue is refused before anything is reserved.
func TestRunQueuesFIFO(t *testing.T) {
	q := newRunQueues(2)
	if t0 := q.enter("p", "a", false); t0 != nil {
		t.Fatal("the first run of a free playbook waited")
	}
	if full := q.reserve([]string{"p"}); full != "" {
		t.Fatalf("reserve with an empty queue = %q", full)
	}
	b := q.enter("p", "b", true)
	c := q.enter("p", "c", false)
	if b == nil || c == nil || q.position("p", "b") != 1 || q.position("p", "c") != 2 {
		t.Fatalf("positions b=%d c=%d; want 1, 2", q.position("p", "b"), q.position("p", "c"))
	}
	if full := q.reserve([]string{"other", "p"}); full != "p" {
		t.Fatalf("reserve with a full queue = %q; want p", full)
	}
	if q.byName["other"].reserved != 0 {
		t.Error("a refused reserve kept a place in another queue")
	}
	if !q.withdraw("p", b) {
		t.Fatal("withdraw of a waiting turn = false")
	}
	q.leave("p") // a leaves: c, not the withdrawn b, goes
	select {
	case <-c.ready:
	default:
		t.Fatal("c was not handed the gate")
	}
	if q.withdraw("p", c) {
		t.Error("withdraw of a turn that was handed the gate = true")
	}
	q.drain()
	d := q.enter("p", "d", false)
	q.leave("p") // c leaves while draining: d is not handed the gate
	select {
	case <-d.ready:
		t.Error("a turn was handed the gate while draining")
	default:
	}
}

// TestAgentQueuesBusyPlaybook: a second run of a busy non-concurrent
// playbook is queued (its place visible), runs when the first ends, and a
// full queue is refused with nothing recorded; a queued run may be
// cancelled.
func TestAgentQueuesBusyPlaybook(t *testing.T) {
	ta := startAgent(t, map[string]string{"one.star": agentPlaybook("one", "    test.block()\n    return ctx.run_id", "")},
		func(c *Config) { c.QueueMax = 2 })
	ctx := context.Background()
	started := ta.sig.Arm()
	first := ta.start("one", nil)
	<-started
	second, third := ta.start("one", nil), ta.start("one", nil)
	if second.Status != "queued" || second.QueuePosition != 1 || third.QueuePosition != 2 {
		t.Fatalf("queued runs: %s at %d, %s at %d; want queued at 1 and 2", second.Status, second.QueuePosition, third.Status, third.QueuePosition)
	}
	before, _ := ta.client.Runs(ctx, api.ListFilter{Limit: 100})
	_, err := ta.client.Trigger(ctx, api.TriggerRequest{Playbook: "one"})
	if ae, ok := errors.AsType[*api.Error](err); !ok || ae.Status != 429 || !strings.Contains(ae.Message, "runs.queue_max") {
		t.Fatalf("a start with a full queue = %v; want 429 naming runs.queue_max", err)
	}
	if after, _ := ta.client.Runs(ctx, api.ListFilter{Limit: 100}); len(after) != len(before) {
		t.Errorf("%d runs before the refused start, %d after", len(before), len(after))
	}

	if _, err := ta.client.Cancel(ctx, third.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := ta.wait(third.ID); r.Status != "cancelled" || !strings.Contains(r.Error, "while queued") {
		t.Errorf("cancelled queued run = %s %q", r.Status, r.Error)
	}
	close(ta.sig.Release)
	r1, _ := ta.wait(first.ID)
	r2, lines := ta.wait(second.ID)
	if r1.Status != "succeeded" || r2.Status != "succeeded" || !r2.Started.After(*r1.Ended) && !r2.Started.Equal(*r1.Ended) {
		t.Errorf("first %s ended %v, second %s started %v; want the second to start after the first ended",
			r1.Status, r1.Ended, r2.Status, r2.Started)
	}
	if m := msgs(lines); !slices.Contains(m, "run queued: the playbook is busy and does not run concurrently") || !slices.Contains(m, "run leaves the queue") {
		t.Errorf("queued run's log = %q", m)
	}
}
