package pvetest_test

import (
	"errors"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
)

// TestServe: the client Serve returns reaches the server it started, with
// the options it was given, and the server is gone once the test that
// asked for it has ended — also when that test closed it itself.
func TestServe(t *testing.T) {
	sim := pvesim.New()
	var srv *pvesim.Server
	t.Run("served", func(t *testing.T) {
		var c *proxmox.Client
		srv, c = pvetest.Serve(t, sim, proxmox.WithReadOnly())
		if got, want := c.Target(), srv.Endpoint+" node "+srv.Node; got != want {
			t.Errorf("client target = %q; want %q", got, want)
		}
		if _, err := c.Version(t.Context()); err != nil {
			t.Errorf("Version through the client: %v", err)
		}
		before := sim.Requests()
		if _, err := c.Start(t.Context(), proxmox.LXC, pvesim.CustomerWeb); !errors.Is(err, proxmox.ErrReadOnly) {
			t.Errorf("Start on a client made WithReadOnly = %v; want ErrReadOnly", err)
		}
		if got := sim.Requests() - before; got != 0 {
			t.Errorf("the read-only client's Start sent %d requests; want none", got)
		}
	})
	if resp, err := srv.Client().Get(srv.Endpoint + "/api2/json/version"); err == nil {
		resp.Body.Close()
		t.Errorf("after the test, GET /version = %s; want the server closed", resp.Status)
	}
	t.Run("closed early", func(t *testing.T) {
		srv, _ := pvetest.Serve(t, sim)
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}
