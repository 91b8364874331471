package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// planReport is what `felhom-agent plan --json` prints.
type planReport struct {
	Playbook string `json:"playbook"`
	Steps    []struct {
		What    string `json:"what"`
		Method  string `json:"method"`
		Outcome string `json:"outcome"`
	} `json:"steps"`
	Status      string          `json:"status"`
	Error       string          `json:"error"`
	Result      json.RawMessage `json:"result"`
	Changes     []string        `json:"changes"`
	Assumptions []string        `json:"assumptions"`
}

// TestPlan: `plan` of the shipped backup flow against a host (a simulator
// in this process, which counts what it receives) lists the vzdump and the
// retention's deletion in order, predicts success, the new archive and the
// deleted one — and the host received not one request but GETs: no task,
// no archive changed. A plan of a run that would fail exits 1 and says
// why; `plan --sim` plans against the default simulated world.
func TestPlan(t *testing.T) {
	t.Parallel()
	host, srv, _ := inProcSim(t, 50*time.Millisecond, 0, 0)
	before := host.Volumes("usb-backup")
	file := filepath.Join(playbooksDir, "backup.star")
	out := runCmd(t, runTimeout, serverEnv(srv), "--playbooks", playbooksDir, "plan", file, "-p", "vmids=101", "-p", "keep_last=1", "--json")
	var r planReport
	if out.Code != 0 || json.Unmarshal([]byte(out.Stdout), &r) != nil {
		t.Fatalf("plan: exit %d\nstdout: %s\nstderr: %s", out.Code, tail(out.Stdout, 2000), tail(out.Stderr, 2000))
	}
	if len(r.Steps) != 2 || r.Steps[0].What != "vzdump 101 → usb-backup (snapshot, zstd)" || r.Steps[0].Outcome != "OK" ||
		r.Steps[1].What != "delete usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst" || r.Status != "succeeded" {
		t.Errorf("plan: %+v\nwant the vzdump of 101 and the old archive's deletion, succeeded", r)
	}
	changes := strings.Join(r.Changes, "\n")
	if !strings.Contains(changes, "+ usb-backup:backup/vzdump-lxc-101-") || !strings.Contains(changes, "- usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst") {
		t.Errorf("changes:\n%s\nwant the new archive and the deleted one", changes)
	}
	if n := host.MutatingRequests(); n != 0 || host.Requests() == 0 {
		t.Errorf("the host received %d mutating requests of %d; want 0 of some", n, host.Requests())
	}
	if after := host.Volumes("usb-backup"); len(after) != len(before) || len(host.Tasks()) != 0 {
		t.Errorf("the host changed: %d archives (was %d), %d tasks", len(after), len(before), len(host.Tasks()))
	}

	// The human form, and a plan of a run that would fail.
	if err := host.SetGuestLock(101, "backup"); err != nil {
		t.Fatal(err)
	}
	fail := runCmd(t, runTimeout, serverEnv(srv), "--playbooks", playbooksDir, "plan", file, "-p", "vmids=101")
	if fail.Code != 1 || !strings.Contains(fail.Stdout, "1. vzdump 101 → usb-backup (snapshot, zstd)  [") ||
		!strings.Contains(fail.Stdout, "result: FAILED") || !strings.Contains(fail.Stdout, "locked") || !strings.Contains(fail.Stdout, "assumed:") {
		t.Errorf("plan of a backup of a locked guest: exit %d\n%s%s", fail.Code, fail.Stdout, fail.Stderr)
	}
	if n := host.MutatingRequests(); n != 0 {
		t.Errorf("the host received %d mutating requests; want 0", n)
	}

	sim := runCmd(t, runTimeout, nil, "--playbooks", playbooksDir, "plan", "--sim", file, "-p", "vmids=200")
	if sim.Code != 0 || !strings.Contains(sim.Stdout, "1. vzdump 200 → usb-backup (snapshot, zstd)") || !strings.Contains(sim.Stdout, "result: SUCCEEDED") {
		t.Errorf("plan --sim: exit %d\n%s%s", sim.Code, sim.Stdout, sim.Stderr)
	}
}

// TestTriggerPlan: `trigger NAME --plan` asks a serving agent for the plan
// (POST /v1/plan on its socket): the agent mirrors its host through its
// read-only client and answers what a run would do; no run is recorded
// and the host runs no task. A refused parameter is refused as for a run.
func TestTriggerPlan(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t, "--task-duration", "50ms")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "progress.star"), []byte(progressPlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: dir})
	out := runCmd(t, runTimeout, nil, "trigger", "progress", "--plan", "--socket", a.socket)
	if out.Code != 0 || !strings.Contains(out.Stdout, "1. vzdump 200 → usb-backup (snapshot, zstd)") || !strings.Contains(out.Stdout, "result: SUCCEEDED") ||
		!strings.Contains(out.Stdout, "+ usb-backup:backup/vzdump-qemu-200-") {
		t.Errorf("trigger --plan: exit %d\n%s%s", out.Code, out.Stdout, out.Stderr)
	}
	if ts := sim.tasks(t, "vzdump", 200); len(ts) != 0 {
		t.Errorf("the host ran %d vzdump tasks for a plan; want 0", len(ts))
	}
	list := runCmd(t, runTimeout, nil, "runs", "list", "--json", "--socket", a.socket)
	var runs []json.RawMessage
	if list.Code != 0 || json.Unmarshal([]byte(list.Stdout), &runs) != nil || len(runs) != 0 {
		t.Errorf("runs after a plan: exit %d %s; want none recorded", list.Code, list.Stdout)
	}
	bad := runCmd(t, runTimeout, nil, "trigger", "progress", "--plan", "-p", "nope=1", "--socket", a.socket)
	if bad.Code == 0 || !strings.Contains(bad.Stderr, "nope") {
		t.Errorf("trigger --plan with an unknown parameter: exit %d, stderr %q; want it refused naming it", bad.Code, bad.Stderr)
	}
}
