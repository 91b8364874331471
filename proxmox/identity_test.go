package proxmox_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

func TestParseIdentity(t *testing.T) {
	h := sha256.Sum256([]byte("fgt_x"))
	good := proxmox.GuestIdentity{VMID: 101, Hash: h}.String()
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{good, true},
		{"  " + good + " ", true},
		{strings.Replace(good, "vmid=101", "vmid=99", 1), false},             // not a vmid PVE allows
		{strings.Replace(good, "vmid=101", "vmid=abc", 1), false},            // not a number
		{strings.Replace(good, "sha256=", "sha256=00", 1), false},            // too long
		{good[:len(good)-2], false},                                          // too short
		{strings.ToUpper(good[:20]) + good[20:], false},                      // the prefix is exact
		{strings.Replace(good, "sha256=", "sha256=Z", 1)[:len(good)], false}, // not hex
		{good + " customer=x", false},                                        // anything extra
		{"felhom-guest-api:", false},
	} {
		id, ok := proxmox.ParseIdentity(tc.line)
		if ok != tc.ok || (ok && (id.VMID != 101 || id.Hash != h)) {
			t.Errorf("ParseIdentity(%q) = %+v, %v; want ok %v", tc.line, id, ok, tc.ok)
		}
	}
}

// A container's identity line is apart from its description: a flow
// reads the operator's text only, and writing the description back (or
// deleting it) keeps the line.
func TestIdentityLineKept(t *testing.T) {
	sim := pvesim.New()
	c := simClient(t, sim)
	ctx := t.Context()
	vmid := pvesim.CustomerDB
	id := proxmox.GuestIdentity{VMID: vmid, Hash: sha256.Sum256([]byte("fgt_a"))}
	before, err := c.GuestConfig(ctx, proxmox.LXC, vmid)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetGuestIdentity(ctx, id); err != nil {
		t.Fatal(err)
	}
	conf, err := c.GuestConfig(ctx, proxmox.LXC, vmid)
	if err != nil {
		t.Fatal(err)
	}
	if conf.Identity == nil || conf.Identity.VMID != vmid || conf.Identity.Hash != id.Hash {
		t.Fatalf("Identity = %+v; want %+v", conf.Identity, id)
	}
	if conf.Description != before.Description {
		t.Errorf("Description = %q; want the operator's text %q without the identity line", conf.Description, before.Description)
	}
	if !strings.Contains(conf.Raw["description"], id.String()) {
		t.Errorf("Raw description = %q; want the line as PVE keeps it", conf.Raw["description"])
	}
	// A flow writes a new description: the line stays, the text changes.
	if _, err := c.SetConfig(ctx, proxmox.LXC, vmid, map[string]string{"description": "new text"}, nil); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.GuestConfig(ctx, proxmox.LXC, vmid)
	if conf.Description != "new text\n" || conf.Identity == nil || conf.Identity.Hash != id.Hash {
		t.Errorf("after a description write: %q %+v", conf.Description, conf.Identity)
	}
	// Deleting the description leaves the line alone.
	if _, err := c.SetConfig(ctx, proxmox.LXC, vmid, nil, []string{"description"}); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.GuestConfig(ctx, proxmox.LXC, vmid)
	if conf.Description != "" || conf.Identity == nil {
		t.Errorf("after deleting the description: %q %+v", conf.Description, conf.Identity)
	}
	// A new identity replaces the old one; a second, different line makes
	// the description prove nothing.
	id2 := proxmox.GuestIdentity{VMID: vmid, Hash: sha256.Sum256([]byte("fgt_b"))}
	if err := c.SetGuestIdentity(ctx, id2); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.GuestConfig(ctx, proxmox.LXC, vmid)
	if conf.Identity == nil || conf.Identity.Hash != id2.Hash || strings.Count(conf.Raw["description"], proxmox.IdentityPrefix) != 1 {
		t.Errorf("after a new identity: %q", conf.Raw["description"])
	}
	// (SetConfig keeps id2's line and adds this one: two lines.)
	if _, err := c.SetConfig(ctx, proxmox.LXC, vmid, map[string]string{"description": "text\n" + id.String()}, nil); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.GuestConfig(ctx, proxmox.LXC, vmid)
	if conf.Identity != nil || conf.Description != "text\n" {
		t.Errorf("two identity lines: Identity %+v, Description %q; want none and the text", conf.Identity, conf.Description)
	}
	// ClearGuestIdentity takes every line out and keeps the text.
	if err := c.ClearGuestIdentity(ctx, vmid); err != nil {
		t.Fatal(err)
	}
	conf, _ = c.GuestConfig(ctx, proxmox.LXC, vmid)
	if strings.Contains(conf.Raw["description"], proxmox.IdentityPrefix) || conf.Description != "text\n" {
		t.Errorf("after ClearGuestIdentity: %q", conf.Raw["description"])
	}
}
