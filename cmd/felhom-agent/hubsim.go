package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/hubsim"
)

// HubSimCmd serves a simulated Felhom hub over TLS on loopback, for trying
// an agent's hub channel and for the e2e suite: per-host keys, report
// ingest (4 MiB limit), the control envelope, desired state with
// generations, a jobs queue and fault injection. It prints one JSON line
// — url, fingerprint, admin_key — then serves until SIGINT or SIGTERM. The
// admin and /sim routes (see the hubsim package) drive it.
type HubSimCmd struct {
	Listen   string        `help:"Address to listen on." default:"127.0.0.1:8443" placeholder:"ADDR" env:"-"`
	Host     []string      `help:"A host and its bearer key, ID=KEY (repeatable); more can be added with POST /sim/hosts." placeholder:"ID=KEY" env:"-"`
	AdminKey string        `name:"admin-key" help:"Bearer key of the admin and /sim routes; empty makes one up and prints it." env:"FELHOM_HUBSIM_ADMIN_KEY"`
	Poll     int           `help:"poll_interval_seconds the envelope of a new host says (the agent clamps it)." default:"900" env:"-"`
	Latency  time.Duration `help:"Delay every host answer (a slow hub)." env:"-"`
}

type hubSimInfo struct {
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint"`
	AdminKey    string `json:"admin_key"`
}

// Run serves the simulator.
func (c *HubSimCmd) Run(g *Globals) error {
	sim := hubsim.New()
	sim.PollInterval = c.Poll
	sim.AdminKey = c.AdminKey
	if sim.AdminKey == "" {
		sim.AdminKey = fmt.Sprintf("admin-%d", time.Now().UnixNano())
	}
	for _, h := range c.Host {
		id, key, ok := strings.Cut(h, "=")
		if !ok || id == "" || key == "" {
			return fmt.Errorf("--host %q: want ID=KEY", id)
		}
		sim.AddHost(id, key)
	}
	if c.Latency > 0 {
		sim.SetFaults(hubsim.Faults{Latency: c.Latency})
	}
	srv, err := sim.Start(c.Listen)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := json.NewEncoder(g.stdout).Encode(hubSimInfo{srv.URL, srv.Fingerprint, sim.AdminKey}); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
