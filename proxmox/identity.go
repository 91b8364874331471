package proxmox

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// A container's guest-API identity travels with the container: the
// SHA-256 of its guest token (never the token) is kept as one marked line
// of its description,
//
//	felhom-guest-api: vmid=110 sha256=3f0c…9a (64 hex digits)
//
// The description is part of the guest's config file, which a migration
// moves between nodes (pmxcfs renames nodes/pve1/lxc/110.conf to
// nodes/pve2/…), so the agent of the node a container lands on finds the
// hash there and can verify the token the container's controller
// presents without asking the old node's agent (runtime/agent; the
// contract and the threat model are in docs/guest-api.md).
//
// The marked line is not the operator's text: [Client.GuestConfig] gives
// it apart ([GuestConfig.Identity]) and keeps it out of
// [GuestConfig.Description], so what flows compare and the hub is shown
// never contains it, and [Client.SetConfig] carries it over when it
// writes a container's description. Raw["description"] keeps it, as PVE
// returns it.

// IdentityPrefix starts the marked line.
const IdentityPrefix = "felhom-guest-api:"

// GuestIdentity is a container's identity line.
type GuestIdentity struct {
	// VMID is the guest the line names. It must be the guest that holds
	// the line: a line copied with a clone or a restore to another vmid
	// names the original and is not this guest's identity.
	VMID int
	// Hash is the SHA-256 of the guest's token.
	Hash [32]byte
	// Line is the line as written (what SetConfig carries over).
	Line string
}

// String is the line: "felhom-guest-api: vmid=N sha256=HEX".
func (id GuestIdentity) String() string {
	return fmt.Sprintf("%s vmid=%d sha256=%s", IdentityPrefix, id.VMID, hex.EncodeToString(id.Hash[:]))
}

// ParseIdentity reads one marked line; false when it is not one (a
// wrong prefix, a missing or malformed vmid or hash, anything extra).
func ParseIdentity(line string) (GuestIdentity, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), IdentityPrefix)
	if !ok {
		return GuestIdentity{}, false
	}
	f := strings.Fields(rest)
	if len(f) != 2 {
		return GuestIdentity{}, false
	}
	v, ok1 := strings.CutPrefix(f[0], "vmid=")
	h, ok2 := strings.CutPrefix(f[1], "sha256=")
	vmid, err := strconv.Atoi(v)
	if !ok1 || !ok2 || err != nil || vmid < 100 || vmid > 999999999 || len(h) != 64 || strings.ToLower(h) != h {
		return GuestIdentity{}, false
	}
	var id GuestIdentity
	if _, err := hex.Decode(id.Hash[:], []byte(h)); err != nil {
		return GuestIdentity{}, false
	}
	id.VMID, id.Line = vmid, strings.TrimSpace(line)
	return id, true
}

// splitIdentity takes every marked line out of a description as PVE
// returns it (one line per line of the text, each ending in "\n"). It
// returns the operator's text (with PVE's trailing newline, or "" when
// nothing else is left), the identity when exactly one well-formed
// line holds one, and whether any marked line was there at all. Two
// lines that differ, or a marked line that does not parse, give no
// identity: a description someone added a second line to proves nothing.
func splitIdentity(desc string) (rest string, id GuestIdentity, found bool) {
	if !strings.Contains(desc, IdentityPrefix) {
		return desc, GuestIdentity{}, false
	}
	var keep []string
	valid, bad := map[string]GuestIdentity{}, false
	for _, l := range strings.Split(strings.TrimSuffix(desc, "\n"), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), IdentityPrefix) {
			keep = append(keep, l)
			continue
		}
		found = true
		if p, ok := ParseIdentity(l); ok {
			valid[p.Line] = p
		} else {
			bad = true
		}
	}
	if len(keep) > 0 {
		rest = strings.Join(keep, "\n") + "\n"
	}
	if len(valid) == 1 && !bad {
		for _, p := range valid {
			id = p
		}
	}
	return rest, id, found
}

// withIdentity is description text (as a flow writes it, with or
// without PVE's trailing newline) with the identity line added last;
// text alone when line is "".
func withIdentity(text, line string) string {
	text = strings.TrimSuffix(text, "\n")
	switch {
	case line == "":
		return text
	case text == "":
		return line
	}
	return text + "\n" + line
}

// SetGuestIdentity writes id as container id.VMID's identity line,
// keeping the rest of its description; one identity line replaces any
// the description had. The write carries the config digest just read,
// so a concurrent change of the config fails it (PVE: "detected
// modified configuration - file changed by other user? Try again.")
// rather than being lost. Containers only: the guest API serves no VM.
func (c *Client) SetGuestIdentity(ctx context.Context, id GuestIdentity) error {
	conf, err := c.GuestConfig(ctx, LXC, id.VMID)
	if err != nil {
		return err
	}
	set := map[string]string{"description": withIdentity(conf.Description, id.String())}
	if conf.Digest != "" {
		set["digest"] = conf.Digest
	}
	if _, err := c.setConfig(ctx, LXC, id.VMID, set, nil); err != nil {
		return fmt.Errorf("guest %d: recording its guest-API identity in its description: %w", id.VMID, err)
	}
	return nil
}

// identityLines is every marked line of desc, as written, one per line.
func identityLines(desc string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(desc, "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), IdentityPrefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// keepIdentity makes a change of container vmid's description keep its
// identity lines: it reads the config once and returns set and del with
// the lines added to the new description (or, when the description is
// deleted, as all that is left of it), and the digest just read, so that
// a concurrent change fails the write rather than being lost. set and
// del are not modified; a change that does not touch the description,
// or a guest whose description holds no marked line, is returned as is.
func (c *Client) keepIdentity(ctx context.Context, kind GuestKind, vmid int, set map[string]string, del []string) (map[string]string, []string, error) {
	_, setDesc := set["description"]
	delDesc := false
	for _, k := range del {
		delDesc = delDesc || k == "description"
	}
	if kind != LXC || (!setDesc && !delDesc) || c.readOnly {
		return set, del, nil
	}
	conf, err := c.GuestConfig(ctx, kind, vmid)
	if err != nil {
		return nil, nil, err
	}
	if conf.identityText == "" {
		return set, del, nil
	}
	out := make(map[string]string, len(set)+2)
	for k, v := range set {
		out[k] = v
	}
	var keep []string
	for _, k := range del {
		if k != "description" {
			keep = append(keep, k)
		}
	}
	out["description"] = withIdentity(set["description"], conf.identityText)
	if _, given := out["digest"]; !given && conf.Digest != "" {
		out["digest"] = conf.Digest
	}
	return out, keep, nil
}

// ClearGuestIdentity removes every identity line from container vmid's
// description, keeping the rest (deleting the description when nothing
// else is left); a description without one is not written.
func (c *Client) ClearGuestIdentity(ctx context.Context, vmid int) error {
	conf, err := c.GuestConfig(ctx, LXC, vmid)
	if err != nil {
		return err
	}
	if conf.identityText == "" {
		return nil
	}
	set, del := map[string]string{}, []string(nil)
	if conf.Description != "" {
		set["description"] = strings.TrimSuffix(conf.Description, "\n")
	} else {
		del = []string{"description"}
	}
	if conf.Digest != "" {
		set["digest"] = conf.Digest
	}
	if _, err := c.setConfig(ctx, LXC, vmid, set, del); err != nil {
		return fmt.Errorf("guest %d: removing its guest-API identity line: %w", vmid, err)
	}
	return nil
}
