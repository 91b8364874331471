package proxmox_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// clusterClient is a client of node of a simulated cluster, with tokenID's
// secret (the agent's or the operator's).
func clusterClient(t *testing.T, sim *pvesim.Sim, node, token string) *proxmox.Client {
	t.Helper()
	rt, stop := pvesim.PipeTransport(sim)
	t.Cleanup(stop)
	tok, err := proxmox.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve1.sim:8006", Node: node, Token: tok}, proxmox.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const agentToken = pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret

func TestClusterReads(t *testing.T) {
	sim := &pvesim.Sim{Nodes: 3, TaskDuration: -1}
	c := clusterClient(t, sim, "pve1", agentToken)
	ctx := t.Context()

	st, err := c.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != pvesim.ClusterName || !st.Quorate || len(st.Members) != 3 || !st.Members[0].Local || st.Members[1].Local {
		t.Errorf("cluster status = %+v", st)
	}
	if m, ok := st.Member("pve2"); !ok || m.NodeID != 2 || !m.Online || m.IP != "10.10.10.12" {
		t.Errorf("member pve2 = %+v %v", m, ok)
	}

	loc, found, err := c.LocateGuest(ctx, pvesim.ClusterShop)
	if err != nil || !found || loc.Node != "pve2" || loc.Kind != proxmox.LXC || loc.Status != "running" {
		t.Errorf("LocateGuest(110) = %+v %v %v", loc, found, err)
	}
	if _, found, err := c.LocateGuest(ctx, 555); found || err != nil {
		t.Errorf("LocateGuest(555) = %v %v; want not found", found, err)
	}

	// The guest's own node's paths through OnNode; this node's say it
	// does not exist here.
	if _, err := c.GuestStatus(ctx, proxmox.LXC, pvesim.ClusterShop); !proxmox.IsNotFound(err) {
		t.Errorf("GuestStatus(110) on pve1 = %v; want not found", err)
	}
	pve2, err := c.OnNode("pve2")
	if err != nil {
		t.Fatal(err)
	}
	gs, err := pve2.GuestStatus(ctx, proxmox.LXC, pvesim.ClusterShop)
	if err != nil || gs.Status != "running" {
		t.Errorf("GuestStatus(110) on pve2 = %+v %v", gs, err)
	}
	if same, _ := c.OnNode("pve1"); same != c {
		t.Error("OnNode of the client's own node is not the client")
	}
	if _, err := c.OnNode("bad node"); err == nil {
		t.Error("OnNode accepted a bad node name")
	}

	err = c.CheckVMIDFree(ctx, pvesim.ClusterERP)
	var ae *proxmox.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Errors["vmid"] != "VM 210 already exists" {
		t.Errorf("CheckVMIDFree(210) = %v", err)
	}
	if err := c.CheckVMIDFree(ctx, 555); err != nil {
		t.Errorf("CheckVMIDFree(555) = %v", err)
	}

	// A vzdump of another node's guest: PVE's silent "OK", no task.
	_, err = c.Vzdump(ctx, proxmox.VzdumpOptions{VMIDs: []int{pvesim.ClusterShop}, Storage: "usb-backup"})
	if !errors.Is(err, proxmox.ErrNoTask) || proxmox.IsAmbiguous(err) {
		t.Errorf("Vzdump of a guest on pve2 from pve1 = %v; want ErrNoTask, not ambiguous", err)
	}
}

func TestClusterMigrateAndOffline(t *testing.T) {
	sim := &pvesim.Sim{Nodes: 3, TaskDuration: time.Millisecond}
	op := clusterClient(t, sim, "pve1", pvesim.OperatorTokenID+"="+pvesim.OperatorTokenSecret)
	ctx := t.Context()
	fast := proxmox.WaitOptions{MinInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, Timeout: 10 * time.Second}

	if _, err := op.Migrate(ctx, proxmox.LXC, pvesim.CustomerWeb, proxmox.MigrateOptions{Target: "bad node"}); err == nil {
		t.Error("Migrate accepted a bad target")
	}
	upid, err := op.Migrate(ctx, proxmox.LXC, pvesim.CustomerWeb, proxmox.MigrateOptions{Target: "pve2", Restart: true})
	if err != nil || upid.Type != "vzmigrate" || upid.Node != "pve1" {
		t.Fatalf("Migrate = %v %v", upid, err)
	}
	if _, err := op.WaitTask(ctx, upid, fast); err != nil {
		t.Fatal(err)
	}
	if n := sim.GuestNode(pvesim.CustomerWeb); n != "pve2" {
		t.Errorf("101 on %s after migration; want pve2", n)
	}

	agent := clusterClient(t, sim, "pve1", agentToken)
	_, err = agent.RestoreGuest(ctx, proxmox.RestoreOptions{Kind: proxmox.LXC, VMID: pvesim.ClusterMail, Archive: "usb-backup:backup/vzdump-lxc-102-2026_11_19-03_00_48.tar.zst", Storage: "local-lvm"})
	if node, ok := proxmox.ExistsOnNode(err); !ok || node != "pve3" {
		t.Errorf("restore onto 120 (on pve3) = %v; want \"already exists on node 'pve3'\"", err)
	}

	if err := sim.SetNodeOnline("pve3", false); err != nil {
		t.Fatal(err)
	}
	st, err := agent.ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Offline(); !reflect.DeepEqual(got, []string{"pve3"}) || !st.Quorate {
		t.Errorf("offline = %v quorate %v; want [pve3], quorate", got, st.Quorate)
	}
	pve3, _ := agent.OnNode("pve3")
	if _, err := pve3.NodeStatus(ctx); !proxmox.IsNodeUnreachable(err) {
		t.Errorf("NodeStatus of a down node = %v; want 595", err)
	}
}
