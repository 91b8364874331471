package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
)

// TestHubSignedJobs drives serve against hub-sim and sim: operator-signed
// jobs queued at the hub. A forged, an expired and a hub-key-signed job
// (a compromised hub) are refused, cleared and reported, and guest 101 is
// untouched; a job an allow-listed operator signed with ssh-keygen — the
// shipped decommission of guest 101 — runs once and is cleared, and its
// run really destroys the guest (final backup, stop, delete) and
// succeeds; the same blob again (a replay) is refused; a parked run's
// pending operation, with the blob to sign, is in a report.
func TestHubSignedJobs(t *testing.T) {
	requireServe(t)
	const host, key = "e2e-jobs", "e2e-hub-jobs-key-0123456789"
	addSecret("hub api key", key)
	hub := startHubSim(t, "--host", host+"="+key, "--poll", "1")
	dir := servePlaybooks(t)
	if err := os.WriteFile(filepath.Join(dir, "wipe.star"), []byte(wipePlaybook("wipe", 101, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	decommission, err := os.ReadFile(filepath.Join(playbooksDir, "decommission.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "decommission.star"), decommission, 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGatedAgent(t, agentOpts{playbooks: dir, args: []string{"--hub-poll-floor", "1s"},
		env: []string{"FELHOM_AGENT_HUB_URL=" + hub.URL, "FELHOM_AGENT_HUB_HOST_ID=" + host, "FELHOM_AGENT_HUB_API_KEY=" + key,
			"FELHOM_AGENT_HUB_FINGERPRINT=" + hub.Fingerprint}})

	blob := func(target string, issued, expires time.Duration) []byte {
		now := time.Now()
		// The run's parameters as it records them (defaults included): what
		// the gate compares a signature with.
		b, err := safety.Op{Op: "decommission", Target: safety.Target{HostID: target, GuestID: 101},
			Params: json.RawMessage(`{"vmid": 101, "storage": "usb-backup", "remove_archives": false}`),
			Nonce:  safety.NewNonce(), IssuedAt: now.Add(issued), ExpiresAt: now.Add(expires)}.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sign := func(b []byte, keyFile string) string {
		f := filepath.Join(g.dir, fmt.Sprintf("op-%d", time.Now().UnixNano()))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(keygenPath, "-Y", "sign", "-n", safety.Namespace, "-f", keyFile, f).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
		}
		sig, err := os.ReadFile(f + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		return string(sig)
	}
	enqueue := func(b []byte, sig string) string {
		status, out := hub.admin(t, "POST", "/api/v1/admin/hosts/"+host+"/jobs",
			map[string]string{"op_blob_b64": base64.StdEncoding.EncodeToString(b), "sig_armored": sig})
		var r struct {
			ID string `json:"job_id"`
		}
		if status != 201 || json.Unmarshal(out, &r) != nil {
			t.Fatalf("enqueue: %d %s", status, out)
		}
		return r.ID
	}
	type outcome struct {
		JobID, Outcome, Run, Reason string
	}
	outcomes := func() map[string]outcome {
		_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/reports", nil)
		var reps []struct {
			Body struct {
				Jobs []struct {
					JobID   string `json:"job_id"`
					Outcome string `json:"outcome"`
					Run     string `json:"run"`
					Reason  string `json:"reason"`
				} `json:"jobs"`
			} `json:"body"`
		}
		if err := json.Unmarshal(b, &reps); err != nil {
			t.Fatalf("reports: %v", err)
		}
		m := map[string]outcome{}
		for _, r := range reps {
			for _, j := range r.Body.Jobs {
				if j.Outcome == "waiting" { // listed in every report while it waits
					m[j.JobID] = outcome{j.JobID, j.Outcome, j.Run, j.Reason}
					continue
				}
				if o, dup := m[j.JobID]; dup && o.Outcome != "waiting" {
					t.Errorf("job %s reported twice", j.JobID)
				}
				m[j.JobID] = outcome{j.JobID, j.Outcome, j.Run, j.Reason}
			}
		}
		return m
	}
	waitOutcomes := func(ids ...string) map[string]outcome {
		var m map[string]outcome
		eventually(t, 20*time.Second, "the jobs' outcomes in a report", func() (bool, string) {
			m = outcomes()
			for _, id := range ids {
				if _, ok := m[id]; !ok {
					return false, "no outcome of " + id
				}
			}
			return true, ""
		})
		return m
	}

	good := blob(host, -time.Minute, time.Hour)
	goodSig := sign(good, g.opKey)
	forged := []byte(strings.Replace(string(good), `"vmid":101`, `"vmid":102`, 1))
	expired := blob(host, -2*time.Hour, -time.Hour)
	hubs := blob(host, -time.Minute, time.Hour)
	refused := map[string]string{
		enqueue(forged, goodSig):                 "does not verify",
		enqueue(expired, sign(expired, g.opKey)): "expired",
		enqueue(hubs, sign(hubs, g.stranger)):    "key not allowed",
	}
	var ids []string
	for id := range refused {
		ids = append(ids, id)
	}
	m := waitOutcomes(ids...)
	for id, want := range refused {
		if o := m[id]; o.Outcome != "refused" || !strings.Contains(o.Reason, want) || o.Run != "" {
			t.Errorf("job %s: %+v; want refused, %q", id, o, want)
		}
	}
	g.assertUntouched(t, "after the refused jobs")

	// The operator's job runs once, even though it is queued twice.
	ok := enqueue(good, goodSig)
	m = waitOutcomes(ok)
	if o := m[ok]; o.Outcome != "accepted" || o.Run == "" {
		t.Fatalf("the operator's job: %+v; want accepted with a run", o)
	}
	// Its run passes the gate on the operator's signature and destroys
	// guest 101: a final backup, the guest stopped, then deleted.
	run := g.waitRun(t, m[ok].Run, 60*time.Second, "to finish", finished)
	if run.Status != "succeeded" {
		t.Fatalf("the operator's job's run: %s (%s) %q; want succeeded", run.Status, run.ErrorKind, run.Error)
	}
	if guest := g.sim.guest(t, 101); guest.Exists {
		t.Fatalf("guest 101 still exists after the signed decommission")
	}
	for _, typ := range []string{"vzdump", "vzstop", "vzdestroy"} {
		if n := len(g.sim.tasks(t, typ, 101)); n != 1 {
			t.Errorf("%d %s tasks on guest 101; want 1", n, typ)
		}
	}
	if r := g.cli(t, "runs", "show", m[ok].Run); !strings.Contains(r.Stdout, `decision="allowed_signed"`) || !strings.Contains(r.Stdout, "source:    job ("+ok+")") {
		t.Errorf("runs show %s: want the deletion allowed by the signature, source the job:\n%s", m[ok].Run, r.Stdout)
	}
	replay := enqueue(good, goodSig)
	m = waitOutcomes(replay)
	if o := m[replay]; o.Outcome != "refused" || !strings.Contains(o.Reason, "replayed") {
		t.Errorf("the replayed job: %+v; want refused as replayed", o)
	}
	if r := g.cli(t, "runs", "list", "--json"); strings.Count(r.Stdout, `"source":"job"`)+strings.Count(r.Stdout, `"source": "job"`) != 1 {
		t.Errorf("runs with source job: want exactly 1 (the replay started none): %s", r.Stdout)
	}
	_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/jobs/cleared", nil)
	for _, id := range append(ids, ok, replay) {
		if !strings.Contains(string(b), `"`+id+`"`) {
			t.Errorf("job %s not cleared at the hub: %s", id, b)
		}
	}

	// A job issued beyond the clock skew in the future waits: reported as
	// waiting with its reason, not cleared, its nonce unused.
	future := blob(host, 10*time.Minute, time.Hour)
	waiting := enqueue(future, sign(future, g.opKey))
	m = waitOutcomes(waiting)
	if o := m[waiting]; o.Outcome != "waiting" || !strings.Contains(o.Reason, "not yet valid") || o.Run != "" {
		t.Errorf("the job issued in the future: %+v; want waiting, not yet valid", o)
	}
	_, b = hub.admin(t, "GET", "/sim/hosts/"+host+"/jobs/cleared", nil)
	if strings.Contains(string(b), `"`+waiting+`"`) {
		t.Errorf("the waiting job %s was cleared at the hub: %s", waiting, b)
	}

	// The channel's counters on /metrics: 4 refused, 1 accepted, reports.
	metrics := g.metrics(t)
	for _, want := range []string{`felhom_hub_jobs_total{outcome="refused"} 4`, `felhom_hub_jobs_total{outcome="accepted"} 1`,
		`felhom_hub_reports_total{result="accepted"} `, `felhom_hub_last_report_timestamp_seconds 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `felhom_hub_reports_total{result="accepted"} 0`) {
		t.Error("/metrics counts no accepted report")
	}

	// A run parked at a destructive call: its pending operation, with the
	// blob to sign, is in the next report.
	parkedRun := g.startRun(t, "wipe", map[string]any{"vmid": 102}).ID
	eventually(t, 20*time.Second, "the parked run's pending operation in a report", func() (bool, string) {
		_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/reports", nil)
		var reps []struct {
			Body struct {
				Pending []struct {
					Run, Playbook string
					OpBlobB64     string `json:"op_blob_b64"`
				} `json:"pending_operations"`
			} `json:"body"`
		}
		if err := json.Unmarshal(b, &reps); err != nil || len(reps) == 0 {
			return false, fmt.Sprint(err)
		}
		for _, p := range reps[len(reps)-1].Body.Pending {
			blob, err := base64.StdEncoding.DecodeString(p.OpBlobB64)
			if p.Run == parkedRun && p.Playbook == "wipe" && err == nil && strings.Contains(string(blob), `"host_id":"`+host+`"`) {
				return true, ""
			}
		}
		return false, "not yet"
	})
}
