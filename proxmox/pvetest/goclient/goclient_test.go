package goclient_test

import (
	"net/http"
	"os"
	"path/filepath"
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
