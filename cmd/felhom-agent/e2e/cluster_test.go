package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// A 3-node simulated cluster with an agent per node: three serve
// processes, each configured with its node and pointed at that node's own
// listener of one simulated cluster. No agent talks to another; Proxmox's
// cluster (here the simulator's) is all they share.

// clusterPlaybooks is a playbooks directory with the shipped backup,
// provision and monitor flows and their lib/.
func clusterPlaybooks(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"backup.star", "provision.star", "monitor.star"} {
		src, err := os.ReadFile(filepath.Join(playbooksDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "lib"), os.DirFS(filepath.Join(playbooksDir, "lib"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// clusterRun triggers playbook on a and waits for its end.
func clusterRun(t *testing.T, a *agent, id, playbook string, params map[string]any) (status, errText string, result map[string]any) {
	t.Helper()
	runID, err := a.acceptedRun(t, id, playbook, params)
	if err != nil {
		t.Fatalf("trigger %s %s: %v", playbook, id, err)
	}
	r := waitAll(t, a, []string{runID}, 2*time.Minute)[0]
	_ = json.Unmarshal(r.Result, &result)
	return string(r.Status), r.Error, result
}

// backedUp lists the vmids a backup result says were backed up here.
func backedUp(result map[string]any) []int {
	var out []int
	gs, _ := result["guests"].([]any)
	for _, g := range gs {
		m, _ := g.(map[string]any)
		if _, moved := m["moved"]; moved || m["ok"] != true {
			continue
		}
		if v, ok := m["vmid"].(float64); ok {
			out = append(out, int(v))
		}
	}
	return out
}

func TestClusterAgentPerNode(t *testing.T) {
	requireServe(t)
	sim := pvesim.New()
	sim.Nodes = 3
	sim.TaskDuration = 20 * time.Millisecond
	// The golden archive on the shared storage, so that every node can
	// provision from it.
	if err := sim.AddVolume(pvesim.VolumeSpec{
		VolID: pvesim.SharedBackupStorage + ":backup/vzdump-lxc-9000-2026_11_01-02_00_00.tar.zst",
		Guest: &pvesim.GuestSpec{Hostname: "golden", Cores: 2, MemoryMB: 1024, Features: "nesting=1"},
	}); err != nil {
		t.Fatal(err)
	}
	nodes := sim.NodeNames()
	servers := startNodes(t, sim)
	dir := clusterPlaybooks(t)
	agents := map[string]*agent{}
	for _, n := range nodes {
		agents[n] = startAgent(t, agentOpts{env: serverEnv(servers[n]), playbooks: dir, args: []string{"--health-interval", "300ms"}})
	}
	for _, n := range nodes {
		eventually(t, 30*time.Second, n+"'s agent to see its node in the cluster", func() (bool, string) {
			code, h := agents[n].health(t)
			c := h.Proxmox.Cluster
			return code == 200 && c != nil && c.Node == n && c.Name == pvesim.ClusterName && c.Members == 3, fmt.Sprintf("%d %+v", code, h.Proxmox)
		})
	}

	// What three idle agents ask of the API: the health probe (here every
	// 300ms; shipped: 30s).
	r0, t0 := sim.Requests(), time.Now()
	time.Sleep(3 * time.Second) // a measurement window, not a synchronisation
	idle := float64(sim.Requests()-r0) / time.Since(t0).Seconds() / 3
	record(t, "idle agent: API requests per health probe (probe every 300ms here)", "%.1f", idle*0.3)

	// Concurrent backups on every node to the shared storage: every guest
	// exactly once.
	t.Run("concurrent backups, each guest once", func(t *testing.T) {
		r0 := sim.Requests()
		defer func() {
			record(t, "3 concurrent backups of 9 guests: API requests in all (health probes included)", "%d", sim.Requests()-r0)
		}()
		var wg sync.WaitGroup
		byNode := map[string][]int{}
		var mu sync.Mutex
		for _, n := range nodes {
			wg.Go(func() {
				status, errText, res := clusterRun(t, agents[n], "backup-1-"+n, "backup", map[string]any{"storage": pvesim.SharedBackupStorage})
				if status != "succeeded" {
					t.Errorf("backup on %s: %s %s", n, status, errText)
				}
				mu.Lock()
				byNode[n] = backedUp(res)
				mu.Unlock()
			})
		}
		wg.Wait()
		count := map[int]int{}
		for _, v := range sim.Volumes(pvesim.SharedBackupStorage) {
			if v.Content == "backup" && v.VMID != pvesim.GoldenVMID {
				count[v.VMID]++
			}
		}
		for _, g := range sim.Guests() {
			if g.Template {
				continue
			}
			if count[g.VMID] != 1 {
				t.Errorf("guest %d (on %s) has %d archives on the shared storage; want exactly 1", g.VMID, g.Node, count[g.VMID])
			}
			mine := byNode[g.Node]
			found := false
			for _, v := range mine {
				found = found || v == g.VMID
			}
			if !found {
				t.Errorf("guest %d is on %s, but that node's agent did not back it up (it backed up %v)", g.VMID, g.Node, mine)
			}
		}
		record(t, "3-node cluster, agent per node: guests backed up once each (pve1 / pve2 / pve3)", "%v / %v / %v", byNode["pve1"], byNode["pve2"], byNode["pve3"])
	})

	// The same vmid provisioned from two nodes at once: one guest, one
	// refusal naming the other node.
	t.Run("one vmid from two nodes", func(t *testing.T) {
		type out struct{ status, err string }
		res := map[string]out{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range []string{"pve1", "pve2"} {
			wg.Go(func() {
				status, errText, _ := clusterRun(t, agents[n], "provision-140-"+n, "provision", map[string]any{"vmid": 140, "hostname": "race-" + n})
				mu.Lock()
				res[n] = out{status, errText}
				mu.Unlock()
			})
		}
		wg.Wait()
		winner := sim.GuestNode(140)
		if winner == "" {
			t.Fatalf("no guest 140 after both runs: %+v", res)
		}
		loser := "pve1"
		if winner == "pve1" {
			loser = "pve2"
		}
		if res[winner].status != "succeeded" {
			t.Errorf("the run on %s, where 140 is, = %+v; want succeeded", winner, res[winner])
		}
		want := fmt.Sprintf("CT 140 already exists on node '%s'", winner)
		if res[loser].status != "failed" || !strings.Contains(res[loser].err, want) {
			t.Errorf("the run on %s = %+v; want failed with %q", loser, res[loser], want)
		}
		if g, _ := sim.Guest(140); g.Config["hostname"] != "race-"+winner {
			t.Errorf("guest 140 hostname %q; want race-%s (the loser must not have changed it)", g.Config["hostname"], winner)
		}
	})

	// A guest migrated between two backups is backed up by its new node's
	// agent.
	t.Run("migrated between backups", func(t *testing.T) {
		tok, _ := proxmox.ParseToken(pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret)
		op, err := proxmox.New(proxmox.Config{Endpoint: servers["pve1"].Endpoint, Node: "pve1", Token: tok, Fingerprint: servers["pve1"].Fingerprint})
		if err != nil {
			t.Fatal(err)
		}
		upid, err := op.Migrate(t.Context(), proxmox.LXC, pvesim.CustomerDB, proxmox.MigrateOptions{Target: "pve2", Restart: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.WaitTask(t.Context(), upid, proxmox.WaitOptions{MinInterval: 10 * time.Millisecond, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		got := map[string][]int{}
		for _, n := range []string{"pve1", "pve2"} {
			status, errText, res := clusterRun(t, agents[n], "backup-2-"+n, "backup", map[string]any{"storage": pvesim.SharedBackupStorage})
			if status != "succeeded" {
				t.Errorf("second backup on %s: %s %s", n, status, errText)
			}
			got[n] = backedUp(res)
		}
		has := func(n string) bool {
			for _, v := range got[n] {
				if v == pvesim.CustomerDB {
					return true
				}
			}
			return false
		}
		if !has("pve2") || has("pve1") {
			t.Errorf("after its migration to pve2, guest %d was backed up by pve1 %v, pve2 %v; want pve2 only", pvesim.CustomerDB, has("pve1"), has("pve2"))
		}
		// Asked of the old node by vmid, it is named as being elsewhere.
		status, errText, _ := clusterRun(t, agents["pve1"], "backup-3-pve1", "backup", map[string]any{"storage": pvesim.SharedBackupStorage, "vmids": []int{pvesim.CustomerDB}})
		if status != "failed" || !strings.Contains(errText, "102 (on node pve2)") {
			t.Errorf("backup of 102 asked of pve1 = %s %q; want failed naming pve2", status, errText)
		}
	})

	// A node goes down: its agent's health says so, the others' monitor
	// reports it, and nothing else fails.
	t.Run("node offline", func(t *testing.T) {
		if err := sim.SetNodeOnline("pve3", false); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pve3's agent to report Proxmox unreachable", func() (bool, string) {
			code, h := agents["pve3"].health(t)
			return code == 503 && !h.Proxmox.OK, fmt.Sprintf("%d %+v", code, h.Proxmox)
		})
		for _, n := range []string{"pve1", "pve2"} {
			r0 := sim.Requests()
			status, errText, res := clusterRun(t, agents[n], "monitor-"+n, "monitor", nil)
			record(t, "one monitor run: API requests (health probes of 3 agents included)", "%d", sim.Requests()-r0)
			if status != "succeeded" {
				t.Fatalf("monitor on %s: %s %s", n, status, errText)
			}
			evs, _ := json.Marshal(res["events"])
			if !strings.Contains(string(evs), `"kind":"node_offline"`) || !strings.Contains(string(evs), `"subject":"pve3"`) {
				t.Errorf("monitor on %s events = %s; want node_offline pve3", n, evs)
			}
			if code, h := agents[n].health(t); code != 200 || len(h.Proxmox.Cluster.Offline) != 1 {
				t.Errorf("%s's health = %d %+v; want ok, pve3 offline", n, code, h.Proxmox.Cluster)
			}
			status, errText, _ = clusterRun(t, agents[n], "backup-4-"+n, "backup", map[string]any{"storage": pvesim.SharedBackupStorage})
			if status != "succeeded" {
				t.Errorf("backup on %s with pve3 down: %s %s", n, status, errText)
			}
		}
		if err := sim.SetNodeOnline("pve3", true); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pve3's agent to recover", func() (bool, string) {
			code, h := agents["pve3"].health(t)
			return code == 200, fmt.Sprintf("%d %+v", code, h.Proxmox)
		})
	})
}

// startNodes serves each node of sim's cluster on a loopback port of its
// own, closed when t ends, and registers their tokens and the operator's
// as secrets no output may show.
func startNodes(t *testing.T, sim *pvesim.Sim) map[string]*pvesim.Server {
	t.Helper()
	servers := map[string]*pvesim.Server{}
	for _, n := range sim.NodeNames() {
		srv, err := sim.StartNode(n, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		registerTokenSecret(srv.Token)
		servers[n] = srv
	}
	registerTokenSecret(pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret)
	return servers
}
