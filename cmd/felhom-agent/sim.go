package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// SimCmd serves a simulated Proxmox VE host — the default world: node
// demo-felhom, guests 9999, 9000, 101 and 102, storages local, local-lvm and
// usb-backup — over TLS, and prints one JSON line with what a client needs
// (endpoint, node, token, fingerprint). It serves until interrupted.
type SimCmd struct {
	Listen       string        `help:"Address to listen on." default:"127.0.0.1:8006" placeholder:"ADDR" env:"-"`
	Fault        []string      `help:"Inject a fault (repeatable), e.g. 5xx:GET:/nodes/*/status:count=3; see the pvesim package for the grammar." placeholder:"SPEC" env:"-"`
	TaskDuration time.Duration `help:"How long each simulated task runs." default:"200ms" env:"-"`
	Latency      time.Duration `help:"Delay added to every API request." env:"-"`
}

// simInfo is the line SimCmd prints.
type simInfo struct {
	Endpoint    string `json:"endpoint"`
	Node        string `json:"node"`
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
}

// Run serves until SIGINT or SIGTERM.
func (c *SimCmd) Run(g *Globals) error {
	sim := pvesim.New()
	// Like pveproxy, slow down token guessing: a 401 waits 3 s.
	sim.AuthFailureDelay = pvesim.PVEAuthFailureDelay
	sim.TaskDuration = c.TaskDuration
	sim.Latency = c.Latency
	for _, spec := range c.Fault {
		f, err := pvesim.ParseFault(spec)
		if err != nil {
			return err
		}
		if err := sim.AddFault(f); err != nil {
			return err
		}
	}
	srv, err := sim.Start(c.Listen)
	if err != nil {
		return err
	}
	defer srv.Close()
	// The token is printed on purpose: it is the simulator's, and this
	// line is how a client is pointed at it.
	if err := json.NewEncoder(g.stdout).Encode(simInfo{srv.Endpoint, srv.Node, srv.Token, srv.Fingerprint}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
