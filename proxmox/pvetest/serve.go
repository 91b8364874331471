package pvetest

import (
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// Serve is the rig of a test that talks to the simulator as the agent
// talks to a host: it serves sim over TLS on a free loopback port
// ([pvesim.Sim.Start]) and returns the server and a [proxmox.Client] of
// it configured as an operator would ([pvesim.Info.ClientConfig]): its
// endpoint and node, the default token, and the server's certificate
// pinned by fingerprint — verification on, nothing else trusted. opts
// are passed to [proxmox.New].
//
// The server is closed when tb and its subtests end, and an error it
// stopped with fails tb; closing it earlier is allowed. When the server
// cannot start or the client cannot be made, Serve ends tb with Fatal.
func Serve(tb testing.TB, sim *pvesim.Sim, opts ...proxmox.Option) (*pvesim.Server, *proxmox.Client) {
	tb.Helper()
	srv, err := sim.Start("")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("pvetest.Serve: closing the simulator's server: %v", err)
		}
	})
	cfg, err := srv.ClientConfig()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := proxmox.New(cfg, opts...)
	if err != nil {
		tb.Fatalf("pvetest.Serve: a client of the simulator: %v", err)
	}
	return srv, c
}
