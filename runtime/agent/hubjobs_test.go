package agent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func testSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHubJobs runs signed hub jobs through hubJob, the channel's handler:
// the real verifier and the one start path.
func TestHubJobs(t *testing.T) {
	operator, stranger := testSigner(t), testSigner(t)
	keys := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(keys, []byte(`role="operational" `+string(ssh.MarshalAuthorizedKey(operator.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, map[string]string{
		"wipe.star": agentPlaybook("wipe", "    return ctx.params.vmid", `params = {"vmid": param.int()}`),
	}, func(c *Config) { c.Safety.OperatorKeys, c.Safety.HostID = keys, "cust-1" })

	op := func(host string, expires time.Duration, nonce string) []byte {
		now := time.Now()
		b, err := safety.Op{Op: "wipe", Target: safety.Target{HostID: host, GuestID: 120}, Params: json.RawMessage(`{"vmid": 120}`),
			Nonce: nonce, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(expires)}.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sign := func(blob []byte, s ssh.Signer) []byte {
		sig, err := safety.Sign(blob, s)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	good := op("cust-1", time.Hour, safety.NewNonce())
	goodSig := sign(good, operator)
	tampered := append([]byte(nil), good...)
	tampered = []byte(strings.Replace(string(tampered), `"vmid":120`, `"vmid":121`, 1))
	expired := op("cust-1", -time.Second, safety.NewNonce())
	other := op("cust-2", time.Hour, safety.NewNonce())
	foreign := op("cust-1", time.Hour, safety.NewNonce())

	ctx := t.Context()
	out, err := ta.hubJob(ctx, channel.Job{ID: "job-1", Blob: good, Sig: goodSig})
	if err != nil || out.Outcome != channel.JobAccepted || out.Run == "" || out.Signer == "" {
		t.Fatalf("a valid job: %+v, %v; want accepted with a run", out, err)
	}
	if r, _ := ta.wait(out.Run); r.Status != "succeeded" {
		t.Fatalf("the job's run ended %s", r.Status)
	}
	// The same job again (the DELETE was lost, or after a restart): the
	// same run, nothing new.
	again, err := ta.hubJob(ctx, channel.Job{ID: "job-1", Blob: good, Sig: goodSig})
	if err != nil || again.Outcome != channel.JobAccepted || again.Run != out.Run {
		t.Fatalf("the job fetched twice: %+v, %v; want the same run %s", again, err, out.Run)
	}
	for _, tc := range []struct {
		name, id   string
		blob, sig  []byte
		wantReason string
	}{
		{"replayed under another job id", "job-2", good, goodSig, "replayed"},
		{"forged (blob changed after signing)", "job-3", tampered, goodSig, "does not verify"},
		{"expired", "job-4", expired, sign(expired, operator), "expired"},
		{"wrong target", "job-5", other, sign(other, operator), "not for this target"},
		{"key not allowed (the hub's own)", "job-6", foreign, sign(foreign, stranger), "key not allowed"},
		{"unsigned", "job-7", foreign, nil, "not an armoured SSH signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ta.hubJob(ctx, channel.Job{ID: tc.id, Blob: tc.blob, Sig: tc.sig})
			if err != nil || out.Outcome != channel.JobRefused || !strings.Contains(out.Reason, tc.wantReason) || out.Run != "" {
				t.Fatalf("%+v, %v; want refused with %q", out, err, tc.wantReason)
			}
			if runs, _ := ta.store.RunsByKey(ctx, store.SourceJob, tc.id); len(runs) != 0 {
				t.Errorf("a refused job started %d runs", len(runs))
			}
		})
	}
	// The foreign key's nonce was not used: an operator's signature of
	// the same blob is still accepted.
	if out, err := ta.hubJob(ctx, channel.Job{ID: "job-8", Blob: foreign, Sig: sign(foreign, operator)}); err != nil || out.Outcome != channel.JobAccepted {
		t.Fatalf("a refused signature consumed the nonce: %+v, %v", out, err)
	}
	if runs, _ := ta.store.RunsByKey(ctx, store.SourceJob, "job-1"); len(runs) != 1 {
		t.Errorf("job-1 has %d runs; want 1", len(runs))
	}

	// The report carries the gate's audit of all of it (refusals with
	// their reason) and the pending operations with the blob to sign.
	if err := ta.store.AddPending(ctx, store.PendingOp{ID: "p-1", Run: out.Run, Playbook: "wipe", Guest: 120, What: "delete guest 120",
		Blob: good, Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rep := &channel.Report{Errors: map[string]string{}}
	ta.reportSafety(ctx, 0, rep)
	if len(rep.Pending) != 1 || rep.Pending[0].OpBlobB64 != base64.StdEncoding.EncodeToString(good) || rep.Pending[0].What != "delete guest 120" {
		t.Errorf("pending operations %+v", rep.Pending)
	}
	var refused, allowed int
	for _, e := range rep.Audit {
		var ae safety.AuditEntry
		if err := json.Unmarshal(e.Entry, &ae); err != nil {
			t.Fatal(err)
		}
		switch ae.Decision {
		case safety.Refused:
			refused++
		case safety.AllowedSigned:
			allowed++
		}
	}
	if refused != 6 || allowed != 2 {
		t.Errorf("audit: %d refused, %d allowed by signature; want 6 and 2", refused, allowed)
	}
	// After the cursor, nothing is sent again.
	rep2 := &channel.Report{Errors: map[string]string{}}
	ta.reportSafety(ctx, rep.Audit[len(rep.Audit)-1].Seq, rep2)
	if len(rep2.Audit) != 0 {
		t.Errorf("audit after the cursor: %d entries; want 0", len(rep2.Audit))
	}
}

// TestAcceptSignedSpendsLast: a verified operation that cannot start
// spends no nonce — the agent draining leaves a hub job queued (undecided,
// not cleared), one not valid yet waits, an op no playbook answers is
// refused — and the same signed blob is accepted once it can go on; of
// concurrent acceptances of one blob exactly one starts a run.
func TestAcceptSignedSpendsLast(t *testing.T) {
	operator := testSigner(t)
	keys := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(keys, []byte(`role="operational" `+string(ssh.MarshalAuthorizedKey(operator.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, map[string]string{
		"wipe.star": agentPlaybook("wipe", "    return ctx.params.vmid", `params = {"vmid": param.int()}`),
	}, func(c *Config) { c.Safety.OperatorKeys, c.Safety.HostID = keys, "cust-1" })
	signed := func(name string, issued time.Duration) ([]byte, []byte, string) {
		now, nonce := time.Now(), safety.NewNonce()
		b, err := safety.Op{Op: name, Target: safety.Target{HostID: "cust-1", GuestID: 120}, Params: json.RawMessage(`{"vmid": 120}`),
			Nonce: nonce, IssuedAt: now.Add(issued), ExpiresAt: now.Add(issued + time.Hour)}.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := safety.Sign(b, operator)
		if err != nil {
			t.Fatal(err)
		}
		return b, sig, nonce
	}
	ctx := t.Context()
	spent := func(nonce string) bool { return ta.safe.verifier.Nonces.Seen(nonce) }
	setDraining := func(d bool) {
		ta.mu.Lock()
		ta.draining = d
		ta.mu.Unlock()
	}

	// Draining: undecided (the channel leaves the job queued), nothing spent.
	blob, sig, nonce := signed("wipe", -time.Minute)
	setDraining(true)
	if out, err := ta.hubJob(ctx, channel.Job{ID: "job-d", Blob: blob, Sig: sig}); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("a job while the agent drains: %+v, %v; want undecided (an error) naming the shutdown", out, err)
	}
	setDraining(false)
	if spent(nonce) {
		t.Fatal("a job refused because the agent drains spent its nonce")
	}
	if runs, _ := ta.store.RunsByKey(ctx, store.SourceJob, "job-d"); len(runs) != 0 {
		t.Fatalf("a job refused because the agent drains recorded %d runs", len(runs))
	}
	// The next pass accepts it.
	out, err := ta.hubJob(ctx, channel.Job{ID: "job-d", Blob: blob, Sig: sig})
	if err != nil || out.Outcome != channel.JobAccepted || !spent(nonce) {
		t.Fatalf("the same job after the drain: %+v, %v; want accepted, its nonce spent", out, err)
	}
	ta.wait(out.Run)

	// Not valid yet (issued beyond the skew): waiting, nothing spent; once
	// the clock reaches it, accepted.
	blob, sig, nonce = signed("wipe", 10*time.Minute)
	out, err = ta.hubJob(ctx, channel.Job{ID: "job-f", Blob: blob, Sig: sig})
	if err != nil || out.Outcome != channel.JobWaiting || !strings.Contains(out.Reason, "not yet valid") || spent(nonce) {
		t.Fatalf("a job issued in the future: %+v, %v, spent %v; want waiting, not yet valid, nonce unused", out, err, spent(nonce))
	}
	ta.safe.verifier.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	out, err = ta.hubJob(ctx, channel.Job{ID: "job-f", Blob: blob, Sig: sig})
	ta.safe.verifier.Now = nil
	if err != nil || out.Outcome != channel.JobAccepted {
		t.Fatalf("the future job once valid: %+v, %v; want accepted", out, err)
	}
	ta.wait(out.Run)

	// No playbook answers: refused for good, nothing spent.
	blob, sig, nonce = signed("nosuch", -time.Minute)
	if out, err := ta.hubJob(ctx, channel.Job{ID: "job-u", Blob: blob, Sig: sig}); err != nil || out.Outcome != channel.JobRefused || spent(nonce) {
		t.Fatalf("a job for no playbook: %+v, %v, spent %v; want refused, nonce unused", out, err, spent(nonce))
	}

	// Concurrent acceptances of one blob (under different keys, so that
	// idempotency cannot hide a replay): exactly one starts.
	blob, sig, _ = signed("wipe", -time.Minute)
	const racers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted, replays int
	for i := range racers {
		wg.Go(func() {
			ap, err := ta.AcceptSigned(ctx, store.SourceApproval, fmt.Sprintf("race-%d", i), blob, sig)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && ap.Run != "":
				accepted++
			case errors.Is(err, safety.ErrReplay):
				replays++
			default:
				t.Errorf("AcceptSigned: %+v, %v", ap, err)
			}
		})
	}
	wg.Wait()
	started := 0
	for i := range racers {
		runs, _ := ta.store.RunsByKey(ctx, store.SourceApproval, fmt.Sprintf("race-%d", i))
		started += len(runs)
	}
	if accepted != 1 || replays != racers-1 || started != 1 {
		t.Fatalf("%d accepted, %d replays, %d runs of %d concurrent acceptances; want exactly one", accepted, replays, started, racers)
	}
}

// TestSignatureAcrossRestart: a signed run left queued by a stopped agent
// carries its signature (sealed in the store) into the next process,
// which checks it again — the allow-list in force, the time window, but
// not the nonce its acceptance spent: a valid one lets the destructive
// call through with no second signature; one whose key was removed from
// the allow-list meanwhile, or which expired, no longer covers the run,
// which parks pending with an audit entry saying why.
func TestSignatureAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		expired    bool
		removeKey  bool
		wantStatus runstate.Status
		wantAudit  string
	}{
		{name: "valid", wantStatus: runstate.Succeeded},
		{name: "expired", expired: true, wantStatus: runstate.PendingSignature, wantAudit: "expired"},
		{name: "key removed", removeKey: true, wantStatus: runstate.PendingSignature, wantAudit: "is not in the operator allow-list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New()
			host := newSimHost(t, sim)
			operator := testSigner(t)
			keys := filepath.Join(t.TempDir(), "operators")
			writeKeys := func(s ssh.Signer) {
				if err := os.WriteFile(keys, []byte(`role="operational" `+string(ssh.MarshalAuthorizedKey(s.PublicKey()))), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			writeKeys(operator)
			files := map[string]string{"wipe.star": agentPlaybook("wipe", "    proxmox.delete_guest(vmid = ctx.params.vmid, purge = True)\n    return ctx.params.vmid",
				`params = {"vmid": param.int()}`)}
			state := t.TempDir()
			mod := func(c *Config) {
				c.StateDir, c.Safety.OperatorKeys, c.Safety.HostID = state, keys, "cust-1"
				c.Safety.ScratchVMIDs = nil
				c.ShutdownGrace = -1 // a parked run need not wait out a grace period at the end
			}
			now := time.Now()
			op := safety.Op{Op: "wipe", Target: safety.Target{HostID: "cust-1", GuestID: 201}, Params: json.RawMessage(`{"vmid": 201}`),
				Nonce: safety.NewNonce(), IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}
			if tc.expired {
				op.IssuedAt, op.ExpiresAt = now.Add(-2*time.Hour), now.Add(-time.Hour)
			}
			blob, err := op.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := safety.Sign(blob, operator)
			if err != nil {
				t.Fatal(err)
			}

			// The first process: it seals the signature with its state key;
			// the run is left queued in its store (accepted, never started).
			ta := host.agent(files, mod)
			plain, _ := json.Marshal(carried{Blob: blob, Sig: sig})
			sealed, err := ta.seal(plain)
			if err != nil {
				t.Fatal(err)
			}
			if err := ta.stop(); err != nil {
				t.Fatal(err)
			}
			st := openStore(t, state)
			runs, _, err := st.CreateRuns(t.Context(), store.Trigger{Source: store.SourceJob, Key: "job-1"},
				[]store.NewRun{{Playbook: "wipe", Params: json.RawMessage(`{"vmid":201}`), Signature: sealed}})
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			if bytes.Contains(sealed, sig) || bytes.Contains(sealed, blob) {
				t.Fatal("the stored signature is not sealed")
			}
			if tc.removeKey {
				writeKeys(testSigner(t))
			}

			// The next process requeues it with what it carries.
			ta = host.agent(files, mod)
			id := runs[0].ID
			var r store.Run
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if r, err = ta.store.Get(t.Context(), id); err != nil {
					t.Fatal(err)
				}
				if r.Status == runstate.PendingSignature || r.Status.Terminal() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("run %s is %s", id, r.Status)
				}
			}
			if r.Status != tc.wantStatus {
				t.Fatalf("the requeued signed run: %s (%s); want %s", r.Status, r.Error, tc.wantStatus)
			}
			_, exists := sim.Guest(201)
			if exists == (tc.wantStatus == runstate.Succeeded) {
				t.Errorf("guest 201 exists: %v; want deleted only by a run whose signature still covers it", exists)
			}
			audit, err := ta.store.Audit(t.Context(), 0, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			var decisions []string
			found := tc.wantAudit == ""
			for _, e := range audit {
				var ae safety.AuditEntry
				_ = json.Unmarshal(e.Entry, &ae)
				decisions = append(decisions, string(ae.Decision))
				if tc.wantAudit != "" && ae.Decision == safety.Refused && strings.Contains(ae.Detail, "no longer covers the run") && strings.Contains(ae.Detail, tc.wantAudit) {
					found = true
				}
			}
			if !found {
				t.Errorf("audit of run %s: %v; want a refusal of its carried signature naming %q", id, decisions, tc.wantAudit)
			}
			want := "allowed_signed"
			if tc.wantStatus != runstate.Succeeded {
				want = "pending"
			}
			if !slices.Contains(decisions, want) {
				t.Errorf("gate decisions %v; want %s", decisions, want)
			}
		})
	}
}

// TestApprovalCarried: the approval that lets a parked run's destructive
// call go on is kept with the run (sealed in its record) before the call is
// sent, so that the run carries it after a restart; it is cleared when the
// run ends.
func TestApprovalCarried(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 3 * time.Second
	operator := testSigner(t)
	keys := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(keys, []byte(`role="operational" `+string(ssh.MarshalAuthorizedKey(operator.PublicKey()))), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := newSimHost(t, sim).agent(map[string]string{"wipe.star": agentPlaybook("wipe", "    proxmox.delete_guest(vmid = 201, purge = True)", "")},
		func(c *Config) { c.Safety.OperatorKeys, c.Safety.HostID, c.Safety.ScratchVMIDs = keys, "cust-1", nil })
	ctx := t.Context()
	run := ta.start("wipe", nil)
	var pend []store.PendingOp
	for deadline := time.Now().Add(20 * time.Second); len(pend) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the run did not park")
		}
		pend, _ = ta.store.PendingOps(ctx, true, 0)
	}
	if r, _ := ta.store.Get(ctx, run.ID); r.Signature != nil {
		t.Fatal("a parked run carries a signature before any approval")
	}
	sig, err := safety.Sign(pend[0].Blob, operator)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := ta.AcceptSigned(ctx, store.SourceApproval, "", pend[0].Blob, sig)
	if err != nil || !ap.Resumed || ap.Run != run.ID {
		t.Fatalf("approval: %+v, %v; want the parked run resumed", ap, err)
	}
	var r store.Run
	for deadline := time.Now().Add(20 * time.Second); r.Signature == nil; time.Sleep(5 * time.Millisecond) {
		if r, err = ta.store.Get(ctx, run.ID); err != nil || r.Status.Terminal() || time.Now().After(deadline) {
			t.Fatalf("the approved run (%s, %v) never carried its signature in its record", r.Status, err)
		}
	}
	plain, err := ta.openSealed(r.Signature)
	var c carried
	if err != nil || json.Unmarshal(plain, &c) != nil || !bytes.Equal(c.Blob, pend[0].Blob) || !bytes.Equal(c.Sig, sig) {
		t.Fatalf("the run's sealed signature opens to %q, %v; want the approved blob and signature", plain, err)
	}
	if bytes.Contains(r.Signature, sig) {
		t.Fatal("the run's signature is stored in clear")
	}
	done, _ := ta.wait(run.ID)
	if done.Status != "succeeded" {
		t.Fatalf("the approved run ended %s (%s)", done.Status, done.Error)
	}
	if r, _ := ta.store.Get(ctx, run.ID); r.Signature != nil {
		t.Error("the ended run still carries its signature in the store")
	}
}
