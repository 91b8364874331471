package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// operatorPlaybooks are what the operator commands are tried on: a
// trigger two playbooks answer, a playbook with a required parameter and
// a zoned schedule, and one that runs until cancelled.
var operatorPlaybooks = map[string]string{
	"snap.star": `"""Snapshot one guest."""

def run(ctx):
    log.info("snap", vmid = ctx.params.vmid, took = time.parse_duration("21.778160134s"), pct = 29.38232421875)
    return {"vmid": ctx.params.vmid}

playbook(name = "snap", run = run, triggers = ["tagged-backup"], schedule = "TZ=Europe/Budapest 0 3 * * *",
         params = {"vmid": param.int(doc = "the guest to snapshot"), "keep": param.int(default = 3)})
`,
	"tagged.star": `def run(ctx):
    return 1

playbook(name = "tagged", run = run, triggers = ["tagged-backup", "nightly"], params = {"vmid": param.int(default = 0)})
`,
	"spin.star": "def run(ctx):\n    while True:\n        pass\n\nplaybook(name = \"spin\", run = run)\n",
}

func TestTriggerResolvesNames(t *testing.T) {
	sock := serveAgent(t, operatorPlaybooks)
	s := "--socket=" + sock

	out, err := runAgentCLI(t, nil, "trigger", "tagged-backup", s, "-p", "vmid=101", "--follow")
	if err != nil || !strings.Contains(out, "(snap, by trigger tagged-backup)") || !strings.Contains(out, "(tagged, by trigger tagged-backup)") ||
		strings.Count(out, "SUCCEEDED") != 2 {
		t.Errorf("trigger tagged-backup: %v\n%s", err, out)
	}
	if !strings.Contains(out, "took=21.8s") || !strings.Contains(out, "pct=29.4") {
		t.Errorf("trigger --follow does not round durations and fractions:\n%s", out)
	}
	out, err = runAgentCLI(t, nil, "trigger", "spin", s)
	if err != nil || !strings.Contains(out, "(spin, by playbook name; no trigger is called spin)") {
		t.Errorf("trigger spin: %v\n%s", err, out)
	}
	_, err = runAgentCLI(t, nil, "trigger", "tagged-bakup", s)
	if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "did you mean tagged-backup?") ||
		!strings.Contains(err.Error(), "triggers:  nightly, tagged-backup") || !strings.Contains(err.Error(), "playbooks: snap, spin, tagged") {
		t.Errorf("trigger tagged-bakup: %v", err)
	}
	_, err = runAgentCLI(t, nil, "trigger", "snap", s)
	if err == nil || !strings.Contains(err.Error(), "pass -p vmid=N") {
		t.Errorf("trigger snap without vmid: %v; want the flag to pass named", err)
	}
	_, err = runAgentCLI(t, nil, "trigger", "tagged-backup", s)
	if err == nil || !strings.Contains(err.Error(), "parameter vmid of snap is required") || !strings.Contains(err.Error(), "pass -p vmid=N") {
		t.Errorf("trigger tagged-backup without vmid: %v", err)
	}
	// Nothing started by the refused trigger: all or none.
	out, _ = runAgentCLI(t, nil, "runs", s, "--playbook=tagged")
	if n := strings.Count(out, "\n") - 1; n != 1 {
		t.Errorf("tagged has %d runs; want 1 (the refused trigger started none)\n%s", n, out)
	}
}

func TestRunMissingParamNamesFlag(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "snap.star")
	if err := os.WriteFile(f, []byte(operatorPlaybooks["snap.star"]), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	if code := run([]string{"run", "--sim", f}, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "parameter vmid is required (int, no default): pass -p vmid=N") {
		t.Errorf("run without vmid = %d:\n%s", code, stderr.String())
	}
}

func TestPlaybooksShow(t *testing.T) {
	sock := serveAgent(t, operatorPlaybooks)
	s := "--socket=" + sock
	if _, err := runAgentCLI(t, nil, "trigger", "snap", s, "-p", "vmid=7", "--follow"); err != nil {
		t.Fatal(err)
	}
	out, err := runAgentCLI(t, nil, "playbooks", "show", "snap", s, "--utc")
	for _, want := range []string{
		"snap (snap.star)", "Snapshot one guest.", "triggers:  tagged-backup",
		"schedule:  TZ=Europe/Budapest 0 3 * * * (in Europe/Budapest)",
		"vmid  int  required: -p vmid=N  the guest to snapshot", "keep  int  default 3",
		"last run:  r-", "succeeded", " UTC (took ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("playbooks show snap lacks %q: %v\n%s", want, err, out)
		}
	}
	// Five next runs, each at 03:00 in Budapest: 01:00 or 02:00 UTC.
	if n := strings.Count(out, ":00:00 UTC"); n < 5 {
		t.Errorf("playbooks show lists %d next runs; want 5\n%s", n, out)
	}
	out, err = runAgentCLI(t, nil, "playbooks", "show", "snap", s, "--json")
	var d playbookDetail
	if err != nil || json.Unmarshal([]byte(out), &d) != nil || d.Zone != "Europe/Budapest" || len(d.NextRuns) != 5 || d.LastRun == nil {
		t.Errorf("playbooks show --json: %v\n%s", err, out)
	}
	if _, err := runAgentCLI(t, nil, "playbooks", "show", "snapp", s); err == nil || !strings.Contains(err.Error(), "did you mean snap?") {
		t.Errorf("playbooks show snapp: %v", err)
	}
	out, err = runAgentCLI(t, nil, "playbooks", s)
	if err != nil || !strings.Contains(out, "keep,vmid*") || !strings.Contains(out, "PARAMS") {
		t.Errorf("playbooks lists no parameters: %v\n%s", err, out)
	}
}

func TestRunIDPrefixAndDetach(t *testing.T) {
	sock := serveAgent(t, operatorPlaybooks)
	s := "--socket=" + sock
	var ids []string
	for range 2 {
		out, err := runAgentCLI(t, nil, "trigger", "tagged", s, "--follow")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strings.Fields(strings.TrimPrefix(out, "started run "))[0])
	}
	// A unique prefix: the random part's first digits tell them apart
	// unless they happen to agree.
	common := 0
	for common < len(ids[0]) && ids[0][common] == ids[1][common] {
		common++
	}
	out, err := runAgentCLI(t, nil, "runs", "show", ids[1][:common+1], s)
	if err != nil || !strings.Contains(out, "run:       "+ids[1]) {
		t.Errorf("runs show PREFIX: %v\n%s", err, out)
	}
	// Without the "r-".
	out, err = runAgentCLI(t, nil, "runs", "show", strings.TrimPrefix(ids[1][:common+1], "r-"), s)
	if err != nil || !strings.Contains(out, "run:       "+ids[1]) {
		t.Errorf("runs show PREFIX without r-: %v\n%s", err, out)
	}
	_, err = runAgentCLI(t, nil, "runs", "show", ids[0][:common], s)
	if err == nil || !strings.Contains(err.Error(), "is ambiguous") || !strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) {
		t.Errorf("runs show AMBIGUOUS: %v", err)
	}

	// Ctrl-C on follow: detached, exit 0, the run goes on.
	out, err = runAgentCLI(t, nil, "trigger", "spin", s)
	if err != nil {
		t.Fatal(err)
	}
	spin := strings.Fields(strings.TrimPrefix(out, "started run "))[0]
	// The second signal context is follow's (the first, the session's,
	// resolves the prefix); it is interrupted once following has begun.
	old := signalContext
	calls := 0
	signalContext = func() (context.Context, context.CancelFunc) {
		calls++
		ctx, cancel := context.WithCancel(context.Background())
		if calls == 2 {
			time.AfterFunc(200*time.Millisecond, cancel)
		}
		return ctx, cancel
	}
	t.Cleanup(func() { signalContext = old })
	var stderr syncBuffer
	_, err = runAgentCLI(t, &stderr, "runs", "follow", spin[:len(spin)-2], s)
	if err != nil || !strings.Contains(stderr.String(), "detached; run "+spin+" goes on") {
		t.Errorf("runs follow, interrupted: %v (%T); stderr %q", err, err, stderr.String())
	}
	signalContext = old
	out, err = runAgentCLI(t, nil, "runs", "show", spin, s)
	if first, _, _ := strings.Cut(out, "\n"); err != nil || first != "running" {
		t.Errorf("after detaching, the run is %q (%v); want running", first, err)
	}
	if _, err := runAgentCLI(t, nil, "runs", "cancel", spin, s); err != nil {
		t.Error(err)
	}
}

// TestCompletionAsksTheAgent: playbook names, trigger names and run ids
// complete from the agent on the line's --socket.
func TestCompletionAsksTheAgent(t *testing.T) {
	sock := serveAgent(t, operatorPlaybooks)
	out, err := runAgentCLI(t, nil, "trigger", "tagged", "--socket="+sock, "--follow")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Fields(strings.TrimPrefix(out, "started run "))[0]
	for line, want := range map[string]string{
		"felhom-agent trigger --socket=" + sock + " tag":          "tagged-backup",
		"felhom-agent playbooks show --socket=" + sock + " sn":    "snap",
		"felhom-agent runs show --socket " + sock + " " + id[:10]: id,
	} {
		t.Setenv("COMP_LINE", line)
		var stdout syncBuffer
		if code := run(nil, &stdout, &syncBuffer{}); code != exitOK || !strings.Contains(stdout.String(), want) {
			t.Errorf("COMP_LINE=%q = %d %q; want %q", line, code, stdout.String(), want)
		}
	}
}
