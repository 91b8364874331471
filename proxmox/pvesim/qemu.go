package pvesim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// QEMU virtual machines: what differs from containers. Most handlers are
// shared with containers and pick their texts and worker types by the
// endpoint's kind (power.go, snapshots.go, guests.go); this file holds the
// VM config keys (qemu-server PVE/QemuServer.pm, PVE/QemuServer/Drive.pm,
// PVE/QemuServer/Network.pm), the config update (API2/Qemu.pm
// update_vm_api: POST forks a qmconfig worker, PUT applies at once) and
// restore (API2/Qemu.pm create_vm with archive, worker qmrestore;
// QemuServer.pm restore_file_archive / restore_proxmox_backup_archive).

// The guest kinds, as PVE spells them in paths and in vmlist's type.
const (
	kindLXC  = "lxc"
	kindQemu = "qemu"
)

// kindLabel is guest_type: "CT" (pve-container LXC/Config.pm) or "VM"
// (qemu-server QemuConfig.pm).
func kindLabel(kind string) string {
	if kind == kindQemu {
		return "VM"
	}
	return "CT"
}

// workerType is the worker name of an action on a guest of kind:
// pve-container forks vz*, qemu-server qm* (qmstart, qmsnapshot, ...).
func workerType(kind, action string) string {
	if kind == kindQemu {
		return "qm" + action
	}
	return "vz" + action
}

// vmDriveRe are the disk keys of a VM config (Drive.pm: ide0-3, sata0-5,
// scsi0-30, virtio0-15, efidisk0, tpmstate0), in boot-disk preference.
var vmDriveRe = regexp.MustCompile(`^(?:scsi|virtio|sata|ide)(\d+)$|^(?:efidisk0|tpmstate0)$`)

// vmDriveKeys lists the disk keys of conf: scsi, virtio, sata and ide
// disks by number, then efidisk0 and tpmstate0.
func vmDriveKeys(conf map[string]string) []string {
	rank := map[string]int{"scsi": 0, "virtio": 1, "sata": 2, "ide": 3, "efidisk": 4, "tpmstate": 5}
	var keys []string
	for k := range conf {
		if vmDriveRe.MatchString(k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		ma, mb := indexedKey.FindStringSubmatch(a), indexedKey.FindStringSubmatch(b)
		if ra, rb := rank[ma[1]], rank[mb[1]]; ra != rb {
			return ra - rb
		}
		na, _ := strconv.Atoi(ma[2])
		nb, _ := strconv.Atoi(mb[2])
		return na - nb
	})
	return keys
}

// isCDROM reports whether a drive value is a CD drive ("none,media=cdrom",
// "local:iso/x.iso,media=cdrom", "cdrom").
func isCDROM(v string) bool {
	return strings.Contains(v, "media=cdrom") || volumeOf(v) == "cdrom"
}

// driveOf is the disk key of g that holds volid.
func driveOf(g *guest, volid string) string {
	for _, k := range vmDriveKeys(g.conf) {
		if volumeOf(g.conf[k]) == volid {
			return "drive-" + k
		}
	}
	return "drive-unknown"
}

// firstVolume is g's first disk volume, "" when it has none.
func firstVolume(st *state, g *guest) string {
	if vols := st.guestVolumes(g); len(vols) > 0 {
		return vols[0]
	}
	return ""
}

// vzdumpFormatSizeIEC is how qemu-server logs sizes: "8.00 GiB".
func vzdumpFormatSizeIEC(n uint64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.2f GiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.2f MiB", float64(n)/mib)
	}
	return fmt.Sprintf("%.2f KiB", float64(n)/1024)
}

// addVM builds a VM from sp: name, 1 socket of Cores cores, Memory MiB,
// one SCSI disk, one virtio NIC, q35 with OVMF, the guest agent on.
func (st *state) addVM(sp GuestSpec) *guest {
	g := &guest{kind: kindQemu, vmid: sp.VMID, conf: map[string]string{}, snapshots: map[string]*snapshot{}}
	c := g.conf
	c["name"] = sp.Hostname
	if sp.Hostname == "" {
		c["name"] = "VM" + vmidString(sp.VMID)
	}
	c["cores"] = strconv.Itoa(max(sp.Cores, 1))
	c["sockets"] = "1"
	c["memory"] = strconv.Itoa(orDefault(sp.MemoryMB, 2048))
	c["cpu"] = "x86-64-v2-AES"
	c["ostype"] = "l26"
	c["scsihw"] = "virtio-scsi-single"
	c["boot"] = "order=scsi0;net0"
	c["agent"] = "1"
	c["scsi0"] = sp.Disk
	if sp.Disk == "" {
		c["scsi0"] = fmt.Sprintf("local-lvm:vm-%d-disk-0,iothread=1,size=32G", sp.VMID)
	}
	c["net0"] = sp.Net0
	if sp.Net0 == "" {
		c["net0"] = "virtio=" + st.newMAC() + ",bridge=vmbr0,firewall=1"
	}
	c["smbios1"] = fmt.Sprintf("uuid=%08x-5a1e-4c0d-9e2b-%012x", sp.VMID, sp.VMID)
	c["vmgenid"] = fmt.Sprintf("%08x-3c2b-4d1a-8f0e-%012x", sp.VMID, sp.VMID*7)
	return st.registerGuest(g, c, sp)
}

// vmStatus shapes a VM's entry as QemuServer::vmstatus reports it (the
// return schema of GET /nodes/{node}/qemu): no swap and no type; while
// running, memhost (the host's view of the guest's memory) and the QEMU
// machine and version it runs with.
func vmStatus(g *guest, m map[string]any) {
	delete(m, "maxswap")
	delete(m, "swap")
	delete(m, "type")
	if g.running {
		m["memhost"] = m["mem"]
		m["running-machine"] = "pc-q35-9.0+pve0"
		m["running-qemu"] = "9.0.2"
	}
	if g.conf["serial0"] != "" {
		m["serial"] = 1
	}
}

// --- config update ----------------------------------------------------------

// vmConfigOnly are update parameters that are not config keys.
var vmConfigOnly = map[string]bool{
	"node": true, "vmid": true, "digest": true, "delete": true, "revert": true, "skiplock": true,
	"force": true, "background_delay": true, "import-working-storage": true,
}

// vmOptionPrivilege is check_vm_modify_config_perm's privilege per key
// (qemu-server API2/Qemu.pm: $cpuoptions, $memoryoptions, $hwtypeoptions,
// $generaloptions, $vmpoweroptions, $cloudinitoptions; disks need
// VM.Config.Disk, NICs VM.Config.Network).
func vmOptionPrivilege(opt string) string {
	switch {
	case slices.Contains([]string{"cores", "cpu", "cpulimit", "cpuunits", "numa", "sockets", "vcpus", "affinity"}, opt) || isIndexed(opt, "numa"):
		return "VM.Config.CPU"
	case opt == "memory" || opt == "balloon" || opt == "shares":
		return "VM.Config.Memory"
	case vmDriveRe.MatchString(opt) || isIndexed(opt, "unused") || opt == "vmstate":
		return "VM.Config.Disk"
	case isIndexed(opt, "net"):
		return "VM.Config.Network"
	case slices.Contains([]string{"vga", "machine", "bios", "scsihw", "keyboard", "tablet", "watchdog", "audio0", "rng0", "tpmstate0"}, opt) ||
		isIndexed(opt, "usb") || isIndexed(opt, "hostpci") || isIndexed(opt, "serial") || isIndexed(opt, "parallel"):
		return "VM.Config.HWType"
	case slices.Contains([]string{"ciuser", "cipassword", "citype", "ciupgrade", "cicustom", "sshkeys", "nameserver", "searchdomain"}, opt) || isIndexed(opt, "ipconfig"):
		return "VM.Config.Cloudinit"
	}
	return "VM.Config.Options"
}

// updateVMConfig is update_vm_api: the early checks at the request
// (config exists, lock, digest, privileges per key), then the change —
// at once for PUT, in a qmconfig worker for POST. Changes apply at once
// (hot-plug, as PVE applies network, disk and option changes to a running
// VM by default); pending changes are not simulated.
func (c *call) updateVMConfig() response {
	st, vmid := c.st, c.int("vmid")
	if resp, refused := c.skiplockRefused(); refused {
		return resp
	}
	set := map[string]string{}
	for k, v := range c.params {
		if !vmConfigOnly[k] {
			set[k] = v
		}
	}
	dels := splitList(c.str("delete"))
	if len(set) == 0 && len(dels) == 0 && !c.has("revert") {
		return die("no options specified")
	}
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if err := checkLock(g); err != nil {
		return die("%s", err)
	}
	if d := c.str("digest"); d != "" && d != g.digest() {
		return die("detected modified configuration - file changed by other user? Try again.")
	}
	vm := "/vms/" + vmidString(vmid)
	for _, opt := range slices.Concat(slices.Sorted(maps.Keys(set)), dels) {
		if resp, ok := c.tok.check(vm, vmOptionPrivilege(opt)); !ok {
			return resp
		}
		if isIndexed(opt, "net") && set[opt] != "" {
			if resp, ok := c.checkBridge(set[opt]); !ok {
				return resp
			}
		}
	}
	for _, opt := range dels {
		if _, both := set[opt]; both {
			return paramError(map[string]string{"delete": fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", opt, opt)})
		}
	}
	apply := func() error {
		g, ok := st.lookup(kindQemu, vmid)
		if !ok {
			return st.missing(kindQemu, vmid)
		}
		if err := checkLock(g); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(set)) {
			v := set[k]
			switch {
			case k == "description":
				g.description = v
				continue
			case isIndexed(k, "net"):
				v = vmNetWithMAC(st, v)
			}
			g.conf[k] = v
		}
		for _, k := range dels {
			if k == "description" {
				g.description = ""
			}
			delete(g.conf, k)
		}
		return nil
	}
	if c.req.method == "PUT" {
		if err := apply(); err != nil {
			return die("%s", err)
		}
		return ok(nil)
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: "qmconfig", id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		begin: func(*task) error {
			if g, ok := st.lookup(kindQemu, vmid); ok {
				return checkLock(g)
			}
			return st.missing(kindQemu, vmid)
		},
		work: func(*task) error { return apply() },
	})
	return ok(t.id)
}

var vmNICRe = regexp.MustCompile(`^(e1000|e1000-82540em|e1000-82544gc|e1000-82545em|e1000e|i82551|i82557b|i82559er|ne2k_isa|ne2k_pci|pcnet|rtl8139|virtio|vmxnet3)(=[^,]*)?(,.*)?$`)

// vmNetWithMAC gives a NIC without a MAC a new one, as add_random_macs
// does: "virtio,bridge=vmbr0" becomes "virtio=BC:24:11:..,bridge=vmbr0".
func vmNetWithMAC(st *state, v string) string {
	m := vmNICRe.FindStringSubmatch(v)
	if m == nil || (m[2] != "" && m[2] != "=") {
		return v
	}
	return m[1] + "=" + st.newMAC() + m[3]
}

// --- restore ----------------------------------------------------------------

// createVM is POST /nodes/{node}/qemu. Only restores are modelled (the
// agent makes VMs from archives, never from scratch): a create without
// archive answers as a host whose storages cannot hold the new disks.
func (c *call) createVM() response {
	st, vmid := c.st, c.int("vmid")
	archive := c.str("archive")
	if archive == "" {
		return die("unable to create VM %d - creating VMs without an archive is not simulated", vmid)
	}
	if c.has("storage") {
		if resp, ok := c.tok.check("/storage/"+c.str("storage"), "Datastore.AllocateSpace"); !ok {
			return resp
		}
	}
	if c.bool("start") {
		if resp, ok := c.tok.check("/vms/"+vmidString(vmid), "VM.PowerMgmt"); !ok {
			return resp
		}
	}
	force := c.bool("force")
	existing := st.guests[vmid]
	vm := "/vms/" + vmidString(vmid)
	if !c.tok.has(vm, "VM.Allocate") && !(force && existing != nil && existing.isQemu() && c.tok.has(vm, "VM.Backup")) {
		return permError("")
	}
	for _, k := range slices.Sorted(maps.Keys(c.params)) {
		if vmDriveRe.MatchString(k) {
			return paramError(map[string]string{k: "option conflicts with option 'archive'"})
		}
	}
	owner, resp := c.checkVolumeAccess(vmid, archive, "backup")
	if resp.failed() {
		return resp
	}
	_ = owner
	emsg := fmt.Sprintf("unable to restore VM %d -", vmid)
	// create_and_lock_config with allow_existing = force:
	// check_vmid_unused names the kind that holds the id.
	if existing != nil && (!force || !existing.isQemu() || !st.onNode(existing)) {
		return die("%s %s %d already exists on node '%s'", emsg, existing.label(), vmid, existing.node)
	}
	if existing != nil {
		existing.conf["lock"] = "create"
	} else {
		st.guests[vmid] = &guest{node: st.current().name, kind: kindQemu, vmid: vmid, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{}}
	}
	r := &vmRestore{st: st, vmid: vmid, archive: archive, storage: c.str("storage"), unique: c.bool("unique"),
		start: c.bool("start"), overwrite: existing != nil, emsg: emsg, override: map[string]string{}}
	for k, v := range c.params {
		if !createVMOnly[k] {
			r.override[k] = v
		}
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: "qmrestore", id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: []taskCheck{{vm, "VM.Allocate"}}, cleanup: r.abort, work: r.run,
	})
	if existing != nil && !c.tok.has(vm, "VM.Allocate") {
		t.checks = []taskCheck{{vm, "VM.Backup"}}
	}
	return ok(t.id)
}

// createVMOnly are create parameters that are not config keys.
var createVMOnly = map[string]bool{
	"node": true, "vmid": true, "archive": true, "storage": true, "force": true, "unique": true,
	"start": true, "pool": true, "bwlimit": true, "live-restore": true, "ha-managed": true,
	"import-working-storage": true,
}

// vmRestore is one qmrestore worker's plan.
type vmRestore struct {
	st        *state
	vmid      int
	archive   string
	storage   string
	unique    bool
	start     bool
	overwrite bool
	emsg      string
	override  map[string]string
}

// abort drops the create lock: a new VM disappears, an existing one keeps
// its config (create_vm removes the lock and leaves the rest).
func (r *vmRestore) abort() {
	g, ok := r.st.guests[r.vmid]
	if !ok {
		return
	}
	if !r.overwrite {
		delete(r.st.guests, r.vmid)
	} else if g.lock() == "create" {
		delete(g.conf, "lock")
	}
}

func (r *vmRestore) run(t *task) error {
	st := r.st
	g, ok := st.lookup(kindQemu, r.vmid)
	if !ok {
		return failf("%s %s", r.emsg, st.missing(kindQemu, r.vmid))
	}
	if g.running {
		r.abort()
		return failf("%s vm is running", r.emsg)
	}
	src, i := st.findVolume(r.archive)
	if src != nil {
		if err := st.activate(src); err != nil {
			r.abort()
			return failf("%s %s", r.emsg, err)
		}
	}
	if src == nil || i < 0 {
		r.abort()
		return failf("%s volume '%s' does not exist", r.emsg, r.archive)
	}
	arch := src.volumes[i]
	if arch.subtype != kindQemu {
		r.abort()
		return failf("%s archive '%s' is not a VM backup (it holds a %s)", r.emsg, r.archive, arch.subtype)
	}
	conf := maps.Clone(arch.config)
	pbs := src.typ == "pbs"
	if pbs {
		t.logf("restore image: %s", r.archive)
	} else {
		t.logf("restore vma archive: %s -q -d -c %s | vma extract -v -r /var/tmp/vzdumptmp%d.fifo - /var/tmp/vzdumptmp%d",
			decompressor(arch.format), src.filePath(volumeName(r.archive)), t.upid.PID, t.upid.PID)
		t.logf("CFG: size: %d name: qemu-server.conf", len(conf)*38)
	}
	old := g
	if r.overwrite {
		for _, vol := range st.guestVolumes(old) {
			t.logf("  Logical volume \"%s\" successfully removed.", volumeName(vol))
			st.releaseDisk(vol)
		}
	}
	ng := &guest{node: st.current().name, kind: kindQemu, vmid: r.vmid, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{}}
	st.guests[r.vmid] = ng
	wasTemplate := conf["template"] == "1"
	delete(conf, "template")
	delete(conf, "parent")
	for _, k := range vmDriveKeys(conf) {
		v := conf[k]
		if isCDROM(v) {
			continue
		}
		target := r.storage
		if target == "" {
			target = strings.Split(volumeOf(v), ":")[0]
		}
		size := formatSize(parseSize(v))
		vol, err := st.allocVMDisk(r.vmid, target, size)
		if err != nil {
			delete(st.guests, r.vmid)
			return failf("%s %s", r.emsg, err)
		}
		t.logf("  Logical volume \"%s\" created.", volumeName(vol))
		t.logf("new volume ID is '%s'", vol)
		var kept []string
		for j, part := range strings.Split(v, ",") {
			if (j == 0 && !strings.Contains(part, "=")) || strings.HasPrefix(part, "size=") || strings.HasPrefix(part, "file=") {
				continue
			}
			kept = append(kept, part)
		}
		conf[k] = strings.Join(append([]string{vol}, kept...), ",") + ",size=" + size
		if !pbs {
			t.logf("map 'drive-%s' to '%s' (write zeros = 0)", k, "/dev/pve/"+volumeName(vol))
		}
	}
	used := guestUsedBytes(&guest{kind: kindQemu, vmid: r.vmid, conf: conf})
	if pbs {
		t.logf("restore image complete (bytes=%d, duration=12.34s, speed=%.2fMB/s)", used, float64(used)/mib/12.34)
	} else {
		t.logf("total bytes read %d, sparse bytes %d (%.3g%%)", used, used/3, 100.0/3)
	}
	for k, v := range r.override {
		if k == "description" {
			arch.description = v
			continue
		}
		conf[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		if isIndexed(k, "net") && (r.unique || !strings.Contains(conf[k], "=")) {
			if m := vmNICRe.FindStringSubmatch(conf[k]); m != nil {
				conf[k] = m[1] + "=" + st.newMAC() + m[3]
			}
		}
	}
	if wasTemplate {
		t.logf("Convert to template.")
		for _, k := range vmDriveKeys(conf) {
			conf[k] = strings.Replace(conf[k], ":vm-", ":base-", 1)
		}
		conf["template"] = "1"
	}
	ng.conf = conf
	ng.description = arch.description
	t.logf("rescan volumes...")
	if r.start {
		t.logf("Execute autostart")
		st.startKindTask(kindQemu, t.user, r.vmid, t.end, st.sim.taskDuration())
	}
	return nil
}

// decompressor is the command that unpacks a vma archive of format.
func decompressor(format string) string {
	switch {
	case strings.HasSuffix(format, ".zst"):
		return "zstd"
	case strings.HasSuffix(format, ".gz"):
		return "zcat"
	case strings.HasSuffix(format, ".lzo"):
		return "lzop"
	}
	return "cat"
}
