package proxmox

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// GuestKind is which of Proxmox VE's two guest kinds a vmid is: an LXC
// container or a QEMU virtual machine. The API keeps them apart below
// /nodes/{node}/lxc and /nodes/{node}/qemu, with the same operations
// (status, config, snapshots, power, destroy, restore) on each, but a vmid
// is unique across both (pve-cluster PVE/Cluster.pm check_vmid_unused), so
// a vmid names exactly one guest of one kind.
type GuestKind string

// The guest kinds, spelled as PVE spells them in paths, in
// /cluster/resources' type and in a backup's subtype.
const (
	LXC  GuestKind = "lxc"
	QEMU GuestKind = "qemu"
)

// Valid reports whether k is LXC or QEMU.
func (k GuestKind) Valid() bool { return k == LXC || k == QEMU }

// Label is PVE's word for a guest of kind k in messages: "CT" for a
// container, "VM" for a virtual machine, as in "VM 200 is locked
// (backup)" (guest_type in pve-container LXC/Config.pm and qemu-server
// QemuConfig.pm).
func (k GuestKind) Label() string {
	if k == QEMU {
		return "VM"
	}
	return "CT"
}

// needKind checks a guest kind, which becomes a path segment.
func needKind(k GuestKind) error {
	if !k.Valid() {
		return paramError("type", k, `is not a guest kind ("lxc" or "qemu")`)
	}
	return nil
}

// kindPath is a path below /nodes/{node}/{lxc|qemu}/{vmid}.
func (c *Client) kindPath(k GuestKind, vmid int, segments ...string) apiPath {
	return c.nodePath(append([]string{string(k), strconv.Itoa(vmid)}, segments...)...)
}

// needGuest checks a guest's kind and vmid.
func needGuest(k GuestKind, vmid int) error {
	if err := needKind(k); err != nil {
		return err
	}
	return needVMID(vmid)
}

var (
	// vzdumpArchiveName is a vzdump archive file name (pve-storage
	// PVE/Storage.pm archive_info): vzdump-{lxc|qemu|openvz}-VMID-STAMP.EXT.
	vzdumpArchiveName = regexp.MustCompile(`^vzdump-(lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.(tgz$|tar|vma)`)
	// pbsVolname is a Proxmox Backup Server snapshot's volume name
	// (pve-storage PVE/Storage/PBSPlugin.pm parse_volname):
	// backup/{ct|vm}/VMID/YYYY-MM-DDTHH:MM:SSZ.
	pbsVolname = regexp.MustCompile(`^backup/(ct|vm)/([1-9][0-9]{2,8})/([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)$`)
)

// ArchiveKind tells which guest kind a backup volid holds, and of which
// vmid, from its name as PVE names it: a vzdump file
// ("usb-backup:backup/vzdump-qemu-200-2026_11_19-03_00_00.vma.zst"; an
// openvz archive restores as a container) or a PBS snapshot
// ("pbs-backup:backup/vm/200/2026-12-01T03:00:00Z"). It reports false for
// anything else. PVE itself decides a restore's kind this way (the
// endpoint is chosen by the archive's format).
func ArchiveKind(volid string) (GuestKind, int, bool) {
	_, name, ok := strings.Cut(volid, ":")
	if !ok {
		return "", 0, false
	}
	if m := pbsVolname.FindStringSubmatch(name); m != nil {
		vmid, _ := strconv.Atoi(m[2])
		if m[1] == "vm" {
			return QEMU, vmid, true
		}
		return LXC, vmid, true
	}
	file, ok := strings.CutPrefix(name, "backup/")
	if !ok || strings.Contains(file, "/") {
		return "", 0, false
	}
	m := vzdumpArchiveName.FindStringSubmatch(file)
	if m == nil {
		return "", 0, false
	}
	vmid, _ := strconv.Atoi(m[2])
	if m[1] == "qemu" {
		return QEMU, vmid, true
	}
	return LXC, vmid, true
}

// kindOfArchive is ArchiveKind for a restore, as an error naming the
// archive when it does not say.
func kindOfArchive(archive string) (GuestKind, error) {
	k, _, ok := ArchiveKind(archive)
	if !ok {
		return "", paramError("archive", archive, "is not named like a vzdump archive or a PBS snapshot; give RestoreOptions.Kind")
	}
	return k, nil
}

// String is the kind as PVE spells it: "lxc" or "qemu".
func (k GuestKind) String() string { return string(k) }

var _ fmt.Stringer = GuestKind("")
