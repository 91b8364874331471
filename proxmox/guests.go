package proxmox

import (
	"cmp"
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
	// QMPStatus is QEMU's own view of a VM (running, paused, prelaunch,
	// ...); containers have none.
	QMPStatus text `json:"qmpstatus"`
}

// Guests lists every guest of the managed node, containers
// (GET /nodes/{node}/lxc) and virtual machines (GET /nodes/{node}/qemu),
// ordered by vmid, each with its Type. Either list failing fails the call:
// a flow that means "every guest" must not act on half of them.
func (c *Client) Guests(ctx context.Context) ([]Guest, error) {
	var out []Guest
	for _, k := range []GuestKind{LXC, QEMU} {
		gs, err := c.GuestsOf(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, gs...)
	}
	slices.SortFunc(out, func(a, b Guest) int { return a.VMID - b.VMID })
	return out, nil
}

// GuestsOf lists the managed node's guests of one kind
// (GET /nodes/{node}/lxc or /nodes/{node}/qemu).
func (c *Client) GuestsOf(ctx context.Context, kind GuestKind) ([]Guest, error) {
	if err := needKind(kind); err != nil {
		return nil, err
	}
	var ws []wireGuest
	if err := c.get(ctx, c.nodePath(string(kind)), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Guest, 0, len(ws))
	for _, w := range ws {
		out = append(out, Guest{
			Type: kind, VMID: w.VMID.toInt(), Name: string(w.Name), Status: string(w.Status),
			Lock: string(w.Lock), Template: bool(w.Template), Tags: string(w.Tags),
			CPUs: w.CPUs.toFloat(), CPU: w.CPU.toFloat(),
			Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
			Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
			Uptime: w.Uptime.toInt64(),
		})
	}
	return out, nil
}

// GuestStatus returns one guest's current state
// (GET /nodes/{node}/{lxc|qemu}/{vmid}/status/current). VMID and Type are
// the ones asked for, whatever the body says.
func (c *Client) GuestStatus(ctx context.Context, kind GuestKind, vmid int) (GuestStatus, error) {
	if err := needGuest(kind, vmid); err != nil {
		return GuestStatus{}, err
	}
	var w wireGuest
	if err := c.get(ctx, c.kindPath(kind, vmid, "status", "current"), nil, &w); err != nil {
		return GuestStatus{}, err
	}
	return GuestStatus{
		Type: kind, VMID: vmid, QMPStatus: string(w.QMPStatus), Name: string(w.Name), Status: string(w.Status), Lock: string(w.Lock),
		Template: bool(w.Template), CPUs: w.CPUs.toFloat(), CPU: w.CPU.toFloat(),
		Mem: w.Mem.toUint64(), MaxMem: w.MaxMem.toUint64(),
		Disk: w.Disk.toUint64(), MaxDisk: w.MaxDisk.toUint64(),
		Swap: w.Swap.toUint64(), MaxSwap: w.MaxSwap.toUint64(),
		Uptime: w.Uptime.toInt64(),
	}, nil
}

// GuestConfig returns one guest's configuration
// (GET /nodes/{node}/{lxc|qemu}/{vmid}/config): the common keys typed;
// a container's rootfs, mpN and netN, a VM's disks and netN parsed; and
// every key in Raw as a string (the raw lxc.* list, which PVE sends as an
// array of pairs, as compact JSON).
func (c *Client) GuestConfig(ctx context.Context, kind GuestKind, vmid int) (GuestConfig, error) {
	if err := needGuest(kind, vmid); err != nil {
		return GuestConfig{}, err
	}
	var raw json.RawMessage
	p := c.kindPath(kind, vmid, "config")
	if err := c.get(ctx, p, nil, &raw); err != nil {
		return GuestConfig{}, err
	}
	gc, err := parseGuestConfig(kind, raw)
	if err != nil {
		return GuestConfig{}, fmt.Errorf("GET %s: %w", p.plain, err)
	}
	return gc, nil
}

// GuestConfigOn is GuestConfig of a guest on node of the same cluster
// (pveproxy proxies the call there; 595 while node is down).
func (c *Client) GuestConfigOn(ctx context.Context, node string, kind GuestKind, vmid int) (GuestConfig, error) {
	on, err := c.OnNode(node)
	if err != nil {
		return GuestConfig{}, err
	}
	return on.GuestConfig(ctx, kind, vmid)
}

var (
	mountPointKey = regexp.MustCompile(`^mp[0-9]+$`)
	netKey        = regexp.MustCompile(`^net[0-9]+$`)
	// qemuDriveKey are a VM's disk keys (qemu-server
	// PVE/QemuServer/Drive.pm: ide0-3, sata0-5, scsi0-30, virtio0-15,
	// efidisk0, tpmstate0).
	qemuDriveKey = regexp.MustCompile(`^(?:ide[0-3]|sata[0-5]|scsi(?:[0-9]|[12][0-9]|30)|virtio(?:[0-9]|1[0-5])|efidisk0|tpmstate0)$`)
)

// qemuNetModels are the NIC models of a VM's netN (qemu-server
// PVE/QemuServer/Network.pm $nic_model_list).
var qemuNetModels = []string{"e1000", "e1000-82540em", "e1000-82544gc", "e1000-82545em", "e1000e",
	"i82551", "i82557b", "i82559er", "ne2k_isa", "ne2k_pci", "pcnet", "rtl8139", "virtio", "vmxnet3"}

// parseDrive parses a VM disk value: "local-lvm:vm-200-disk-0,iothread=1,
// size=32G", or "none,media=cdrom" for an empty drive.
func parseDrive(v string) Drive {
	opts := parseProperty(v, "file")
	return Drive{Volume: opts["file"], Size: opts["size"], Media: cmp.Or(opts["media"], "disk"), Options: opts}
}

// parseGuestConfig decodes a config object. A typed key whose value does
// not parse is an error naming the key: a flow must not act on a memory
// size or a boolean that was silently read as zero.
func parseGuestConfig(kind GuestKind, data []byte) (GuestConfig, error) {
	var m map[string]text
	if err := json.Unmarshal(data, &m); err != nil {
		return GuestConfig{}, fmt.Errorf("decoding config: %w", err)
	}
	gc := GuestConfig{Type: kind, Raw: make(map[string]string, len(m))}
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
			rest, id, found := splitIdentity(v)
			gc.Description = rest
			if found {
				gc.identityText = identityLines(v)
			}
			if id.VMID != 0 {
				gc.Identity = &id
			}
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
		case "name":
			gc.Name = v
		case "sockets":
			gc.Sockets, err = parseInt(v)
		case "cpu":
			gc.CPU = v
		case "machine":
			gc.Machine = v
		case "bios":
			gc.BIOS = v
		case "boot":
			gc.Boot = v
		case "agent":
			gc.Agent = v
		case "vmstate":
			gc.VMState = v
		case "rootfs":
			if kind == LXC {
				gc.RootFS = parseMountPoint(v, "/")
			}
		default:
			switch {
			case kind == QEMU && qemuDriveKey.MatchString(k):
				if gc.Drives == nil {
					gc.Drives = make(map[string]Drive)
				}
				gc.Drives[k] = parseDrive(v)
			case kind == LXC && mountPointKey.MatchString(k):
				if gc.MountPoints == nil {
					gc.MountPoints = make(map[string]MountPoint)
				}
				gc.MountPoints[k] = parseMountPoint(v, "")
			case netKey.MatchString(k):
				if gc.Nets == nil {
					gc.Nets = make(map[string]Net)
				}
				gc.Nets[k], err = parseNet(kind, v)
			}
		}
		if err != nil {
			bad(k, err)
		}
	}
	if kind == LXC {
		gc.Name = gc.Hostname
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

// parseNet parses a netN value: a container's "name=eth0,bridge=vmbr0,
// hwaddr=..,ip=dhcp" or a VM's "virtio=BC:24:11:..,bridge=vmbr0,firewall=1"
// (qemu-server PVE/QemuServer/Network.pm: the model is the key, the MAC
// its value; macaddr= is the long form).
func parseNet(kind GuestKind, v string) (Net, error) {
	opts := parseProperty(v, "")
	n := Net{
		Name: opts["name"], Bridge: opts["bridge"], HWAddr: opts["hwaddr"],
		IP: opts["ip"], Gateway: opts["gw"], IP6: opts["ip6"], Gateway6: opts["gw6"],
		Options: opts,
	}
	if kind == QEMU {
		n.Model, n.HWAddr = opts["model"], opts["macaddr"]
		for _, m := range qemuNetModels {
			if mac, ok := opts[m]; ok {
				n.Model, n.HWAddr = m, mac
				break
			}
		}
	}
	if ld, ok := opts["link_down"]; ok {
		down, err := parseBool(ld)
		if err != nil {
			return Net{}, fmt.Errorf("link_down: %w", err)
		}
		n.LinkDown = down
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

// Snapshots lists one guest's snapshots
// (GET /nodes/{node}/{lxc|qemu}/{vmid}/snapshot), without PVE's
// pseudo-entry "current" (the running state, "You are here!").
func (c *Client) Snapshots(ctx context.Context, kind GuestKind, vmid int) ([]Snapshot, error) {
	if err := needGuest(kind, vmid); err != nil {
		return nil, err
	}
	var ws []struct {
		Name        text `json:"name"`
		Description text `json:"description"`
		Parent      text `json:"parent"`
		SnapTime    num  `json:"snaptime"`
		VMState     flag `json:"vmstate"`
	}
	if err := c.get(ctx, c.kindPath(kind, vmid, "snapshot"), nil, &ws); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(ws))
	for _, w := range ws {
		if w.Name == "current" {
			continue
		}
		out = append(out, Snapshot{
			Name: string(w.Name), Description: string(w.Description),
			Parent: string(w.Parent), SnapTime: w.SnapTime.toTime(), VMState: bool(w.VMState),
		})
	}
	return out, nil
}
