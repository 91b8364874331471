package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/statedir"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// keygenPath is OpenSSH's ssh-keygen, which signs the way an operator does.
const keygenPath = "/usr/bin/ssh-keygen"

// sshKey generates an ed25519 key in dir and returns its private key file
// and its public key line.
func sshKey(t testing.TB, dir, name string) (string, string) {
	t.Helper()
	key := filepath.Join(dir, name)
	if out, err := exec.Command(keygenPath, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -t ed25519: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, strings.TrimSpace(string(pub))
}

// gatedAgent is a serve against a separate simulator (so no simulated
// operator signs anything) whose one allow-listed operator key is
// returned, with nothing declared scratch: guest 101 is a customer's.
type gatedAgent struct {
	*agent
	sim      *simProc
	opKey    string // allow-listed
	stranger string // not allow-listed
	dir      string
}

func startGatedAgent(t *testing.T, o agentOpts, simArgs ...string) *gatedAgent {
	t.Helper()
	if _, err := os.Stat(keygenPath); err != nil {
		skip(t, "the operator signature round trip needs OpenSSH's %s: %v", keygenPath, err)
	}
	dir := t.TempDir()
	opKey, opPub := sshKey(t, dir, "operator")
	stranger, _ := sshKey(t, dir, "stranger")
	keys := filepath.Join(dir, "operator_keys")
	if err := os.WriteFile(keys, []byte(`role="operational" `+opPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, simArgs...)
	var env []string
	for _, e := range sim.env() {
		if e != scratchEnv {
			env = append(env, e)
		}
	}
	o.env = append(append(env, "FELHOM_AGENT_SAFETY_OPERATOR_KEYS="+keys), o.env...)
	if o.playbooks == "" {
		o.playbooks = servePlaybooks(t)
		for _, f := range []string{"provision.star"} {
			src, err := os.ReadFile(filepath.Join(playbooksDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(o.playbooks, f), src, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &gatedAgent{agent: startAgent(t, o), sim: sim, opKey: opKey, stranger: stranger, dir: dir}
}

// cli runs a felhom-agent command against the serving agent's socket.
func (g *gatedAgent) cli(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, 30*time.Second, g.env, append(args, "--socket", g.socket)...)
}

// pendingOps lists the agent's pending operations (felhom-agent pending --json).
func (g *gatedAgent) pendingOps(t testing.TB, all bool) []api.PendingOp {
	t.Helper()
	args := []string{"pending", "--json"}
	if all {
		args = append(args, "--all")
	}
	r := g.cli(t, args...)
	if r.Code != 0 {
		t.Fatalf("felhom-agent pending: exit %d: %s", r.Code, r.Stderr)
	}
	var ops []api.PendingOp
	if err := json.Unmarshal([]byte(r.Stdout), &ops); err != nil {
		t.Fatalf("pending --json: %v: %s", err, r.Stdout)
	}
	return ops
}

// sign signs pending operation id with key (felhom-agent sign -f, which
// runs ssh-keygen -Y sign -n felhom-op-v1) into out.json.
func (g *gatedAgent) sign(t testing.TB, id, key, out string) string {
	t.Helper()
	file := filepath.Join(g.dir, out+".json")
	if r := g.cli(t, "sign", id, "-f", key, "--out", file); r.Code != 0 {
		t.Fatalf("felhom-agent sign: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	return file
}

// assertUntouched checks guest 101 is still the customer's guest "web":
// not restored over, not destroyed (stopping it is benign, so not checked).
func (g *gatedAgent) assertUntouched(t testing.TB, what string) {
	t.Helper()
	guest := g.sim.guest(t, 101)
	if !guest.Exists || guest.Config["hostname"] != "web" {
		t.Fatalf("%s: guest 101 changed: exists %v, hostname %v", what, guest.Exists, guest.Config["hostname"])
	}
	for _, typ := range []string{"vzrestore", "vzdestroy", "qmrestore", "qmdestroy", "vzdump"} {
		if ts := g.sim.tasks(t, typ, 101); len(ts) != 0 {
			t.Fatalf("%s: %d %s tasks on guest 101", what, len(ts), typ)
		}
	}
}

var forceOver101 = map[string]any{"vmid": 101, "hostname": "other", "force": true}

func parked(r api.Run) bool { return r.Status == "pending_signature" || r.Ended != nil }

// TestPendingRoundTrip: with no simulated operator, provision force over
// an existing guest parks in pending_signature with the guest untouched;
// felhom-agent pending shows it; a stranger's signature is refused; the
// allow-listed operator's signature (ssh-keygen -Y sign) resumes the run,
// which completes; the same approval again is refused as a replay.
func TestPendingRoundTrip(t *testing.T) {
	g := startGatedAgent(t, agentOpts{})
	run := g.startRun(t, "provision", forceOver101)
	r := g.waitRun(t, run.ID, 30*time.Second, "parks", parked)
	if r.Status != "pending_signature" {
		t.Fatalf("run %s: status %s (error %q), want pending_signature", run.ID, r.Status, r.Error)
	}
	g.assertUntouched(t, "parked")

	text := g.cli(t, "pending")
	if text.Code != 0 || !strings.Contains(text.Stdout, run.ID) || !strings.Contains(text.Stdout, "felhom-agent sign ") {
		t.Fatalf("felhom-agent pending: exit %d, want run %s and how to sign it:\n%s%s", text.Code, run.ID, text.Stdout, text.Stderr)
	}
	ops := g.pendingOps(t, false)
	if len(ops) != 1 || ops[0].Run != run.ID || ops[0].Guest != 101 || ops[0].State != "open" {
		t.Fatalf("pending operations: %+v, want one open for run %s on guest 101", ops, run.ID)
	}
	id := ops[0].ID

	// A key that is not in safety.operator_keys is refused; nothing moves.
	bad := g.sign(t, id, g.stranger, "stranger")
	if r := g.cli(t, "approve", bad); r.Code == 0 || !strings.Contains(r.Stderr, "is not in the operator allow-list") {
		t.Fatalf("approve signed by a stranger: exit %d, want refused:\n%s%s", r.Code, r.Stdout, r.Stderr)
	} else {
		t.Logf("stranger refused: %s", strings.TrimSpace(r.Stderr))
	}
	if r := g.run(t, run.ID); r.Status != "pending_signature" {
		t.Fatalf("after the stranger's approval: run status %s", r.Status)
	}
	g.assertUntouched(t, "stranger's signature")

	good := g.sign(t, id, g.opKey, "operator")
	ok := g.cli(t, "approve", good)
	if ok.Code != 0 || !strings.Contains(ok.Stdout, "goes on") {
		t.Fatalf("approve by the operator: exit %d:\n%s%s", ok.Code, ok.Stdout, ok.Stderr)
	}
	r = g.waitRun(t, run.ID, 60*time.Second, "finishes", finished)
	if r.Status != "succeeded" {
		t.Fatalf("approved run: status %s, error %q", r.Status, r.Error)
	}
	if h := g.sim.guest(t, 101).Config["hostname"]; h != "other" {
		t.Fatalf("approved run: guest 101 hostname %v, want other", h)
	}

	// The same signed blob again: a replay, refused, and no new run.
	before := len(g.runs(t))
	if r := g.cli(t, "approve", good); r.Code == 0 || !strings.Contains(r.Stderr, "replayed") {
		t.Fatalf("replayed approval: exit %d, want refused as a replay:\n%s%s", r.Code, r.Stdout, r.Stderr)
	} else {
		t.Logf("replay refused: %s", strings.TrimSpace(r.Stderr))
	}
	if after := len(g.runs(t)); after != before {
		t.Fatalf("replayed approval: %d runs, want %d", after, before)
	}
	if ops := g.pendingOps(t, true); len(ops) != 1 || ops[0].State != "approved" {
		t.Fatalf("pending --all after approval: %+v", ops)
	}
}

// wipePlaybook is a playbook that deletes guest vmid (a parameter, so the
// hub may pass any) and, with schedule, fires on that timer.
func wipePlaybook(name string, vmid int, schedule string) string {
	decl := fmt.Sprintf(`playbook(name = %q, params = {"vmid": param.vmid(default = %d)}, triggers = [%q], run = run`, name, vmid, name)
	if schedule != "" {
		decl += fmt.Sprintf(", schedule = %q", schedule)
	}
	return "def run(p):\n    proxmox.delete_guest(vmid = p.params.vmid, purge = True)\n    return {\"deleted\": p.params.vmid}\n\n" + decl + ")\n"
}

// TestEverySourceParks: a run from each source — the local API, a hub
// trigger signed with the hub's key, felhom-agent run against the serving
// agent, and a timer — that calls a destructive builtin parks in
// pending_signature, and nothing is destroyed: the hub's key (or a
// compromised hub) cannot destroy a guest without an operator's signature.
func TestEverySourceParks(t *testing.T) {
	pbs := servePlaybooks(t)
	victims := map[string]int{"wipe_api": 101, "wipe_hub": 102, "wipe_cli": 200, "wipe_timer": 201}
	for name, vmid := range victims {
		schedule := ""
		if name == "wipe_timer" {
			schedule = "@hourly"
		}
		if err := os.WriteFile(filepath.Join(pbs, name+".star"), []byte(wipePlaybook(name, vmid, schedule)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The timer fires at once, deterministically: its last fire is on
	// record two hours ago, so the scheduler's catch-up (systemd's
	// Persistent=) fires it for the tick the agent "missed" as soon as it
	// starts — the production path, with no waiting for a minute boundary.
	state := t.TempDir()
	st, err := store.Open(filepath.Join(state, statedir.StoreFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.TimerMark(t.Context(), "wipe_timer", time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	g := startGatedAgent(t, agentOpts{playbooks: pbs, stateDir: state})

	runs := map[string]string{} // source → run id
	runs["api"] = g.startRun(t, "wipe_api", nil).ID
	// The hub may pass any parameters: here a guest of its choosing.
	code, ans := g.trigger(t, "compromised-1", "wipe_hub", map[string]any{"vmid": 102})
	if code != http.StatusAccepted || len(ans.Runs) != 1 {
		t.Fatalf("hub trigger: HTTP %d %+v", code, ans)
	}
	runs["hub"] = ans.Runs[0].ID
	cli := startProc(t, "run wipe_cli (delegated)", g.env, "--playbooks", pbs, "run", filepath.Join(pbs, "wipe_cli.star"), "--socket", g.socket)
	defer cli.kill9(t)

	bySource := func(source, playbook string) (api.Run, bool) {
		for _, r := range g.runs(t) {
			if r.Source == source && r.Playbook == playbook {
				return r, true
			}
		}
		return api.Run{}, false
	}
	for _, want := range []struct{ source, playbook string }{{"cli", "wipe_cli"}, {"timer", "wipe_timer"}} {
		eventually(t, 30*time.Second, want.source+" run of "+want.playbook, func() (bool, string) {
			r, ok := bySource(want.source, want.playbook)
			if ok {
				runs[want.source] = r.ID
			}
			return ok, fmt.Sprintf("%d runs", len(g.runs(t)))
		})
	}
	for source, id := range runs {
		r := g.waitRun(t, id, 30*time.Second, "parks", parked)
		if r.Status != "pending_signature" {
			t.Errorf("%s run %s (%s): status %s, error %q; want pending_signature", source, id, r.Playbook, r.Status, r.Error)
		}
	}
	ops := g.pendingOps(t, false)
	if len(ops) != len(victims) {
		t.Errorf("%d pending operations, want %d: %+v", len(ops), len(victims), ops)
	}
	for name, vmid := range victims {
		guest := g.sim.guest(t, vmid)
		if !guest.Exists {
			t.Errorf("%s: guest %d is gone", name, vmid)
		}
		for _, typ := range []string{"vzdestroy", "qmdestroy"} {
			if ts := g.sim.tasks(t, typ, vmid); len(ts) != 0 {
				t.Errorf("%s: %d %s tasks on guest %d", name, len(ts), typ, vmid)
			}
		}
	}
}
