package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
)

// Clusters. A Client manages one node (Config.Node); in a Proxmox VE
// cluster every node's API answers for every node's paths (pveproxy
// proxies them), so a Client can read the whole cluster and reach another
// node's guests through OnNode. Proxmox's cluster filesystem keeps vmids
// unique cluster-wide and guest configs locked cluster-wide: agents on
// different nodes never need to talk to each other.

// nodeNamePattern is PVE's pve-node format: a DNS label (pve-common
// PVE::JSONSchema pve_verify_node_name).
var nodeNamePattern = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`)

// ClusterStatus is GET /cluster/status: the cluster and its members, or,
// for a node in no cluster, that node alone (Name "", Quorate true).
type ClusterStatus struct {
	Name    string          // the cluster's name; "" when the node is in no cluster
	Quorate bool            // corosync has quorum (always true outside a cluster)
	Members []ClusterMember // in the order PVE lists them
}

// ClusterMember is one node of ClusterStatus.
type ClusterMember struct {
	Name   string // node name
	NodeID int    // corosync node id; 0 outside a cluster
	IP     string // the address its name resolves to
	Online bool   // corosync sees it
	Local  bool   // the node that answered the request
}

// Member returns the member called name.
func (s ClusterStatus) Member(name string) (ClusterMember, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return ClusterMember{}, false
}

// Offline lists the members corosync does not see.
func (s ClusterStatus) Offline() []string {
	var out []string
	for _, m := range s.Members {
		if !m.Online {
			out = append(out, m.Name)
		}
	}
	return out
}

// ClusterStatus reads GET /cluster/status.
func (c *Client) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	var ws []struct {
		Type    text `json:"type"`
		Name    text `json:"name"`
		NodeID  num  `json:"nodeid"`
		IP      text `json:"ip"`
		Online  flag `json:"online"`
		Local   flag `json:"local"`
		Quorate flag `json:"quorate"`
	}
	if err := c.get(ctx, pathOf("cluster", "status"), nil, &ws); err != nil {
		return ClusterStatus{}, err
	}
	out := ClusterStatus{Quorate: true}
	for _, w := range ws {
		switch w.Type {
		case "cluster":
			out.Name, out.Quorate = string(w.Name), bool(w.Quorate)
		case "node":
			out.Members = append(out.Members, ClusterMember{
				Name: string(w.Name), NodeID: w.NodeID.toInt(), IP: string(w.IP), Online: bool(w.Online), Local: bool(w.Local),
			})
		}
	}
	return out, nil
}

// OnNode returns a Client for node of the same cluster: the same
// endpoint, token and connections, with node's paths (pveproxy proxies
// them). It does not check that node exists; PVE answers "no such cluster
// node" if it does not, and 595 while it is down (see IsNodeUnreachable).
func (c *Client) OnNode(node string) (*Client, error) {
	cfg := c.cfg
	cfg.Node = node
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxmox client: %w", err)
	}
	if node == c.cfg.Node {
		return c, nil
	}
	// Every field but waits (a node's task pollers are per Client).
	return &Client{cfg: cfg, base: c.base, hc: c.hc, log: c.log, backoffMin: c.backoffMin, backoffMax: c.backoffMax}, nil
}

// GuestLocation is where the cluster resources place a guest.
type GuestLocation struct {
	VMID   int
	Kind   GuestKind
	Node   string
	Status string // running, stopped, or "unknown" while its node is down
	Lock   string // e.g. "migrate" while it moves
}

// LocateGuest finds guest vmid in the cluster (GET /cluster/resources
// ?type=vm); found is false when no node has it.
func (c *Client) LocateGuest(ctx context.Context, vmid int) (loc GuestLocation, found bool, err error) {
	if err := needVMID(vmid); err != nil {
		return GuestLocation{}, false, err
	}
	all, err := c.ClusterGuests(ctx)
	if err != nil {
		return GuestLocation{}, false, err
	}
	for _, g := range all {
		if g.VMID == vmid {
			return g, true, nil
		}
	}
	return GuestLocation{}, false, nil
}

// ClusterGuests lists every guest of the cluster with its node (GET
// /cluster/resources?type=vm), by vmid as PVE orders them.
func (c *Client) ClusterGuests(ctx context.Context) ([]GuestLocation, error) {
	var ws []struct {
		Type   text `json:"type"`
		VMID   num  `json:"vmid"`
		Node   text `json:"node"`
		Status text `json:"status"`
		Lock   text `json:"lock"`
	}
	if err := c.get(ctx, pathOf("cluster", "resources"), url.Values{"type": {"vm"}}, &ws); err != nil {
		return nil, err
	}
	out := make([]GuestLocation, 0, len(ws))
	for _, w := range ws {
		kind := GuestKind(w.Type)
		if kind != LXC && kind != QEMU {
			continue
		}
		out = append(out, GuestLocation{VMID: w.VMID.toInt(), Kind: kind, Node: string(w.Node), Status: string(w.Status), Lock: string(w.Lock)})
	}
	return out, nil
}

// CheckVMIDFree asks whether vmid is free cluster-wide (GET
// /cluster/nextid?vmid=N). A taken id is PVE's 400 with the vmid
// parameter's message "VM N already exists" (an *APIError).
func (c *Client) CheckVMIDFree(ctx context.Context, vmid int) error {
	if err := needVMID(vmid); err != nil {
		return err
	}
	var n num
	return c.get(ctx, pathOf("cluster", "nextid"), url.Values{"vmid": {strconv.Itoa(vmid)}}, &n)
}

// MigrateOptions are the parameters of a migration.
type MigrateOptions struct {
	Target string // the node to move to; required
	// Online migrates a running VM live (qemu); Restart stops a running
	// container, moves it and starts it again (lxc). A running guest
	// needs the one of its kind.
	Online, Restart bool
	// WithLocalDisks copies a VM's disks on local storage along (qemu).
	WithLocalDisks bool
}

// Migrate moves guest vmid to another node (POST
// /nodes/{node}/{lxc|qemu}/{vmid}/migrate): a vzmigrate or qmigrate task
// that holds the guest's "migrate" lock, or a hamigrate task for an
// HA-managed guest (the HA stack then migrates it).
func (c *Client) Migrate(ctx context.Context, kind GuestKind, vmid int, o MigrateOptions) (UPID, error) {
	if err := needGuest(kind, vmid); err != nil {
		return UPID{}, err
	}
	probe := c.cfg
	probe.Node = o.Target
	if err := probe.Validate(); err != nil {
		return UPID{}, paramError("target", o.Target, "is not a node name")
	}
	v := url.Values{"target": {o.Target}}
	switch kind {
	case QEMU:
		setTrue(v, "online", o.Online)
		setTrue(v, "with-local-disks", o.WithLocalDisks)
	default:
		setTrue(v, "restart", o.Restart)
	}
	return c.mutate(ctx, http.MethodPost, c.kindPath(kind, vmid, "migrate"), v, false)
}

// ErrNoTask is a mutation PVE answered "OK" without starting a task:
// vzdump's silent exit when none of the guests it names is on the node
// (pve-manager PVE/API2/VZDump.pm: "silent exit if specified VMs run on
// other nodes"). Nothing was done; the guests are elsewhere.
var ErrNoTask = errors.New(`PVE answered "OK" and started no task (the guests named are on other nodes)`)

// IsNodeUnreachable reports whether err is pveproxy failing to reach the
// node a request was proxied to (AnyEvent::HTTP's 595: the node is down
// or cut off).
func IsNodeUnreachable(err error) bool {
	ae, ok := errors.AsType[*APIError](err)
	return ok && ae.Status == 595
}

// existsOnNodeRe is PVE::Cluster::check_vmid_unused's text.
var existsOnNodeRe = regexp.MustCompile(`(?:CT|VM) (\d+) already exists on node '([^']+)'`)

// ExistsOnNode reports whether err is PVE refusing a vmid another guest
// holds ("CT 120 already exists on node 'pve2'"), and names that node.
func ExistsOnNode(err error) (node string, ok bool) {
	for _, msg := range messages(err) {
		if m := existsOnNodeRe.FindStringSubmatch(msg); m != nil {
			return m[2], true
		}
	}
	return "", false
}

// GuestElsewhereError is a guest this node does not have because another
// node of the cluster does: it migrated away, or it is that node's
// agent's to manage. IsNotFound holds for it (it is not on this node);
// Kind calls it "elsewhere".
type GuestElsewhereError struct {
	VMID int
	Kind GuestKind
	Node string // the node it is on
	Here string // the node asked
	Err  error  // what PVE answered, if anything
}

func (e *GuestElsewhereError) Error() string {
	msg := fmt.Sprintf("guest %d is on node %s, not on node %s (it migrated away, or that node's agent manages it)", e.VMID, e.Node, e.Here)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *GuestElsewhereError) Unwrap() error { return e.Err }

// IsElsewhere reports whether err is a guest that is on another node, and
// returns that error.
func IsElsewhere(err error) (*GuestElsewhereError, bool) {
	return errors.AsType[*GuestElsewhereError](err)
}
