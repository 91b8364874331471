package proxmox

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type wireGuest struct {
	VMID     num  `json:"vmid"` // a string before PVE 8.1
	Name     text `json:"name"`
	Status   text `json:"status"`
	Lock     text `json:"lock"`
	Template flag `json:"template"`
	Tags     text `json:"tags"`
	CPUs     num  `json:"cpus"`
	CPU      num  `json:"cpu"`
	Mem      num  `json:"mem"`
	MaxMem   num  `json:"maxmem"`
	Disk     num  `json:"disk"`
	MaxDisk  num  `json:"maxdisk"`
	Swap     num  `json:"swap"`
	MaxSwap  num  `json:"maxswap"`
	Uptime   num  `json:"uptime"`
}

// Guests lists the managed node's LXC containers (GET /nodes/{node}/lxc).
func (c *Client) Guests(ctx context.Context) ([]Guest, error) {
	var ws []wireGuest
	if err := c.get(ctx, c.nodePath("lxc"), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Guest, 0, len(ws))
	for _, w := range ws {
		out = append(out, Guest{
			VMID: w.VMID.toInt(), Name: string(w.Name), Status: string(w.Status),
			Lock: string(w.Lock), Template: bool(w.Template), Tags: string(w.Tags),
			CPUs: w.CPUs.toFloat(), CPU: w.CPU.toFloat(),
			Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
			Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
			Uptime: w.Uptime.toInt64(),
		})
	}
	return out, nil
}

// GuestStatus returns one container's current state
// (GET /nodes/{node}/lxc/{vmid}/status/current). VMID is the one asked
// for, whatever the body says.
func (c *Client) GuestStatus(ctx context.Context, vmid int) (GuestStatus, error) {
	if err := needVMID(vmid); err != nil {
		return GuestStatus{}, err
	}
	var w wireGuest
	if err := c.get(ctx, c.guestPath(vmid, "status", "current"), nil, &w); err != nil {
		return GuestStatus{}, err
	}
	return GuestStatus{
		VMID: vmid, Name: string(w.Name), Status: string(w.Status), Lock: string(w.Lock),
		Template: bool(w.Template), CPUs: w.CPUs.toFloat(), CPU: w.CPU.toFloat(),
		Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
		Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
		Swap: w.Swap.toUint64(), MaxSwap: w.MaxSwap.toUint64(),
		Uptime: w.Uptime.toInt64(),
	}, nil
}

// GuestConfig returns one container's configuration
// (GET /nodes/{node}/lxc/{vmid}/config): the common keys typed, rootfs,
// mpN and netN parsed, and every key in Raw as a string (the raw lxc.*
// list, which PVE sends as an array of pairs, as compact JSON).
func (c *Client) GuestConfig(ctx context.Context, vmid int) (GuestConfig, error) {
	if err := needVMID(vmid); err != nil {
		return GuestConfig{}, err
	}
	var raw json.RawMessage
	p := c.guestPath(vmid, "config")
	if err := c.get(ctx, p, nil, &raw); err != nil {
		return GuestConfig{}, err
	}
	gc, err := parseGuestConfig(raw)
	if err != nil {
		return GuestConfig{}, fmt.Errorf("GET %s: %w", p.plain, err)
	}
	return gc, nil
}

var (
	mountPointKey = regexp.MustCompile(`^mp[0-9]+$`)
	netKey        = regexp.MustCompile(`^net[0-9]+$`)
)

// parseGuestConfig decodes a config object. A typed key whose value does
// not parse is an error naming the key: a flow must not act on a memory
// size or a boolean that was silently read as zero.
func parseGuestConfig(data []byte) (GuestConfig, error) {
	var m map[string]text
	if err := json.Unmarshal(data, &m); err != nil {
		return GuestConfig{}, fmt.Errorf("decoding config: %w", err)
	}
	gc := GuestConfig{Raw: make(map[string]string, len(m))}
	for k, v := range m {
		gc.Raw[k] = string(v)
	}
	var errs []string
	bad := func(key string, err error) { errs = append(errs, fmt.Sprintf("key %q: %v", key, err)) }
	for k, v := range gc.Raw {
		var err error
		switch k {
		case "hostname":
			gc.Hostname = v
		case "description":
			gc.Description = v
		case "ostype":
			gc.OSType = v
		case "arch":
			gc.Arch = v
		case "lock":
			gc.Lock = v
		case "tags":
			gc.Tags = v
		case "features":
			gc.Features = v
		case "digest":
			gc.Digest = v
		case "cores":
			gc.Cores, err = parseInt(v)
		case "memory":
			gc.Memory, err = parseInt(v)
		case "swap":
			gc.Swap, err = parseInt(v)
		case "onboot":
			gc.OnBoot, err = parseBool(v)
		case "template":
			gc.Template, err = parseBool(v)
		case "unprivileged":
			gc.Unprivileged, err = parseBool(v)
		case "rootfs":
			gc.RootFS = parseMountPoint(v, "/")
		default:
			switch {
			case mountPointKey.MatchString(k):
				if gc.MountPoints == nil {
					gc.MountPoints = make(map[string]MountPoint)
				}
				gc.MountPoints[k] = parseMountPoint(v, "")
			case netKey.MatchString(k):
				if gc.Nets == nil {
					gc.Nets = make(map[string]Net)
				}
				gc.Nets[k], err = parseNet(v)
			}
		}
		if err != nil {
			bad(k, err)
		}
	}
	if len(errs) > 0 {
		// Sorted so the message does not depend on map order.
		slices.Sort(errs)
		return GuestConfig{}, fmt.Errorf("config %s", strings.Join(errs, "; "))
	}
	return gc, nil
}

// parseMountPoint parses a rootfs or mpN value. path is the mount path of
// rootfs ("/"); mpN carry theirs in mp=.
func parseMountPoint(v, path string) MountPoint {
	opts := parseProperty(v, "volume")
	mp := MountPoint{Volume: opts["volume"], Path: path, Size: opts["size"], Options: opts}
	if p, ok := opts["mp"]; ok {
		mp.Path = p
	}
	return mp
}

// parseNet parses a netN value.
func parseNet(v string) (Net, error) {
	opts := parseProperty(v, "")
	n := Net{
		Name: opts["name"], Bridge: opts["bridge"], HWAddr: opts["hwaddr"],
		IP: opts["ip"], Gateway: opts["gw"], IP6: opts["ip6"], Gateway6: opts["gw6"],
		Options: opts,
	}
	if t, ok := opts["tag"]; ok && t != "" {
		tag, err := strconv.Atoi(t)
		if err != nil {
			return Net{}, fmt.Errorf("tag %q is not a VLAN number", t)
		}
		n.Tag = tag
	}
	if f, ok := opts["firewall"]; ok {
		fw, err := parseBool(f)
		if err != nil {
			return Net{}, fmt.Errorf("firewall: %w", err)
		}
		n.Firewall = fw
	}
	return n, nil
}

// Snapshots lists one container's snapshots
// (GET /nodes/{node}/lxc/{vmid}/snapshot), without PVE's pseudo-entry
// "current" (the running state, "You are here!").
func (c *Client) Snapshots(ctx context.Context, vmid int) ([]Snapshot, error) {
	if err := needVMID(vmid); err != nil {
		return nil, err
	}
	var ws []struct {
		Name        text `json:"name"`
		Description text `json:"description"`
		Parent      text `json:"parent"`
		SnapTime    num  `json:"snaptime"`
	}
	if err := c.get(ctx, c.guestPath(vmid, "snapshot"), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(ws))
	for _, w := range ws {
		if w.Name == "current" {
			continue
		}
		out = append(out, Snapshot{
			Name: string(w.Name), Description: string(w.Description),
			Parent: string(w.Parent), SnapTime: w.SnapTime.toTime(),
		})
	}
	return out, nil
}
