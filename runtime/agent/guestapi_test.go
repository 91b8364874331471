package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/hubsim"
)

// shippedPlaybooks reads the named shipped playbooks and their lib/.
func shippedPlaybooks(t *testing.T, names ...string) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..", "playbooks")
	files := map[string]string{}
	libs, _ := filepath.Glob(filepath.Join(root, "lib", "*.star"))
	for _, n := range names {
		libs = append(libs, filepath.Join(root, n))
	}
	for _, p := range libs {
		if strings.HasSuffix(p, "_test.star") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		files[rel] = string(b)
	}
	return files
}

// guestClient is a controller's pinned HTTPS client with one token.
type guestClient struct {
	t     *testing.T
	base  string
	token string
	hc    *http.Client
}

func newGuestClient(t *testing.T, endpoint, fingerprint, token string) *guestClient {
	want, err := proxmox.ParseFingerprint(fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, // the pin below is the trust anchor
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			if sum := sha256.Sum256(raw[0]); !bytes.Equal(sum[:], want) {
				return errors.New("certificate pin mismatch")
			}
			return nil
		}}}
	t.Cleanup(tr.CloseIdleConnections)
	return &guestClient{t: t, base: "https://" + endpoint, token: token, hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

type envelope struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data"`
	Error string          `json:"error"`
}

func (c *guestClient) do(method, path, body string, out any) (int, envelope) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		c.t.Fatalf("%s %s: %d %q is not the envelope", method, path, resp.StatusCode, b)
	}
	if out != nil && env.OK {
		if err := json.Unmarshal(env.Data, out); err != nil {
			c.t.Fatal(err)
		}
	}
	return resp.StatusCode, env
}

// follow polls a backup job until it ends, returning the phases seen.
func (c *guestClient) follow(job string) ([]string, guestapi.BackupStatus) {
	c.t.Helper()
	var seen []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var st guestapi.BackupStatus
		if code, env := c.do("GET", "/backup/status?job_id="+job, "", &st); code != 200 {
			c.t.Fatalf("status of %s: %d %s", job, code, env.Error)
		}
		if len(seen) == 0 || seen[len(seen)-1] != st.Phase {
			seen = append(seen, st.Phase)
		}
		if st.Phase == guestapi.PhaseDone || st.Phase == guestapi.PhaseFailed {
			return seen, st
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("job %s did not end; phases %v", job, seen)
	return nil, guestapi.BackupStatus{}
}

// startGuestAgent serves an agent with the guest API on sim, on the
// shipped backup and guest_reboot playbooks.
func startGuestAgent(t *testing.T, sim *pvesim.Sim) (*testAgent, *proxmox.Client) {
	host := newSimHost(t, sim)
	ta := host.agent(shippedPlaybooks(t, "backup.star", "guest_reboot.star"),
		host.guestAPI(func(g *GuestAPIConfig) { g.Limits = guestapi.Options{Rate: 1000, Burst: 1000} })) // the tests poll fast
	return ta, host.client
}

// attachRecorder attaches through the simulator's root tools, as the
// fenced operation would.
type attachRecorder struct{ sim *pvesim.Sim }

func (r attachRecorder) AttachReadOnly(ctx context.Context, vmid, slot int, dir, path string) error {
	_, err := r.sim.RootRunner().Run(ctx, []string{"pct", "set", fmt.Sprint(vmid), fmt.Sprintf("--mp%d", slot), dir + ",mp=" + path + ",ro=1,shared=1"})
	return err
}

func TestGuestAPITokensAndIdentity(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 200 * time.Millisecond
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()

	tok101, err := ta.MintGuestToken(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	tok102, err := ta.MintGuestToken(ctx, 102)
	if err != nil {
		t.Fatal(err)
	}
	if !tok101.Attached || tok101.Mount != "mp255" {
		t.Errorf("101's delivery = %+v; want attached as mp255", tok101)
	}
	if g, _ := sim.Guest(101); g.Config["mp255"] != filepath.Join(ta.state, "guests", "101")+",mp=/etc/felhom-bootstrap,ro=1,shared=1" {
		t.Errorf("101's mp255 = %q", g.Config["mp255"])
	}
	if _, err := ta.MintGuestToken(ctx, 200); !errors.Is(err, guestapi.ErrNotServed) || !strings.Contains(err.Error(), "QEMU VM") {
		t.Errorf("a VM's token: %v; want refused, naming the VM", err)
	}
	if _, err := ta.MintGuestToken(ctx, 555); !errors.Is(err, guestapi.ErrNotFound) {
		t.Errorf("a missing guest's token: %v", err)
	}
	// The bootstrap file: the agent's own (0600 in a 0700 directory), and
	// readable by the unprivileged container's root (host uid 100000)
	// alone besides, through a POSIX ACL (stat's group bits show its mask).
	for _, c := range []struct {
		path string
		mode os.FileMode
		acl  string
	}{
		{tok101.Bootstrap, 0o640, "0x1::6 0x2:100000:4 0x4::0 0x10::4 0x20::0"},
		{filepath.Dir(tok101.Bootstrap), 0o750, "0x1::7 0x2:100000:5 0x4::0 0x10::5 0x20::0"},
	} {
		fi, err := os.Stat(c.path)
		if err != nil || fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v, %v; want %v (owner only, the mask for the container's root)", c.path, fi.Mode().Perm(), err, c.mode)
		}
		if acl, err := aclOf(c.path); err != nil || acl != c.acl {
			t.Errorf("%s: ACL %q, %v; want %q", c.path, acl, err, c.acl)
		}
	}
	var boot guestapi.Bootstrap
	b, _ := os.ReadFile(tok101.Bootstrap)
	if err := json.Unmarshal(b, &boot); err != nil || boot.Schema != guestapi.BootstrapSchema || boot.VMID != 101 ||
		boot.LocalAPI.Token != tok101.Token || boot.LocalAPI.Fingerprint != ta.GuestAPIFingerprint() ||
		boot.LocalAPI.Endpoint != ta.GuestAPIAddrs()[0].String() {
		t.Fatalf("bootstrap = %+v, %v", boot, err)
	}
	// The store keeps no token.
	db, _ := os.ReadFile(filepath.Join(ta.state, StoreFile))
	wal, _ := os.ReadFile(filepath.Join(ta.state, StoreFile+"-wal"))
	if bytes.Contains(append(db, wal...), []byte(tok101.Token)) {
		t.Error("the run store holds a token")
	}

	ep, fp := boot.LocalAPI.Endpoint, boot.LocalAPI.Fingerprint
	g101, g102 := newGuestClient(t, ep, fp, tok101.Token), newGuestClient(t, ep, fp, tok102.Token)
	var st guestapi.Storage
	if code, env := g101.do("GET", "/storage", "", &st); code != 200 || st.VMID != 101 || st.Mounts[0].Key != "rootfs" {
		t.Fatalf("101 /storage = %d %+v %s", code, st, env.Error)
	}
	for _, m := range st.Mounts {
		if m.Key == "mp255" && (m.Storage != "" || !m.ReadOnly || m.MountPoint != "/etc/felhom-bootstrap") {
			t.Errorf("the bootstrap mount = %+v; want no storage, read-only", m)
		}
	}
	if raw, _ := json.Marshal(st); bytes.Contains(raw, []byte(ta.state)) {
		t.Errorf("/storage shows a host path: %s", raw)
	}
	var gs guestapi.GuestStatus
	if code, _ := g102.do("GET", "/status", "", &gs); code != 200 || gs.VMID != 102 || gs.Type != "lxc" {
		t.Errorf("102 /status = %d %+v", code, gs)
	}
	var h guestapi.Health
	if code, env := g102.do("GET", "/health", "", &h); code != 200 || h.Node == nil || len(h.Storage) == 0 {
		t.Errorf("/health = %d %+v %s", code, h, env.Error)
	}
	if code, _ := newGuestClient(t, ep, fp, "").do("GET", "/storage", "", nil); code != 401 {
		t.Errorf("no token: %d; want 401", code)
	}
	// A wrong pin fails the handshake.
	bad := newGuestClient(t, ep, strings.Repeat("AB:", 31)+"AB", tok101.Token)
	if _, err := bad.hc.Get(bad.base + "/storage"); err == nil || !strings.Contains(err.Error(), "pin mismatch") {
		t.Errorf("a wrong pin: %v", err)
	}

	// Rotation: the old token stops answering at once, the new one works.
	rot, err := ta.MintGuestToken(ctx, 101)
	if err != nil || rot.Token == tok101.Token || !rot.Attached || rot.Mount != "" {
		t.Fatalf("rotation = %+v, %v; want a new token, already attached", rot, err)
	}
	if code, _ := g101.do("GET", "/storage", "", nil); code != 401 {
		t.Errorf("the rotated-out token: %d; want 401", code)
	}
	if acl, _ := aclOf(rot.Bootstrap); acl != "0x1::6 0x2:100000:4 0x4::0 0x10::4 0x20::0" {
		t.Errorf("the rewritten file's ACL %q; want the container's root's read access kept", acl)
	}
	if code, _ := newGuestClient(t, ep, fp, rot.Token).do("GET", "/storage", "", nil); code != 200 {
		t.Errorf("the new token: %d", code)
	}
	// Through the local API (felhom-agent guest-token rotate).
	lt, err := ta.client.MintGuestToken(ctx, 102)
	if err != nil || lt.Token == "" || lt.Token == tok102.Token || !lt.Attached {
		t.Errorf("local API rotation = %+v, %v", lt, err)
	}
	var ae *api.Error
	if _, err := ta.client.MintGuestToken(ctx, 200); !errors.As(err, &ae) || ae.Status != 400 || ae.Field != "vmid" || !strings.Contains(err.Error(), "QEMU VM") {
		t.Errorf("local API rotation of a VM: %v", err)
	}
}

func TestGuestAPIQuiesceHandshake(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 400 * time.Millisecond
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()
	t101, err := ta.MintGuestToken(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	t102, _ := ta.MintGuestToken(ctx, 102)
	ep, fp := ta.GuestAPIAddrs()[0].String(), ta.GuestAPIFingerprint()
	g101, g102 := newGuestClient(t, ep, fp, t101.Token), newGuestClient(t, ep, fp, t102.Token)

	var due guestapi.Due
	if code, _ := g101.do("GET", "/backup/due", "", &due); code != 200 || !due.Due || due.Schedule != "0 3 * * *" || due.NextRun == nil {
		t.Fatalf("due before any backup = %d %+v", code, due)
	}
	var idle guestapi.BackupStatus
	if g101.do("GET", "/backup/status", "", &idle); idle.Phase != guestapi.PhaseIdle {
		t.Errorf("status before any backup = %+v; want idle", idle)
	}
	var job guestapi.BackupStatus
	if code, env := g101.do("POST", "/backup", `{"request_id":"quiesce-1"}`, &job); code != 200 || job.JobID == "" || job.VMID != 101 {
		t.Fatalf("POST /backup = %d %+v %s", code, job, env.Error)
	}
	// The same request id again: the same job, nothing new started.
	var again guestapi.BackupStatus
	if g101.do("POST", "/backup", `{"request_id":"quiesce-1"}`, &again); again.JobID != job.JobID {
		t.Errorf("a repeated request id started %s; want %s", again.JobID, job.JobID)
	}
	// Another guest cannot follow it, nor reuse its request id.
	if code, _ := g102.do("GET", "/backup/status?job_id="+job.JobID, "", nil); code != 403 {
		t.Errorf("102 following 101's job: %d; want 403", code)
	}
	if code, _ := g102.do("POST", "/backup", `{"request_id":"quiesce-1"}`, nil); code != 403 {
		t.Errorf("102 reusing 101's request id: %d; want 403", code)
	}
	if code, env := g101.do("POST", "/backup", `{"params":{"storage":"local"}}`, nil); code != 400 || !strings.Contains(env.Error, "params.storage: is not settable by a guest (settable: mode)") {
		t.Errorf("a guest setting the storage: %d %s; want 400", code, env.Error)
	}
	if code, env := g101.do("POST", "/backup", `{"params":{"vmids":[102]}}`, nil); code != 400 || !strings.Contains(env.Error, "params.vmids") {
		t.Errorf("a guest naming other vmids: %d %s; want 400", code, env.Error)
	}
	seen, end := g101.follow(job.JobID)
	if end.Phase != guestapi.PhaseDone || !strings.Contains(end.Archive, "vzdump-lxc-101-") || end.Snapshotted == nil {
		t.Fatalf("job ended %+v", end)
	}
	if i := indexOf(seen, guestapi.PhaseSnapshotted); i < 0 || indexOf(seen, guestapi.PhaseDone) < i {
		t.Errorf("phases %v; want snapshotted before done", seen)
	}
	// A controller that restarted asks without a job id: the latest job.
	var latest guestapi.BackupStatus
	if g101.do("GET", "/backup/status", "", &latest); latest.JobID != job.JobID || latest.Phase != guestapi.PhaseDone {
		t.Errorf("latest = %+v", latest)
	}
	if g101.do("GET", "/backup/due", "", &due); due.Due || due.LastBackup == nil {
		t.Errorf("due after the backup = %+v; want not due", due)
	}
	// 102 has its own state.
	if g102.do("GET", "/backup/due", "", &due); !due.Due {
		t.Errorf("102 due = %+v", due)
	}
	var rt guestapi.RestoreTest
	if code, _ := g101.do("GET", "/restore-test/status", "", &rt); code != 200 || rt.Tested {
		t.Errorf("restore test = %d %+v", code, rt)
	}
	var rb guestapi.Job
	if code, env := g102.do("POST", "/guest/reboot", `{}`, &rb); code != 200 || rb.VMID != 102 || rb.JobID == "" {
		t.Errorf("reboot = %d %+v %s", code, rb, env.Error)
	}
	if r, _ := ta.wait(rb.JobID); r.Status != "succeeded" {
		t.Errorf("reboot run = %s %s", r.Status, r.Error)
	}
}

// A guest's backup waits only behind work on its own guest: the nightly
// backup of every guest, running, does not queue it.
func TestGuestBackupNotQueuedBehindHostBackup(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 300 * time.Millisecond
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()
	tok, err := ta.MintGuestToken(ctx, 102)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ta.client.Trigger(ctx, api.TriggerRequest{Playbook: "backup"})
	if err != nil {
		t.Fatal(err)
	}
	g := newGuestClient(t, ta.GuestAPIAddrs()[0].String(), ta.GuestAPIFingerprint(), tok.Token)
	var job guestapi.BackupStatus
	if code, env := g.do("POST", "/backup", `{"request_id":"r1"}`, &job); code != 200 {
		t.Fatalf("POST /backup = %d %s", code, env.Error)
	}
	_, end := g.follow(job.JobID)
	if end.Phase != guestapi.PhaseDone {
		t.Fatalf("guest job = %+v", end)
	}
	hr, err := ta.client.Run(ctx, host.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The host's run backs up six guests one after another; the guest's
	// waited at most for the one vzdump in flight (PVE's node-wide lock),
	// so it ended first.
	if hr.Ended != nil && !hr.Ended.After(*end.Ended) {
		t.Errorf("the host backup ended at %v, before the guest's own (%v): the guest's waited behind it", hr.Ended, end.Ended)
	}
	if hr.QueuePosition != 0 {
		t.Errorf("host run queue position %d", hr.QueuePosition)
	}
	if r, _ := ta.wait(host.ID); r.Status != "succeeded" {
		t.Errorf("the host backup = %s %s", r.Status, r.Error)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// Provisioning a container delivers its bootstrap file: a token that
// answers for the new guest, attached read-only; the run record shows
// where the file went and never the token.
func TestProvisionDeliversBootstrap(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 20 * time.Millisecond
	host := newSimHost(t, sim)
	ta := host.agent(shippedPlaybooks(t, "provision.star"), host.guestAPI())
	run, err := ta.client.Trigger(context.Background(), api.TriggerRequest{Playbook: "provision",
		Params: map[string]json.RawMessage{"vmid": json.RawMessage(`130`), "hostname": json.RawMessage(`"cust130"`)}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ta.wait(run.ID)
	if r.Status != "succeeded" {
		t.Fatalf("provision = %s %s", r.Status, r.Error)
	}
	var res struct {
		Bootstrap string `json:"bootstrap"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Bootstrap != filepath.Join(ta.state, "guests", "130", "bootstrap.json") {
		t.Fatalf("result %s; want the bootstrap file's path", r.Result)
	}
	var boot guestapi.Bootstrap
	b, _ := os.ReadFile(res.Bootstrap)
	if err := json.Unmarshal(b, &boot); err != nil || boot.VMID != 130 || !strings.HasPrefix(boot.LocalAPI.Token, guestapi.TokenPrefix) {
		t.Fatalf("bootstrap %s: %v", b, err)
	}
	if bytes.Contains(r.Result, []byte(boot.LocalAPI.Token)) {
		t.Error("the run's result holds the token")
	}
	lines, _ := ta.store.Logs(context.Background(), run.ID, 0, 0)
	for _, l := range lines {
		if strings.Contains(l.Msg+string(l.Attrs), boot.LocalAPI.Token) {
			t.Error("the run's log holds the token")
		}
	}
	if g, _ := sim.Guest(130); !strings.HasSuffix(g.Config["mp255"], ",mp=/etc/felhom-bootstrap,ro=1,shared=1") {
		t.Errorf("guest 130's mp255 = %q; want the bootstrap attached read-only", g.Config["mp255"])
	}
	var st guestapi.GuestStatus
	c := newGuestClient(t, boot.LocalAPI.Endpoint, boot.LocalAPI.Fingerprint, boot.LocalAPI.Token)
	if code, env := c.do("GET", "/status", "", &st); code != 200 || st.VMID != 130 {
		t.Errorf("the new guest's /status = %d %+v %s", code, st, env.Error)
	}
}

// A guest the hub's desired state names a customer and a retrieval
// password for gets both in its bootstrap file — what a Felhom controller
// needs to pull its configuration (felhom.bootstrap/v2) — while the
// password stays out of what playbooks read, the logs and the run store
// (the persisted desired state is sealed with the state key).
func TestBootstrapCustomerFromDesiredState(t *testing.T) {
	const password = "pw-9c1f-do-not-print"
	hsim := hubsim.New()
	hsim.AddHost("host-a", "host-key-a")
	srv, err := hsim.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if _, err := hsim.SetDesired("host-a", json.RawMessage(`{"schema": 1, "guests": [
		{"vmid": 101, "hostname": "ct101", "customer_id": "cust-42", "retrieval_password": "`+password+`"}]}`)); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	sim := pvesim.New()
	host := newSimHost(t, sim)
	ta := host.agent(shippedPlaybooks(t, "backup.star"), host.guestAPI(func(g *GuestAPIConfig) { g.HubURL = srv.URL }), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Hub = &HubConfig{Client: channel.Config{URL: srv.URL, HostID: "host-a", APIKey: "host-key-a",
			TLS: proxmox.TLSTrust{Fingerprint: srv.Fingerprint}}}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if gen, _ := ta.DesiredState(); gen > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never accepted the desired state")
		}
	}
	_, pj := ta.DesiredState()
	if bytes.Contains(pj, []byte(password)) || !bytes.Contains(pj, []byte("cust-42")) {
		t.Errorf("hub.desired_state() reads %s; want the customer and never the password", pj)
	}
	for vmid, want := range map[int]*guestapi.BootstrapCustomer{101: {ID: "cust-42"}, 102: nil} {
		tok, err := ta.MintGuestToken(context.Background(), vmid)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(tok.Bootstrap)
		var boot guestapi.Bootstrap
		if err := json.Unmarshal(b, &boot); err != nil {
			t.Fatal(err)
		}
		if boot.Schema != "felhom.bootstrap/v2" || boot.Hub == nil || boot.Hub.URL != srv.URL {
			t.Errorf("guest %d bootstrap %s; want schema v2 and the hub's url", vmid, b)
		}
		switch {
		case want == nil && (boot.Customer != nil || boot.Hub.RetrievalPassword != ""):
			t.Errorf("guest %d, not in the desired state, got a customer: %s", vmid, b)
		case want != nil && (boot.Customer == nil || *boot.Customer != *want || boot.Hub.RetrievalPassword != password):
			t.Errorf("guest %d bootstrap %s; want customer %s and its retrieval password", vmid, b, want.ID)
		}
	}
	if strings.Contains(logs.String(), password) {
		t.Error("the log holds the retrieval password")
	}
	if raw, ok, err := ta.store.HubState(context.Background(), "channel"); err != nil || !ok {
		t.Fatalf("hub state: %v %v", ok, err)
	} else if bytes.Contains(raw, []byte(password)) || bytes.Contains(raw, []byte("cust-42")) {
		t.Error("the run store holds the desired state in clear")
	}
}

// An unprivileged container with a custom lxc.idmap: the ACL goes to the
// host uid its root is mapped to (read from the config's lxc array, as
// pve-container's parse_id_maps does); a privileged container needs none;
// a mapping PVE could not parse is refused before any file is written.
func TestBootstrapReaderFromIDMap(t *testing.T) {
	sim := pvesim.New()
	for _, sp := range []pvesim.GuestSpec{
		{VMID: 140, LXC: [][2]string{{"lxc.idmap", "u 0 200000 1000"}, {"lxc.idmap", "g 0 200000 1000"},
			{"lxc.idmap", "u 1000 1000 1"}, {"lxc.idmap", "g 1000 1000 1"}, {"lxc.idmap", "u 1001 201001 64535"}, {"lxc.idmap", "g 1001 201001 64535"}}},
		{VMID: 141, Privileged: true},
		{VMID: 142, LXC: [][2]string{{"lxc.idmap", "u 0 200000"}}},
	} {
		if err := sim.AddGuest(sp); err != nil {
			t.Fatal(err)
		}
	}
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()
	tok, err := ta.MintGuestToken(ctx, 140)
	if err != nil {
		t.Fatal(err)
	}
	if acl, err := aclOf(tok.Bootstrap); err != nil || acl != "0x1::6 0x2:200000:4 0x4::0 0x10::4 0x20::0" {
		t.Errorf("140's bootstrap ACL %q, %v; want read for host uid 200000 (its root by lxc.idmap)", acl, err)
	}
	if acl, err := aclOf(filepath.Dir(tok.Bootstrap)); err != nil || acl != "0x1::7 0x2:200000:5 0x4::0 0x10::5 0x20::0" {
		t.Errorf("140's directory ACL %q, %v", acl, err)
	}
	tok, err = ta.MintGuestToken(ctx, 141)
	if err != nil {
		t.Fatal(err)
	}
	if acl, _ := aclOf(tok.Bootstrap); acl != "" {
		t.Errorf("a privileged container's file has ACL %q; host root needs none", acl)
	}
	_, err = ta.MintGuestToken(ctx, 142)
	if err == nil || !strings.Contains(err.Error(), `failed to parse idmap: lxc.idmap "u 0 200000"`) {
		t.Fatalf("an unparsable idmap: %v; want refused naming it", err)
	}
	if _, err := os.Stat(filepath.Join(ta.state, "guests", "142")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused guest's bootstrap directory exists (%v)", err)
	}
	if g, _ := sim.Guest(142); g.Config["mp255"] != "" {
		t.Errorf("the refused guest was changed: mp255 = %q", g.Config["mp255"])
	}
}

// A provision rerun on a guest already provisioned: an intact bootstrap
// file keeps its token and nothing changes; a deleted one is delivered
// again (a new token, since the file was its only copy), attached once.
func TestProvisionRerunDeliversMissingBootstrap(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 20 * time.Millisecond
	host := newSimHost(t, sim)
	ta := host.agent(shippedPlaybooks(t, "provision.star"), host.guestAPI())
	provision := func() map[string]any {
		t.Helper()
		run, err := ta.client.Trigger(context.Background(), api.TriggerRequest{Playbook: "provision",
			Params: map[string]json.RawMessage{"vmid": json.RawMessage(`130`), "hostname": json.RawMessage(`"cust130"`)}})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := ta.wait(run.ID)
		if r.Status != "succeeded" {
			t.Fatalf("provision = %s %s", r.Status, r.Error)
		}
		var res map[string]any
		if err := json.Unmarshal(r.Result, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	path := filepath.Join(ta.state, "guests", "130", "bootstrap.json")
	provision()
	first, _ := os.ReadFile(path)
	res := provision()
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) || res["changed"] != false || res["bootstrap_delivered"] != false {
		t.Errorf("a rerun over an intact file: result %v; the file changed: %v", res, !bytes.Equal(first, again))
	}
	var boot guestapi.Bootstrap
	_ = json.Unmarshal(first, &boot)
	c := newGuestClient(t, boot.LocalAPI.Endpoint, boot.LocalAPI.Fingerprint, boot.LocalAPI.Token)
	if code, _ := c.do("GET", "/status", "", nil); code != 200 {
		t.Errorf("the kept token answers %d", code)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	res = provision()
	if res["changed"] != true || res["bootstrap_delivered"] != true || res["bootstrap"] != path {
		t.Errorf("a rerun without the file: result %v; want it delivered", res)
	}
	var boot2 guestapi.Bootstrap
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &boot2) != nil || !strings.HasPrefix(boot2.LocalAPI.Token, guestapi.TokenPrefix) {
		t.Fatalf("the delivered file %s: %v", b, err)
	}
	c2 := newGuestClient(t, boot2.LocalAPI.Endpoint, boot2.LocalAPI.Fingerprint, boot2.LocalAPI.Token)
	if code, _ := c2.do("GET", "/status", "", nil); code != 200 {
		t.Errorf("the delivered token answers %d", code)
	}
	g, _ := sim.Guest(130)
	n := 0
	for k, v := range g.Config {
		if strings.HasPrefix(k, "mp") && strings.Contains(v, "/etc/felhom-bootstrap") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the bootstrap directory is attached %d times; want once", n)
	}
}
