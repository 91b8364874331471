package pvesim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Volumes: guest disks (listed from the guests' configs, as PVE lists the
// LVs it finds), files on directory storages (backups, templates, ISOs),
// their names and owners (the plugins' parse_volname), access checks
// (PVE::Storage::check_volume_access), content listing and deletion
// (API2/Storage/Content.pm).

// --- guest disks ---------------------------------------------------------

// guestDisk is a volume a guest config refers to.
type guestDisk struct {
	key   string // rootfs, mp0, unused0, ...
	volid string
	size  uint64
}

// volumeOf is the volume of a mount point value (its unnamed first
// element or volume=).
func volumeOf(mp string) string {
	for i, part := range strings.Split(mp, ",") {
		if v, ok := strings.CutPrefix(part, "volume="); ok {
			return v
		}
		if i == 0 && !strings.Contains(part, "=") {
			return part
		}
	}
	return ""
}

// volumeName is the part of a volid after the storage.
func volumeName(volid string) string {
	_, name, _ := strings.Cut(volid, ":")
	return name
}

func (st *state) guestDisks(g *guest) []guestDisk {
	var out []guestDisk
	for _, k := range slices.Sorted(maps.Keys(g.conf)) {
		switch {
		case isIndexed(k, "unused"):
		case g.isQemu():
			if !vmDriveRe.MatchString(k) || isCDROM(g.conf[k]) {
				continue
			}
		case k != "rootfs" && !isIndexed(k, "mp"):
			continue
		}
		vol := volumeOf(g.conf[k])
		if vol == "" || strings.HasPrefix(vol, "/") || !strings.Contains(vol, ":") {
			continue // bind mounts and devices are not volumes
		}
		out = append(out, guestDisk{key: k, volid: vol, size: parseSize(g.conf[k])})
	}
	return out
}

// guestVolumes lists the volids of a guest's disks.
func (st *state) guestVolumes(g *guest) []string {
	var out []string
	for _, d := range st.guestDisks(g) {
		out = append(out, d.volid)
	}
	return out
}

// claimDisk and releaseDisk account for a guest disk on its storage, on
// the node of the guest whose config names it (a local storage's disk is
// on that node's own disk).
func (st *state) claimDisk(volid string) {
	if s, ok := st.storages[strings.Split(volid, ":")[0]]; ok {
		g, d := st.findDisk(volid)
		st.useOn(s, diskNode(g)).claim(d.size)
	}
}

func (st *state) releaseDisk(volid string) {
	if s, ok := st.storages[strings.Split(volid, ":")[0]]; ok {
		g, d := st.findDisk(volid)
		st.useOn(s, diskNode(g)).release(d.size)
	}
}

// diskNode is the node a guest's disks are on ("" the first node, for a
// disk no guest names).
func diskNode(g *guest) string {
	if g == nil {
		return ""
	}
	return g.node
}

// findDisk finds the guest whose config names volid, and that disk. A
// disk carries its owner in its name (vm-101-disk-0, 101/vm-101-disk-0.raw:
// PVE's names, parse_volname's owner), so the owner's config is read first
// and the cost is one guest's; only a disk its owner does not name (a world
// shaped with other names) costs a walk of every guest.
func (st *state) findDisk(volid string) (*guest, guestDisk) {
	if m := imageNameRe.FindStringSubmatch(volumeName(volid)); m != nil {
		owner, _ := strconv.Atoi(m[4])
		if g, ok := st.guests[owner]; ok {
			if d, ok := g.disk(volid); ok {
				return g, d
			}
		}
	}
	for _, g := range st.guests {
		if d, ok := g.disk(volid); ok {
			return g, d
		}
	}
	return nil, guestDisk{}
}

// disk is the disk of g's config that names volid (the first key in
// sorted order, should two name it, as guestDisks lists them).
func (g *guest) disk(volid string) (guestDisk, bool) {
	var found guestDisk
	for k, v := range g.conf {
		if !strings.HasPrefix(k, "rootfs") && !strings.HasPrefix(k, "mp") && !strings.HasPrefix(k, "unused") {
			continue
		}
		if volumeOf(v) != volid || (k != "rootfs" && !isIndexed(k, "mp") && !isIndexed(k, "unused")) {
			continue
		}
		if found.key == "" || k < found.key {
			found = guestDisk{key: k, volid: volid, size: parseSize(v)}
		}
	}
	return found, found.key != ""
}

// allocDisk creates the next free disk of guest vmid on storage sid
// (PVE's vdisk_alloc naming), claiming its space.
func (st *state) allocDisk(vmid int, sid, size string, base bool) (string, error) {
	s, err := st.storage(sid)
	if err != nil {
		return "", err
	}
	if !s.supports("rootdir") {
		return "", failf("storage '%s' does not support container directories", sid)
	}
	prefix := "vm"
	if base {
		prefix = "base"
	}
	if s.typ == "zfspool" {
		// ZFSPoolPlugin alloc_image: a container's volume is a dataset,
		// subvol-VMID-disk-N (basevol- for a template).
		prefix = "subvol"
		if base {
			prefix = "basevol"
		}
	}
	used := map[string]bool{}
	for _, g := range st.guests {
		for _, v := range st.guestVolumes(g) {
			used[v] = true
		}
	}
	for n := 0; ; n++ {
		name := fmt.Sprintf("%s-%d-disk-%d", prefix, vmid, n)
		if s.hasPath() {
			name = fmt.Sprintf("%d/%s.raw", vmid, name)
		}
		volid := sid + ":" + name
		if !used[volid] {
			st.useHere(s).claim(parseSize("size=" + size))
			return volid, nil
		}
	}
}

// allocVMDisk creates the next free disk of VM vmid on storage sid: an
// image (vm-VMID-disk-N, a .raw file on a directory storage), claiming its
// space.
func (st *state) allocVMDisk(vmid int, sid, size string) (string, error) {
	s, err := st.storage(sid)
	if err != nil {
		return "", err
	}
	if !s.supports("images") {
		return "", failf("storage '%s' does not support vm images", sid)
	}
	used := map[string]bool{}
	for _, g := range st.guests {
		for _, v := range st.guestVolumes(g) {
			used[v] = true
		}
	}
	for n := 0; ; n++ {
		name := fmt.Sprintf("vm-%d-disk-%d", vmid, n)
		if s.hasPath() {
			name = fmt.Sprintf("%d/%s.raw", vmid, name)
		}
		if volid := sid + ":" + name; !used[volid] {
			st.useHere(s).claim(parseSize("size=" + size))
			return volid, nil
		}
	}
}

// --- volume names and access -----------------------------------------------

var (
	backupNameRe = regexp.MustCompile(`^backup/([^/]+\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2|xz))?))$`)
	vzdumpNameRe = regexp.MustCompile(`^vzdump-(lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.`)
	vztmplNameRe = regexp.MustCompile(`^vztmpl/([^/]+\.(tar|tar\.(?:gz|xz|zst|bz2)))$`)
	isoNameRe    = regexp.MustCompile(`(?i)^iso/([^/]+\.(?:iso|img))$`)
	imageNameRe  = regexp.MustCompile(`^(?:(\d+)/)?((vm|base|subvol|basevol)-(\d+)-disk-\d+)(\.(raw|qcow2|vmdk|subvol))?$`)
	snippetRe    = regexp.MustCompile(`^snippets/([^/]+)$`)
	pbsNameRe    = regexp.MustCompile(`^backup/(ct|vm)/([1-9][0-9]{2,8})/([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)$`)
)

// parseVolname is the storage plugin's parse_volname: the content type,
// the owning guest and the format of a volume name.
func (s *storage) parseVolname(name string) (vtype string, owner int, format string, err error) {
	if s.typ == "pbs" {
		// PBSPlugin.pm parse_volname: backup/TYPE/ID/TIME, format pbs-TYPE.
		if m := pbsNameRe.FindStringSubmatch(name); m != nil {
			owner, _ = strconv.Atoi(m[2])
			return "backup", owner, "pbs-" + m[1], nil
		}
		return "", 0, "", failf("unable to parse PBS volume name '%s'", name)
	}
	if m := imageNameRe.FindStringSubmatch(name); m != nil && (s.hasPath() == (m[1] != "")) {
		owner, _ = strconv.Atoi(m[4])
		format = m[6]
		if format == "" {
			format = "raw"
			if m[3] == "subvol" || m[3] == "basevol" {
				format = "subvol"
			}
		}
		return "images", owner, format, nil
	}
	if s.hasPath() {
		switch {
		case backupNameRe.MatchString(name):
			m := backupNameRe.FindStringSubmatch(name)
			if v := vzdumpNameRe.FindStringSubmatch(m[1]); v != nil {
				owner, _ = strconv.Atoi(v[2])
			}
			return "backup", owner, m[2], nil
		case vztmplNameRe.MatchString(name):
			m := vztmplNameRe.FindStringSubmatch(name)
			f := strings.TrimPrefix(m[2], "tar.")
			if f != "tar" {
				f = "t" + f
			}
			return "vztmpl", 0, f, nil
		case isoNameRe.MatchString(name):
			return "iso", 0, "iso", nil
		case snippetRe.MatchString(name):
			return "snippets", 0, "snippet", nil
		}
		return "", 0, "", failf("unable to parse directory volume name '%s'", name)
	}
	return "", 0, "", failf("unable to parse lvm volume name '%s'", name)
}

// filePath is where a volume lives on the host (PVE::Storage::path): a
// PBS snapshot's artificial pbs://REPOSITORY/NAME url (PBSPlugin.pm path,
// PVE::PBSClient::get_repository: USER@SERVER:DATASTORE), a ZFS volume's
// zvol device or a subvolume's directory below the pool's mountpoint
// (ZFSPoolPlugin.pm path), an LVM volume's device (LvmThinPlugin.pm
// filesystem_path), a directory storage's file in its content type's
// subdirectory (Plugin.pm filesystem_path, get_subdir).
func (s *storage) filePath(name string) string {
	switch {
	case s.typ == "pbs":
		return "pbs://" + pbsUser + "@" + s.server + ":" + s.datastore + "/" + strings.TrimPrefix(name, "backup/")
	case s.typ == "zfspool" && (strings.HasPrefix(name, "subvol-") || strings.HasPrefix(name, "basevol-")):
		return "/" + s.pool + "/" + name
	case s.typ == "zfspool":
		return "/dev/zvol/" + s.pool + "/" + name
	case strings.HasPrefix(name, "backup/"):
		return s.path + "/dump/" + strings.TrimPrefix(name, "backup/")
	case strings.HasPrefix(name, "vztmpl/"):
		return s.path + "/template/cache/" + strings.TrimPrefix(name, "vztmpl/")
	case strings.HasPrefix(name, "iso/"):
		return s.path + "/template/iso/" + strings.TrimPrefix(name, "iso/")
	case s.hasPath():
		return s.path + "/images/" + name
	}
	return "/dev/pve/" + name
}

// checkVolumeAccess is PVE::Storage::check_volume_access for a token,
// returning the parsed volume's type and owner.
func (c *call) checkVolumeAccess(vmid int, volid, want string) (int, response) {
	sid, name, found := strings.Cut(volid, ":")
	if !found || !volumeIDRe.MatchString(volid) {
		return 0, die("Only root can pass arbitrary filesystem paths.")
	}
	s, err := c.st.storage(sid)
	if err != nil {
		return 0, die("%s", err)
	}
	vtype, owner, _, err := s.parseVolname(name)
	if err != nil {
		return 0, die("%s", err)
	}
	if want != "" && vtype != want && (want != "rootdir" || vtype != "images") {
		return 0, die("unable to use volume %s - content type needs to be '%s'", volid, want)
	}
	storagePath := "/storage/" + sid
	if c.tok.has(storagePath, "Datastore.Allocate") {
		return owner, response{}
	}
	switch {
	case vtype == "iso" || vtype == "vztmpl":
		if resp, ok := c.tok.checkAny(storagePath, "Datastore.AllocateSpace", "Datastore.Audit"); !ok {
			return 0, resp
		}
	case owner != 0 && owner == vmid:
	case vtype == "backup" && owner != 0:
		if resp, ok := c.tok.check(storagePath, "Datastore.AllocateSpace"); !ok {
			return 0, resp
		}
		if resp, ok := c.tok.check("/vms/"+vmidString(owner), "VM.Backup"); !ok {
			return 0, resp
		}
	case vtype == "images" && owner != 0:
		if resp, ok := c.tok.check(storagePath, "Datastore.Audit"); !ok {
			return 0, resp
		}
		if resp, ok := c.tok.check("/vms/"+vmidString(owner), "VM.Config.Disk"); !ok {
			return 0, resp
		}
	default:
		return 0, die("missing privileges to access %s", volid)
	}
	return owner, response{}
}

func (st *state) findVolume(volid string) (*storage, int) {
	s, ok := st.storages[strings.Split(volid, ":")[0]]
	if !ok {
		return nil, -1
	}
	return s, slices.IndexFunc(s.volumes, func(v *volume) bool { return v.volid == volid && st.volumeVisible(s, v) })
}

// --- listing ----------------------------------------------------------------

// contentList is what GET .../content lists for s: its files and the
// guest disks on it, sorted by volid, filtered by content and vmid.
func (st *state) contentList(s *storage, content string, vmid int) []*volume {
	var out []*volume
	for _, v := range s.volumes {
		if !st.volumeVisible(s, v) || !s.supports(v.content) || (content != "" && v.content != content) {
			continue
		}
		if vmid != 0 && (v.vmid != vmid || v.content == "vztmpl" || v.content == "iso") {
			continue
		}
		out = append(out, v)
	}
	if s.supports("rootdir") || s.supports("images") {
		for _, id := range slices.Sorted(maps.Keys(st.guests)) {
			g := st.guests[id]
			if (vmid != 0 && id != vmid) || (!s.shared && !st.onNode(g)) {
				continue
			}
			for _, d := range st.guestDisks(g) {
				if !strings.HasPrefix(d.volid, s.name+":") {
					continue
				}
				ct := "rootdir"
				if g.isQemu() || !s.supports("rootdir") {
					ct = "images"
				}
				if content != "" && content != ct {
					continue
				}
				_, _, format, _ := s.parseVolname(volumeName(d.volid))
				if format == "" {
					format = "raw"
				}
				out = append(out, &volume{volid: d.volid, content: ct, format: format, size: d.size, vmid: id, ctime: st.diskCTime(s, d.volid)})
			}
		}
	}
	slices.SortFunc(out, func(a, b *volume) int { return strings.Compare(strings.ToLower(a.volid), strings.ToLower(b.volid)) })
	return out
}

func (v *volume) json() map[string]any {
	m := map[string]any{"volid": v.volid, "content": v.content, "format": v.format, "size": v.size}
	if !v.ctime.IsZero() {
		m["ctime"] = v.ctime.Unix()
	}
	if v.vmid != 0 {
		m["vmid"] = v.vmid
	}
	if v.content == "backup" {
		m["subtype"] = v.subtype
		if v.subtype == "" {
			m["subtype"] = "unknown"
		}
		// Plugin.pm get_subdir_files reads the .notes file's first line.
		if first, _, _ := strings.Cut(v.notes, "\n"); first != "" {
			m["notes"] = first
		}
		if v.protected {
			m["protected"] = 1
		}
		if v.verification != "" {
			m["verification"] = map[string]any{"state": v.verification, "upid": v.verifyUPID}
		}
	}
	return m
}

func (v *volume) public() proxmox.Volume {
	return proxmox.Volume{
		VolID: v.volid, Content: v.content, Format: v.format, Subtype: v.subtype, VMID: v.vmid,
		Size: v.size, CTime: v.ctime, Notes: v.notes, Protected: v.protected, Verification: v.verification,
	}
}

func (c *call) listContent() response {
	s, err := c.st.storage(c.str("storage"))
	if err != nil {
		return die("%s", err)
	}
	if err := c.st.activate(s); err != nil {
		return die("%s", err)
	}
	out := []any{}
	for _, v := range c.st.contentList(s, c.str("content"), c.int("vmid")) {
		if _, resp := c.checkVolumeAccess(0, v.volid, ""); resp.failed() {
			continue
		}
		out = append(out, v.json())
	}
	return ok(out)
}

// contentVolume is the volume a content/{volume} path names, as
// Content.pm's $real_volume_id reads it (a full volid, or a name on
// {storage}), with its type and owner, once the token may act on it
// (PVE::Storage::check_volume_access: a backup needs
// Datastore.AllocateSpace on the storage and VM.Backup on its guest,
// anything else Datastore.Allocate). A refusal is the response to send.
func (c *call) contentVolume() (s *storage, volid, vtype string, owner int, checks []taskCheck, refused *response) {
	sid, volume := c.str("storage"), c.str("volume")
	volid = sid + ":" + volume
	fail := func(r response) (*storage, string, string, int, []taskCheck, *response) {
		return nil, "", "", 0, nil, &r
	}
	if strings.Contains(volume, ":") {
		m := volumeIDRe.FindStringSubmatch(volume)
		if m == nil {
			return fail(paramError(map[string]string{"volume": fmt.Sprintf("unable to parse volume ID '%s'\n", volume)}))
		}
		if sid != "" && m[1] != sid {
			return fail(paramError(map[string]string{"volume": fmt.Sprintf("storage ID mismatch (%s != %s)\n", m[1], sid)}))
		}
		volid, sid = volume, m[1]
	}
	s, err := c.st.storage(sid)
	if err != nil {
		return fail(die("%s", err))
	}
	vtype, owner, _, err = s.parseVolname(volumeName(volid))
	if err != nil {
		return fail(die("%s", err))
	}
	if vtype == "backup" && owner != 0 {
		checks = []taskCheck{{"/storage/" + sid, "Datastore.AllocateSpace"}, {"/vms/" + vmidString(owner), "VM.Backup"}}
	} else {
		checks = []taskCheck{{"/storage/" + sid, "Datastore.Allocate"}}
	}
	for _, ch := range checks {
		if resp, ok := c.tok.check(ch.path, ch.priv); !ok {
			return fail(resp)
		}
	}
	return s, volid, vtype, owner, checks, nil
}

// volumeInfo is GET .../content/{volume} (Content.pm info): the volume's
// path, size, format and its attributes — the whole notes, where the
// listing shows only their first line.
func (c *call) volumeInfo() response {
	s, volid, _, _, _, refused := c.contentVolume()
	if refused != nil {
		return *refused
	}
	if err := c.st.activate(s); err != nil {
		return die("%s", err)
	}
	// What the content listing shows, guest disks included (they live in
	// their guests' configs here).
	list := c.st.contentList(s, "", 0)
	i := slices.IndexFunc(list, func(v *volume) bool { return v.volid == volid })
	if i < 0 {
		// file_size_info of a missing file gives no format.
		return die("volume_size_info on '%s' failed - no format", volid)
	}
	v := list[i]
	out := map[string]any{"path": s.filePath(volumeName(volid)), "size": v.size, "used": v.size, "format": v.format}
	if v.content == "backup" {
		out["notes"] = v.notes
		out["protected"] = boolInt(v.protected)
	}
	return ok(out)
}

// updateVolume is PUT .../content/{volume} (Content.pm updateattributes):
// notes and protected, synchronously. Only backups have notes
// (DirPlugin's update_volume_notes); empty notes remove them. Like PVE,
// which writes the archive's .notes file by name, a volume that does not
// exist is no error.
func (c *call) updateVolume() response {
	s, volid, vtype, _, _, refused := c.contentVolume()
	if refused != nil {
		return *refused
	}
	_, hasNotes := c.params["notes"]
	if hasNotes && vtype != "backup" {
		return die("only backups can have notes")
	}
	if _, hasProt := c.params["protected"]; hasProt && vtype != "backup" {
		return die("only backups support attribute 'protected'")
	}
	if err := c.st.activate(s); err != nil {
		return die("%s", err)
	}
	if _, i := c.st.findVolume(volid); i >= 0 {
		v := s.volumes[i]
		if hasNotes {
			v.notes = c.str("notes")
		}
		if _, hasProt := c.params["protected"]; hasProt {
			v.protected = c.bool("protected")
		}
	}
	return ok(nil)
}

func (c *call) deleteVolume() response {
	st := c.st
	s, volid, _, owner, checks, refused := c.contentVolume()
	if refused != nil {
		return *refused
	}
	sid := s.name
	id := sid
	if owner != 0 {
		id = vmidString(owner) + "@" + sid
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: "imgdel", id: id, vmid: owner, duration: st.sim.taskDuration(), checks: checks,
		work: func(t *task) error { return st.workDeleteVolume(t, volid) },
	})
	return ok(t.id)
}

func (st *state) workDeleteVolume(t *task, volid string) error {
	s, err := st.storage(strings.Split(volid, ":")[0])
	if err != nil {
		return err
	}
	if err := st.activate(s); err != nil {
		return err
	}
	name := volumeName(volid)
	if _, i := st.findVolume(volid); i >= 0 {
		v := s.volumes[i]
		if v.protected {
			return failf("cannot remove protected volume '%s' on '%s'", name, s.name)
		}
		s.volumes = slices.Delete(s.volumes, i, i+1)
		st.useOn(s, v.node).release(v.size)
	} else if g, d := st.findDisk(volid); d.size > 0 || g != nil {
		if g != nil && g.running {
			return failf("lvremove 'pve/%s' error:   Logical volume pve/%s contains a filesystem in use.", name, name)
		}
		st.useOn(s, diskNode(g)).release(d.size)
	} else {
		t.warnf("disk image '%s' does not exist", s.filePath(name))
	}
	t.logf("Removed volume '%s'", volid)
	return nil
}

// VolumeSpec describes a file volume for AddVolume. Zero fields are
// derived from VolID where PVE would derive them.
type VolumeSpec struct {
	VolID     string    // "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"; required
	Node      string    // the node whose storage holds it, for a storage without shared=1; "" means the first
	Size      uint64    // bytes; 0 estimates one
	CTime     time.Time // zero: from a vzdump name, else now
	Notes     string    // backups
	Protected bool      // backups
	// Verification is a PBS snapshot's verify state ("ok", "failed");
	// "" means never verified.
	Verification string
	// Guest is the guest config inside a backup archive, which a restore
	// recreates; nil takes the config of the existing guest with the
	// archive's vmid, or a default guest.
	Guest *GuestSpec
}

// AddVolume puts a file (backup, template, ISO, snippet) on a directory
// storage.
func (s *Sim) AddVolume(sp VolumeSpec) error {
	return s.with(func(st *state) error {
		sid, name, found := strings.Cut(sp.VolID, ":")
		if !found {
			return fmt.Errorf("pvesim: AddVolume: volid %q has no storage", sp.VolID)
		}
		sto, err := st.storage(sid)
		if err != nil {
			return fmt.Errorf("pvesim: AddVolume: %w", err)
		}
		vtype, owner, format, err := sto.parseVolname(name)
		if err != nil || vtype == "images" {
			return fmt.Errorf("pvesim: AddVolume: %q is not a file volume on a directory storage or a PBS snapshot", sp.VolID)
		}
		if _, i := st.findVolume(sp.VolID); i >= 0 {
			return fmt.Errorf("pvesim: AddVolume: %s already exists", sp.VolID)
		}
		node := st.node.name
		if sp.Node != "" {
			if st.nodeByName(sp.Node) == nil {
				return fmt.Errorf("pvesim: AddVolume: no node %q", sp.Node)
			}
			node = sp.Node
		}
		v := &volume{node: node, volid: sp.VolID, content: vtype, format: format, size: sp.Size, ctime: sp.CTime,
			vmid: owner, notes: sp.Notes, protected: sp.Protected, verification: sp.Verification}
		if sp.Verification != "" {
			v.verifyUPID = st.verifyUPID()
		}
		if vtype == "backup" {
			m := vzdumpNameRe.FindStringSubmatch(baseName(name))
			if m != nil {
				if v.ctime.IsZero() {
					v.ctime = archiveTime(m[3])
				}
			}
			kind := kindLXC
			if (m != nil && m[1] == kindQemu) || v.format == "pbs-vm" {
				kind = kindQemu
			}
			if pm := pbsNameRe.FindStringSubmatch(name); pm != nil {
				if v.ctime.IsZero() {
					v.ctime, _ = time.Parse(time.RFC3339, pm[3])
				}
			}
			v.subtype = kind
			g := st.archiveGuest(kind, owner, sp.Guest)
			v.config, v.description = g.conf, g.description
			if v.size == 0 {
				v.size = archiveSize(g, "zstd")
			}
		}
		if v.ctime.IsZero() {
			v.ctime = st.now.Truncate(time.Second)
		}
		if v.size == 0 {
			v.size = 512 * mib
		}
		sto.volumes = append(sto.volumes, v)
		st.useOn(sto, v.node).claim(v.size)
		return nil
	})
}

func baseName(name string) string { return name[strings.LastIndex(name, "/")+1:] }

// archiveGuest is the guest config a new archive of vmid (of kind) holds.
func (st *state) archiveGuest(kind string, vmid int, sp *GuestSpec) *guest {
	if sp != nil {
		tmp := &state{now: st.now, node: st.node, guests: map[int]*guest{}, macSeq: st.macSeq + 100}
		spec := *sp
		spec.VMID = vmid
		spec.Type = kind
		return tmp.addGuest(spec)
	}
	if g, ok := st.guests[vmid]; ok {
		return &guest{kind: g.kind, vmid: vmid, conf: snapshotCopy(g.conf), description: g.description}
	}
	tmp := &state{now: st.now, node: st.node, guests: map[int]*guest{}, macSeq: st.macSeq + 100}
	return tmp.addGuest(GuestSpec{Type: kind, VMID: max(vmid, 100)})
}

// verifyUPID is the UPID of the PBS verify job that checked a snapshot.
func (st *state) verifyUPID() string {
	return "UPID:pbs:000012AB:0001F2C3:00000002:" + fmt.Sprintf("%08X", st.now.Unix()) + ":verificationjob:store1\\x3av\\x2dd6e1\\x2d3f4a:root@pam:"
}

// SetVerification sets a PBS snapshot's verification state ("ok",
// "failed", or "" for never verified), as a PBS verify job would.
func (s *Sim) SetVerification(volid, verify string) error {
	if verify != "" && verify != "ok" && verify != "failed" {
		return fmt.Errorf("pvesim: SetVerification(%s): state %q is not ok or failed", volid, verify)
	}
	return s.with(func(st *state) error {
		sto, i := st.findVolume(volid)
		if i < 0 || sto.typ != "pbs" {
			return fmt.Errorf("pvesim: SetVerification: no PBS snapshot %q", volid)
		}
		v := sto.volumes[i]
		v.verification, v.verifyUPID = verify, ""
		if verify != "" {
			v.verifyUPID = st.verifyUPID()
		}
		return nil
	})
}

// RemoveVolume deletes a file volume at once, without a task.
func (s *Sim) RemoveVolume(volid string) error {
	return s.with(func(st *state) error {
		sto, i := st.findVolume(volid)
		if i < 0 {
			return fmt.Errorf("pvesim: RemoveVolume: no volume %q", volid)
		}
		v := sto.volumes[i]
		st.useOn(sto, v.node).release(v.size)
		sto.volumes = slices.Delete(sto.volumes, i, i+1)
		return nil
	})
}

// Volumes lists what GET /nodes/{node}/storage/{storage}/content would
// list (to a token that may see everything).
func (s *Sim) Volumes(storageName string) []proxmox.Volume {
	var out []proxmox.Volume
	_ = s.with(func(st *state) error {
		if sto, ok := st.storages[storageName]; ok {
			for _, v := range st.contentList(sto, "", 0) {
				out = append(out, v.public())
			}
		}
		return nil
	})
	return out
}
