package agent

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// A guest's guest-API identity across a cluster (docs/guest-api.md,
// "Identity after a migration"): the agent that mints a container's token
// records the token's SHA-256 in the container's description
// (proxmox/identity.go), which moves with the container's config when it
// migrates. The agent of the node it lands on does not know the token;
// when a guest presents a token it does not know, it reads the identity
// lines of its own node's containers and adopts the token for the one
// container whose line holds the token's hash and names that container's
// own vmid. No agent asks another.

// adoptScanEvery bounds how often unknown tokens make the agent read its
// node's container configs (one listing and one config read per
// container): at most once per interval, however many unknown tokens
// arrive; between scans an unknown token is checked against the last
// scan only.
const adoptScanEvery = 10 * time.Second

// identityGate lets exactly one mutation through: the write of
// container vmid's description (its identity line), a benign config
// change under the safety gate's rules. The agent's own write outside
// any run goes through it, so the client's required gate is never
// reached around: anything else on this context is refused.
type identityGate struct {
	metricsObserver
	vmid int
}

var _ proxmox.MutationGate = identityGate{}

func (g identityGate) BeforeMutation(_ context.Context, m proxmox.Mutation) error {
	if m.Method == "PUT" && strings.HasSuffix(m.Path, "/lxc/"+strconv.Itoa(g.vmid)+"/config") && onlyKeys(m.Params, "description", "digest") {
		return nil
	}
	return fmt.Errorf("the guest API's identity write allows only container %d's description, not %s %s", g.vmid, m.Method, m.Path)
}

func onlyKeys(p url.Values, allowed ...string) bool {
	for k := range p {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return false
		}
	}
	return true
}

// recordIdentity makes container vmid's description hold the identity
// line of the token hashing to hash, unless conf (just read) shows it
// does. A failure is the caller's to report: the token works on this
// node either way; only another node's agent could not verify it after
// a migration.
func (a *Agent) recordIdentity(ctx context.Context, vmid int, hash [32]byte, conf proxmox.GuestConfig) (bool, error) {
	if id := conf.Identity; id != nil && id.VMID == vmid && id.Hash == hash {
		return false, nil
	}
	ctx = proxmox.WithObserver(ctx, identityGate{metricsObserver{a.metrics}, vmid})
	if err := a.guest.cfg.Proxmox.SetGuestIdentity(ctx, proxmox.GuestIdentity{VMID: vmid, Hash: hash}); err != nil {
		return false, err
	}
	return true, nil
}

// adoptToken is the guest API's answer to a token hash this agent does
// not hold: the container on this node whose identity line holds hash
// and names its own vmid, adopted (the store and memory now hold hash as
// that container's token, replacing the one it had here), or false.
//
// Refused, so false: no container of this node holds it; a line naming
// another vmid (copied by a clone, a restore to another vmid, or by
// hand); a line on a VM or a template; two containers holding the same
// hash (neither is believed).
func (a *Agent) adoptToken(ctx context.Context, hash [32]byte) (int, bool, error) {
	g := a.guest
	g.adopt.Lock()
	defer g.adopt.Unlock()
	g.mu.Lock()
	v, ok := g.tokens[hash]
	g.mu.Unlock()
	if ok {
		return v, true, nil // adopted by a request that came first
	}
	if g.marks == nil || time.Since(g.scanned) >= adoptScanEvery {
		marks, err := a.scanIdentities(ctx)
		if err != nil {
			return 0, false, err
		}
		g.marks, g.scanned = marks, time.Now()
	}
	vmids := g.marks[hash]
	switch {
	case len(vmids) == 0:
		return 0, false, nil
	case len(vmids) > 1:
		a.log.Warn("guest API: a token's hash is in the identity lines of several containers; none is believed", "vmids", vmids)
		return 0, false, nil
	}
	vmid := vmids[0]
	if err := a.store.SetGuestToken(ctx, vmid, hash[:], time.Now()); err != nil {
		return 0, false, err
	}
	replaced := false
	g.mu.Lock()
	for h, v := range g.tokens {
		if v == vmid {
			delete(g.tokens, h)
			replaced = true
		}
	}
	g.tokens[hash] = vmid
	g.mu.Unlock()
	if replaced {
		a.log.Warn("guest API: guest token adopted from the guest's identity line, replacing the token this agent held for it (rotated on another node, or written by someone who may change the guest's options)", "vmid", vmid)
	} else {
		a.log.Info("guest API: guest token adopted from the guest's identity line (minted by another node's agent before a migration)", "vmid", vmid)
	}
	return vmid, true, nil
}

// scanIdentities reads the identity lines of this node's containers:
// hash → the containers whose line holds it and names their own vmid.
func (a *Agent) scanIdentities(ctx context.Context) (map[[32]byte][]int, error) {
	px := a.guest.cfg.Proxmox
	guests, err := px.Guests(ctx)
	if err != nil {
		return nil, fmt.Errorf("guest API: list guests for identity lines: %w", err)
	}
	marks := map[[32]byte][]int{}
	for _, gu := range guests {
		if gu.Type != proxmox.LXC || gu.Template {
			continue
		}
		conf, err := px.GuestConfig(ctx, proxmox.LXC, gu.VMID)
		if err != nil {
			if proxmox.IsNotFound(err) {
				continue // gone (or migrating away) since the listing
			}
			return nil, fmt.Errorf("guest API: guest %d config for its identity line: %w", gu.VMID, err)
		}
		if id := conf.Identity; id != nil {
			if id.VMID != gu.VMID {
				a.log.Warn("guest API: a container's identity line names another guest; ignored", "vmid", gu.VMID, "names", id.VMID)
				continue
			}
			marks[id.Hash] = append(marks[id.Hash], gu.VMID)
		}
	}
	return marks, nil
}
