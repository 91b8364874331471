package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// SimCmd serves a simulated Proxmox VE host — the default world: node
// demo-felhom, guests 9999, 9000, 101 and 102, storages local, local-lvm and
// usb-backup — over TLS, and prints one JSON line with what a client needs
// (endpoint, node, token, fingerprint). With --nodes N (2 or more) it is
// a cluster of N nodes, pve1..pveN, each served on its own port (the
// first on --listen, the next ones on the ports after it, or free ports
// when --listen's is 0), and the line lists them. It serves until
// interrupted.
type SimCmd struct {
	Listen       string        `help:"Address to listen on (a cluster's first node; the others take the next ports)." default:"127.0.0.1:8006" placeholder:"ADDR" env:"-"`
	Nodes        int           `help:"Nodes of the simulated world: 1 is the single node demo-felhom; 2 or more a cluster of pve1..pveN." default:"1" env:"-"`
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
	// A cluster's name, every node's listener, and the operator's token
	// (root@pam, for what the agent does not do: migrate, HA).
	Cluster       string        `json:"cluster,omitempty"`
	Nodes         []simNodeInfo `json:"nodes,omitempty"`
	OperatorToken string        `json:"operator_token,omitempty"`
}

// simNodeInfo is one node of a simulated cluster.
type simNodeInfo struct {
	Node        string `json:"node"`
	Endpoint    string `json:"endpoint"`
	Fingerprint string `json:"fingerprint"`
}

// Run serves until SIGINT or SIGTERM.
func (c *SimCmd) Run(g *Globals) error {
	if c.Nodes < 1 {
		return fmt.Errorf("--nodes %d: want 1 or more", c.Nodes)
	}
	sim := pvesim.New()
	sim.Nodes = c.Nodes
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
	info := simInfo{Endpoint: srv.Endpoint, Node: srv.Node, Token: srv.Token, Fingerprint: srv.Fingerprint}
	if c.Nodes > 1 {
		info.Cluster = pvesim.ClusterName
		info.OperatorToken = pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret
		info.Nodes = append(info.Nodes, simNodeInfo{srv.Node, srv.Endpoint, srv.Fingerprint})
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", c.Listen, err)
		}
		first, _ := strconv.Atoi(port)
		for i, node := range sim.NodeNames()[1:] {
			p := 0
			if first != 0 {
				p = first + i + 1
			}
			ns, err := sim.StartNode(node, net.JoinHostPort(host, strconv.Itoa(p)))
			if err != nil {
				return err
			}
			defer ns.Close()
			info.Nodes = append(info.Nodes, simNodeInfo{ns.Node, ns.Endpoint, ns.Fingerprint})
		}
	}
	if err := json.NewEncoder(g.stdout).Encode(info); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
