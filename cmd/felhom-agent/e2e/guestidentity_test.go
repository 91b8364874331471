package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// A guest's guest-API identity after a migration, at process level: a
// 2-node simulated cluster with a serving agent per node, each with a
// guest API (the same certificate, as docs/guest-api.md asks of a
// cluster). Guest 102's token is minted by pve1's agent; 102 migrates to
// pve2, and its controller's token is accepted by pve2's agent, which
// never heard of it (it finds the token's hash in 102's identity line).
// Identity lines planted on other guests claim nothing they do not hold.
//
// 102 carries the bootstrap mount as the agent's fenced attach makes it
// (shared=1), and the simulator models the nodes' directories: PVE
// starts 102 on pve2 only because pve2's agent made 102's bootstrap
// directory there beforehand. The two agents' state directories differ
// on this one machine; HostDir maps a path below either agent's guests/
// to that node's own agent's, standing for the one state_dir every node
// has on a real cluster.
func TestGuestIdentityMigrates(t *testing.T) {
	requireServe(t)
	sim := pvesim.New()
	sim.Nodes = 2
	sim.TaskDuration = 20 * time.Millisecond
	state1, state2 := t.TempDir(), t.TempDir()
	states := map[string]string{"pve1": state1, "pve2": state2}
	sim.HostDir = func(node, path string) bool {
		for _, s := range states {
			if rest, ok := strings.CutPrefix(path, filepath.Join(s, "guests")+"/"); ok {
				path = filepath.Join(states[node], "guests", rest)
			}
		}
		fi, err := os.Stat(path)
		return err == nil && fi.IsDir()
	}
	servers := startNodes(t, sim)
	dir := guestPlaybooks(t)
	addr1, addr2 := freeAddr(t), freeAddr(t)
	a1 := startAgent(t, agentOpts{env: serverEnv(servers["pve1"]), playbooks: dir, stateDir: state1, args: []string{"--guest-api-listen", addr1}})
	// Every node's agent serves guests with the same certificate, so a
	// migrated controller's pin holds on its new node.
	for _, f := range []string{"guest-api.crt", "guest-api.key"} {
		b, err := os.ReadFile(filepath.Join(a1.stateDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(state2, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a2 := startAgent(t, agentOpts{env: serverEnv(servers["pve2"]), playbooks: dir, stateDir: state2,
		args: []string{"--guest-api-listen", addr2, "--health-interval", "300ms"}})

	vmid := pvesim.CustomerDB
	tok, _ := rotate(t, a1, vmid)
	// The agent processes here cannot run the simulator's pct (privileged
	// operations are off); the attach is the agent's own fenced command,
	// run against pve1's simulated root tools.
	boot1 := filepath.Join(state1, "guests", fmt.Sprint(vmid))
	r1, err := sim.NodeRootRunner("pve1")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := proxmox.NewPrivileged(proxmox.PrivilegedConfig{BootstrapRoot: filepath.Join(state1, "guests")}, r1)
	if err != nil {
		t.Fatal(err)
	}
	if err := priv.AttachReadOnly(t.Context(), vmid, 255, boot1, proxmox.BootstrapMountPath); err != nil {
		t.Fatal(err)
	}
	if g, _ := sim.Guest(vmid); g.Config["mp255"] != boot1+",mp=/etc/felhom-bootstrap,ro=1,shared=1" || g.Status != "running" {
		t.Fatalf("guest %d: mp255 %q, %s; want the shared bootstrap mount on a running guest", vmid, g.Config["mp255"], g.Status)
	}
	// pve2's agent makes 102's (empty) bootstrap directory at a health
	// pass, before any migration.
	boot2 := filepath.Join(state2, "guests", fmt.Sprint(vmid))
	eventually(t, 30*time.Second, "pve2's agent makes the bootstrap directory of pve1's guest", func() (bool, string) {
		fi, err := os.Stat(boot2)
		return err == nil && fi.IsDir(), fmt.Sprint(err)
	})
	if ents, _ := os.ReadDir(boot2); len(ents) != 0 {
		t.Errorf("pve2's bootstrap directory of %d holds %v before any rotation there; want it empty", vmid, ents)
	}
	on1 := newController(t, a1, vmid)
	var st struct {
		VMID   int    `json:"vmid"`
		Status string `json:"status"`
	}
	on1.data("GET", "/status", "", &st)
	if st.VMID != vmid {
		t.Fatalf("on pve1, /status = %+v", st)
	}
	g, _ := sim.Guest(vmid)
	line := proxmox.GuestIdentity{VMID: vmid, Hash: sha256.Sum256([]byte(tok))}.String()
	if !strings.Contains(g.Description, line) || strings.Contains(g.Description, tok) {
		t.Fatalf("guest %d's description %q; want its identity line %q and never the token", vmid, g.Description, line)
	}
	// The controller after the migration: the same token and pin, the
	// guest API of the node it runs on now.
	on2 := &controller{t: t, vmid: vmid, endpoint: addr2, token: tok, hc: on1.hc}
	if a := on2.call("GET", "/status", ""); a.status != 401 {
		t.Errorf("before the migration, pve2's agent answered 102's token with %d; want 401 (102 is pve1's)", a.status)
	}

	// Identity lines planted by someone who may edit guests' options
	// (the operator's token here): a line naming another guest on 110,
	// and a line on the VM 210.
	optok, _ := proxmox.ParseToken(pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret)
	op, err := proxmox.New(proxmox.Config{Endpoint: servers["pve1"].Endpoint, Node: "pve2", Token: optok, Fingerprint: servers["pve1"].Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	plant := func(kind proxmox.GuestKind, on int, names int, token string) {
		t.Helper()
		id := proxmox.GuestIdentity{VMID: names, Hash: sha256.Sum256([]byte(token))}
		if kind == proxmox.LXC && names == on {
			// As the agent writes it: the line replaces the one there was.
			// (A second line beside it would make neither count.)
			if err := op.SetGuestIdentity(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			return
		}
		if _, err := op.SetConfig(t.Context(), kind, on, map[string]string{"description": "planted\n" + id.String()}, nil); err != nil {
			t.Fatal(err)
		}
	}
	claimOther, claimVM := "fgt_planted-on-110-naming-102", "fgt_planted-on-the-vm-210"
	plant(proxmox.LXC, pvesim.ClusterShop, vmid, claimOther)
	plant(proxmox.QEMU, pvesim.ClusterERP, pvesim.ClusterERP, claimVM)

	op1, err := proxmox.New(proxmox.Config{Endpoint: servers["pve1"].Endpoint, Node: "pve1", Token: optok, Fingerprint: servers["pve1"].Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	upid, err := op1.Migrate(t.Context(), proxmox.LXC, vmid, proxmox.MigrateOptions{Target: "pve2", Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op1.WaitTask(t.Context(), upid, proxmox.WaitOptions{MinInterval: 10 * time.Millisecond, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if g, _ := sim.Guest(vmid); g.Node != "pve2" || g.Status != "running" {
		t.Fatalf("guest %d after the migration: node %s, %s; want running on pve2", vmid, g.Node, g.Status)
	}

	// pve2's agent scans at most every 10 s for unknown tokens; the first
	// request after the migration may meet the scan made before it.
	accepted(t, on2)
	on2.data("GET", "/status", "", &st)
	if st.VMID != vmid {
		t.Errorf("on pve2, /status = %+v; want guest %d", st, vmid)
	}
	var job backupStatus
	on2.data("POST", "/backup", `{"request_id":"after-migration"}`, &job)
	eventually(t, 60*time.Second, "the migrated guest's backup on pve2", func() (bool, string) {
		on2.data("GET", "/backup/status?job_id="+job.JobID, "", &job)
		return job.Phase == "done" || job.Phase == "failed", job.Phase
	})
	if job.Phase != "done" || job.VMID != vmid {
		t.Errorf("backup asked of pve2 by the migrated guest: %+v; want done", job)
	}
	var rt struct {
		VMID int `json:"vmid"`
	}
	on2.data("GET", "/restore-test/status", "", &rt)
	if rt.VMID != vmid {
		t.Errorf("/restore-test/status on pve2 = %+v", rt)
	}

	time.Sleep(time.Second) // the limit of requests without a valid token refills
	// The planted lines claim nothing: not 102 (the line names another
	// guest than the one holding it), not a VM.
	for _, bad := range []string{claimOther, claimVM, "fgt_never-minted"} {
		c := &controller{t: t, vmid: 0, endpoint: addr2, token: bad, hc: on1.hc}
		if a := c.call("GET", "/status", ""); a.status != 401 {
			t.Errorf("planted token %q on pve2 = %d %s; want 401", bad, a.status, a.raw)
		}
	}
	// A line that names the guest holding it does claim that guest — and
	// only that guest: whoever may edit 110's options may act as 110 on
	// the guest API (docs/guest-api.md), never as 102.
	claim110 := "fgt_planted-on-110-naming-110"
	plant(proxmox.LXC, pvesim.ClusterShop, pvesim.ClusterShop, claim110)
	c110 := &controller{t: t, vmid: pvesim.ClusterShop, endpoint: addr2, token: claim110, hc: on1.hc}
	accepted(t, c110)
	c110.data("GET", "/status", "", &st)
	if st.VMID != pvesim.ClusterShop {
		t.Errorf("the token planted for 110 answers as %d", st.VMID)
	}
	if a := c110.call("GET", "/backup/status?job_id="+job.JobID, ""); a.status != 403 {
		t.Errorf("110's planted token reading 102's job = %d; want 403", a.status)
	}
	// 102 keeps its own identity.
	on2.data("GET", "/status", "", &st)
	if st.VMID != vmid {
		t.Errorf("after the plants, 102's token answers as %d", st.VMID)
	}

	for _, a := range []*agent{a1, a2} {
		if strings.Contains(a.proc.stderr.String(), tok) {
			t.Error("a guest token reached serve's log")
		}
	}
	if !strings.Contains(a2.proc.stderr.String(), "adopted from the guest's identity line") {
		t.Errorf("pve2's agent did not log the adoption:\n%s", tail(a2.proc.stderr.String(), 3000))
	}
	if !strings.Contains(a2.proc.stderr.String(), `"names":102`) {
		t.Errorf("pve2's agent did not log the line on 110 naming 102:\n%s", tail(a2.proc.stderr.String(), 3000))
	}
}

// accepted waits until c's token is answered, asking once a second: a
// refused token counts against the guest API's limit of requests without
// a valid token (2/s per address), and the agent reads identity lines at
// most every 10 s.
func accepted(t *testing.T, c *controller) {
	t.Helper()
	var last guestAnswer
	for range 30 {
		if last = c.call("GET", "/status", ""); last.status == 200 {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("guest API on %s never accepted guest %d's token: %d %s", c.endpoint, c.vmid, last.status, last.Error)
}
