package goclient_test

import (
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest/goclient"
)

// TestGoProxmoxAgainstSim runs the go-proxmox flow against the
// simulator's default world plus a stopped container 120, failing on any
// request the simulator does not model.
func TestGoProxmoxAgainstSim(t *testing.T) {
	sim := pvesim.New()
	sim.TaskDuration = 20 * time.Millisecond
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	if err := sim.AddGuest(pvesim.GuestSpec{VMID: 120, Hostname: "goclient", RootFS: "local-lvm:vm-120-disk-0,size=4G"}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddStorage(pvesim.StorageSpec{Name: "local-zfs", Type: "zfspool", Content: []string{"images", "rootdir"}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddGuest(pvesim.GuestSpec{VMID: 128, Hostname: "onzfs", RootFS: "local-zfs:subvol-128-disk-0,size=2G"}); err != nil {
		t.Fatal(err)
	}
	srv, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := pvetest.Endpoint{URL: srv.Endpoint, Node: srv.Node, Token: srv.Token, HTTPClient: srv.Client(), CAFile: ca}
	w := pvetest.World{Running: pvesim.CustomerWeb, Stopped: 120, StoppedVM: pvesim.CustomerCI, Scratch: 130, BackupStorage: "usb-backup", GuestStorage: "local-lvm"}
	goclient.Check(t, e, w)
	if g, _ := sim.Guest(120); g.Status != "stopped" || g.Lock != "" || len(g.Snapshots) != 0 {
		t.Errorf("guest 120 after the flow: %+v; want it as it was", g)
	}
}

// TestGoProxmoxCluster runs the go-proxmox cluster flow against the
// simulator's cluster world as pve1, with tasks it can hold running and
// nodes it can take down.
func TestGoProxmoxCluster(t *testing.T) {
	var frozen atomic.Pointer[time.Time]
	sim := pvesim.New()
	sim.Nodes = 3
	sim.TaskDuration = 20 * time.Millisecond
	sim.Now = func() time.Time {
		if t := frozen.Load(); t != nil {
			return *t
		}
		return time.Now()
	}
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	srv, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e := pvetest.Endpoint{URL: srv.Endpoint, Node: srv.Node, Token: srv.Token, HTTPClient: srv.Client()}
	w := pvetest.World{
		Running: pvesim.CustomerWeb, Stopped: 125, Scratch: 131, BackupStorage: "usb-backup", GuestStorage: "local-lvm",
		HoldTasks: func(t testing.TB) {
			now := time.Now()
			frozen.Store(&now)
			t.Cleanup(func() { frozen.Store(nil) })
		},
		Cluster: &pvetest.Cluster{
			Other: pvesim.ClusterNodeName(2), OtherGuest: pvesim.ClusterShop, HAGuest: pvesim.ClusterMail,
			OperatorToken: pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret, MigrateVM: pvesim.CustomerApp,
			Settle: 10 * time.Second,
			NodeDown: func(t testing.TB, node string) {
				if err := sim.SetNodeOnline(node, false); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = sim.SetNodeOnline(node, true) })
			},
		},
	}
	goclient.ClusterCheck(t, e, w)
	for _, vmid := range []int{w.Running, w.Cluster.MigrateVM} {
		if g, _ := sim.Guest(vmid); sim.GuestNode(vmid) != srv.Node || g.Status != "running" || g.Lock != "" {
			t.Errorf("guest %d after the flow: %s on %s, lock %q; want running on %s", vmid, g.Status, sim.GuestNode(vmid), g.Lock, srv.Node)
		}
	}
}
