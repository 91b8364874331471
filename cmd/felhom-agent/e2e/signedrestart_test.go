package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// swipePlaybook stops guest vmid (a task the simulator makes last) and
// deletes it: one run at a time (not concurrent), resumable.
const swipePlaybook = `def run(ctx):
    proxmox.stop(vmid = ctx.params.vmid)
    proxmox.delete_guest(vmid = ctx.params.vmid, purge = True)
    return {"deleted": ctx.params.vmid}

playbook(name = "swipe", params = {"vmid": param.vmid()}, triggers = ["swipe"], resume = True, run = run)
`

// TestSignedRunAcrossRestart: two operator-signed destructive runs
// (felhom-agent sign --op, approve): the first is killed with SIGKILL in
// the middle of its stop task, the second waits queued behind it. The
// next process resumes the first and requeues the second, each carrying
// its signature from the store (checked again, its nonce not spent
// twice): both guests are deleted and both runs succeed with no second
// signature and no pending operation.
func TestSignedRunAcrossRestart(t *testing.T) {
	requireServe(t)
	pbs := servePlaybooks(t)
	if err := os.WriteFile(filepath.Join(pbs, "swipe.star"), []byte(swipePlaybook), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGatedAgent(t, agentOpts{playbooks: pbs}, "--task-duration", "5s")
	sign := func(vmid string) string {
		file := filepath.Join(g.dir, "swipe-"+vmid+".json")
		if r := g.cli(t, "sign", "--op", "swipe", "--host", pvesim.DefaultNode, "--guest", vmid, "-p", "vmid="+vmid, "-f", g.opKey, "--out", file); r.Code != 0 {
			t.Fatalf("felhom-agent sign --op swipe: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
		return file
	}
	approve := func(file string) string {
		r := g.cli(t, "approve", file)
		if r.Code != 0 {
			t.Fatalf("approve: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
		for _, run := range g.runs(t) {
			if run.Playbook == "swipe" && run.Source == "approval" && strings.Contains(r.Stdout, run.ID) {
				return run.ID
			}
		}
		t.Fatalf("approve started no swipe run: %s", r.Stdout)
		return ""
	}
	// Both signed first, then approved back to back: the second queues
	// behind the first, which stops guest 101 for 5 s.
	f101, f102 := sign("101"), sign("102")
	first, second := approve(f101), approve(f102)
	stopping := func(r api.Run) bool {
		for _, tk := range r.Tasks {
			if strings.Contains(tk.UPID, ":vzstop:101:") && tk.Ended == nil {
				return true
			}
		}
		return false
	}
	if r := g.waitRun(t, first, 30*time.Second, "to be stopping guest 101", func(r api.Run) bool { return stopping(r) || r.Ended != nil }); !stopping(r) {
		t.Fatalf("the first signed run is %s with no stop of guest 101 in flight", r.Status)
	}
	if r := g.run(t, second); r.Status != "queued" {
		t.Fatalf("the second signed run is %s; want queued behind the first", r.Status)
	}
	g.kill9(t)
	if !g.sim.guest(t, 101).Exists || !g.sim.guest(t, 102).Exists {
		t.Fatal("a guest was deleted before the kill")
	}

	g.restart(t)
	for _, id := range []string{first, second} {
		r := g.waitRun(t, id, 60*time.Second, "to finish after the restart", finished)
		if r.Status != "succeeded" {
			t.Errorf("signed run %s after the restart: %s (%s) %q; want succeeded with the signature it carried", id, r.Status, r.ErrorKind, r.Error)
		}
		show := g.cli(t, "runs", "show", id)
		if !strings.Contains(show.Stdout, `signature="carried across the restart, checked again"`) || !strings.Contains(show.Stdout, `decision="allowed_signed"`) {
			t.Errorf("runs show %s: want the signature carried across the restart and the deletion allowed by it:\n%s", id, show.Stdout)
		}
	}
	for _, vmid := range []int{101, 102} {
		if g.sim.guest(t, vmid).Exists {
			t.Errorf("guest %d still exists", vmid)
		}
	}
	if ops := g.pendingOps(t, true); len(ops) != 0 {
		t.Errorf("pending operations %+v; want none: no second signature was asked for", ops)
	}
}
