package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

func TestCapLine(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	l := capLine(store.LogLine{Msg: long}, 51)
	if !strings.Contains(l.Msg, "[cut: ") || !strings.HasPrefix(l.Msg, strings.Repeat("é", 25)+" …") {
		t.Errorf("cut message = %q; want 25 runes (a rune boundary) and a marker", l.Msg)
	}
	attrs, _ := json.Marshal(map[string]string{"blob": strings.Repeat("x", 500)})
	l = capLine(store.LogLine{Msg: "m", Attrs: attrs}, 100)
	if !json.Valid(l.Attrs) || !strings.Contains(string(l.Attrs), "attributes of") || l.Msg != "m" {
		t.Errorf("line with huge attributes = %q %s; want the message and a note of valid JSON", l.Msg, l.Attrs)
	}
	if short := capLine(store.LogLine{Msg: "ok"}, 10); short.Msg != "ok" {
		t.Error("a short line was changed")
	}
}

// TestRunLimits: a run logging past its limits has its lines cut and its
// log stopped with a line saying so and one counting the rest; a run
// returning more than the result limit fails with kind limit, nothing
// recorded as its result; list answers carry no results and page.
func TestRunLimits(t *testing.T) {
	ta := startAgent(t, map[string]string{
		"noisy.star": agentPlaybook("noisy", `    for i in range(200):
        log.info("x" * 5000)
    return "small"`, ""),
		"big.star": agentPlaybook("big", `    return "y" * 20000`, ""),
	}, func(c *Config) { c.Limits = RunLimits{LogLine: 1000, Log: 20000, Result: 10000} })

	r, lines := ta.wait(ta.start("noisy", nil).ID)
	if r.Status != "succeeded" {
		t.Fatalf("noisy run = %s %s", r.Status, r.Error)
	}
	var total int
	var sawLimit, sawCount bool
	for _, l := range lines {
		total += len(l.Msg) + len(l.Attrs)
		if len(l.Msg)+len(l.Attrs) > 1000+100 { // the marker comes on top
			t.Errorf("a recorded line is %d bytes; want at most 1000 and a marker", len(l.Msg)+len(l.Attrs))
		}
		sawLimit = sawLimit || l.Msg == "log limit reached: the rest of this run's log is not recorded"
		if l.Msg == "log lines not recorded (runs.log_max_mib)" {
			sawCount = strings.Contains(string(l.Attrs), `"lines":`)
		}
	}
	if total > 20000+2000 || !sawLimit || !sawCount {
		t.Errorf("noisy log: %d bytes in %d lines, limit line %v, count line %v; want ≤ ~20000 bytes with both lines", total, len(lines), sawLimit, sawCount)
	}

	b, _ := ta.wait(ta.start("big", nil).ID)
	if b.Status != "failed" || b.ErrorKind != KindLimit || len(b.Result) != 0 || !strings.Contains(b.Error, "runs.result_max_kib") {
		t.Errorf("big result run = %s [%s] %q result %d bytes; want failed, kind limit, nothing recorded", b.Status, b.ErrorKind, b.Error, len(b.Result))
	}

	for range 3 {
		ta.wait(ta.start("noisy", nil).ID)
	}
	page, err := ta.client.RunsPage(context.Background(), api.ListFilter{Limit: 2})
	if err != nil || len(page.Runs) != 2 || page.Next == "" {
		t.Fatalf("first page = %d runs, next %q, %v; want 2 and a cursor", len(page.Runs), page.Next, err)
	}
	for _, r := range page.Runs {
		if r.Result != nil {
			t.Errorf("list answer carries run %s's result", r.ID)
		}
	}
	seen := map[string]bool{page.Runs[0].ID: true, page.Runs[1].ID: true}
	for page.Next != "" {
		page, err = ta.client.RunsPage(context.Background(), api.ListFilter{Limit: 2, Before: page.Next})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Runs {
			if seen[r.ID] {
				t.Errorf("run %s on two pages", r.ID)
			}
			seen[r.ID] = true
		}
	}
	if len(seen) != 5 {
		t.Errorf("paging saw %d runs; want 5", len(seen))
	}
	if _, err := ta.client.RunsPage(context.Background(), api.ListFilter{Before: "r-nope"}); err == nil {
		t.Error("a list before an unknown run = nil error; want 400")
	}
}
