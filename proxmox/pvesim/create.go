package pvesim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Create and restore (POST /nodes/{node}/lxc), after pve-container
// API2/LXC.pm create_vm: the request checks the vmid, privileges, the
// template or archive and the target storage and writes a config holding
// only "lock: create"; the worker (vzcreate, or vzrestore with restore=1)
// builds the guest and, with start=1, starts it.

// createOnlyParams are create parameters that are not config keys.
var createOnlyParams = map[string]bool{
	"node": true, "vmid": true, "ostemplate": true, "storage": true, "restore": true, "force": true,
	"unique": true, "start": true, "password": true, "ssh-public-keys": true, "pool": true,
	"bwlimit": true, "ignore-unpack-errors": true, "ha-managed": true, "unprivileged": true,
}

// ostypeOf guesses the OS type from a template name, as the detected
// distribution of the unpacked template would be.
func ostypeOf(volid string) string {
	name := baseName(volid)
	for _, p := range []struct{ prefix, ostype string }{
		{"debian", "debian"}, {"ubuntu", "ubuntu"}, {"alpine", "alpine"}, {"centos", "centos"},
		{"rockylinux", "centos"}, {"almalinux", "centos"}, {"fedora", "fedora"}, {"archlinux", "archlinux"},
		{"opensuse", "opensuse"}, {"gentoo", "gentoo"}, {"devuan", "devuan"}, {"nixos", "nixos"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.ostype
		}
	}
	return "unmanaged"
}

func (c *call) createGuest() response {
	st := c.st
	vmid := c.int("vmid")
	restore, force := c.bool("restore"), c.bool("force")
	existing := st.guests[vmid]
	vm := "/vms/" + vmidString(vmid)
	if existing != nil && (existing.isQemu() || !st.onNode(existing)) {
		// $same_container_exists is false for a VM's id and for a guest
		// on another node (its config is not in this node's directory),
		// so check_vmid_unused refuses it, naming the kind that holds it
		// and the node it is on.
		return die("%s %d already exists on node '%s'", existing.label(), vmid, existing.node)
	}

	unpriv := c.bool("unprivileged")
	if !restore {
		if !c.has("unprivileged") {
			unpriv = true
		}
		if !unpriv {
			if resp, ok := c.tok.check("/", "Sys.Modify"); !ok {
				return resp
			}
		}
	}
	if c.bool("ha-managed") {
		if resp, ok := c.tok.check("/", "Sys.Console"); !ok {
			return resp
		}
	}
	if existing != nil && restore && force {
		if existing.running {
			return die("can't overwrite running container")
		}
		if existing.conf["protection"] == "1" {
			return die("unable to restore CT %d - protection mode enabled", vmid)
		}
	} else if existing != nil {
		return die("CT %d already exists on node '%s'", vmid, existing.node)
	}
	if c.has("pool") {
		return permError(fmt.Sprintf("pool '%s' does not exist", c.str("pool")))
	}
	if !c.tok.has(vm, "VM.Allocate") && !(restore && force && existing != nil && c.tok.has(vm, "VM.Backup")) {
		return permError("")
	}
	set := map[string]string{}
	for k, v := range c.params {
		if !createOnlyParams[k] {
			set[k] = v
		}
	}
	if resp, ok := c.checkConfigPerms(vmid, map[string]string{}, set, nil, unpriv); !ok {
		return resp
	}
	ostemplate := c.str("ostemplate")
	want := "vztmpl"
	if restore {
		want = "backup"
	}
	if _, resp := c.checkVolumeAccess(vmid, ostemplate, want); resp.failed() {
		return resp
	}
	storageID := c.str("storage")
	if storageID == "" {
		storageID = "local"
	}
	target := storageID
	if rootfs, ok := set["rootfs"]; ok {
		if m := newDiskRe.FindStringSubmatch(rootfs); m != nil {
			target = m[1]
		} else if vol := volumeOf(rootfs); strings.Contains(vol, ":") {
			target = strings.Split(vol, ":")[0]
		}
	}
	if resp, ok := c.checkTargetStorage(target); !ok {
		return resp
	}

	// create_and_lock_config: a new guest exists from here on, holding
	// only its create lock.
	if existing != nil {
		existing.conf["lock"] = "create"
	} else {
		st.guests[vmid] = &guest{node: st.current().name, kind: kindLXC, vmid: vmid, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{}}
	}
	cr := &creation{
		st: st, vmid: vmid, restore: restore, archive: ostemplate, storage: storageID,
		set: set, unique: c.bool("unique"), start: c.bool("start"), overwrite: existing != nil,
		unpriv: unpriv, unprivGiven: c.has("unprivileged"), startDuration: st.sim.taskDuration(),
	}
	typ := "vzcreate"
	if restore {
		typ = "vzrestore"
	}
	checks := []taskCheck{{vm, "VM.Allocate"}, {"/storage/" + target, "Datastore.AllocateSpace"}}
	t := st.startTask(c.tok.id, taskSpec{
		typ: typ, id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(),
		checks: checks, cleanup: cr.abort, work: cr.run,
	})
	return ok(t.id)
}

// checkTargetStorage is create_vm's check_and_activate_storage.
func (c *call) checkTargetStorage(sid string) (response, bool) {
	s, err := c.st.storage(sid)
	if err != nil {
		return die("%s", err), false
	}
	if s.disabled {
		return die("storage '%s' is disabled", sid), false
	}
	if !s.supports("rootdir") {
		return paramError(map[string]string{"storage": fmt.Sprintf("storage '%s' does not support container directories", sid)}), false
	}
	return c.tok.check("/storage/"+sid, "Datastore.AllocateSpace")
}

// creation is one create or restore worker's plan.
type creation struct {
	st          *state
	vmid        int
	restore     bool
	archive     string
	storage     string
	set         map[string]string
	unique      bool
	start       bool
	overwrite   bool
	unpriv      bool
	unprivGiven bool
	// startDuration is how long the vzstart worker forked by start=1 runs.
	startDuration time.Duration
}

func (cr *creation) emsg() string {
	if cr.restore {
		return fmt.Sprintf("unable to restore CT %d -", cr.vmid)
	}
	return fmt.Sprintf("unable to create CT %d -", cr.vmid)
}

// abort undoes the create lock when the worker fails before touching the
// guest: a new guest disappears, an overwritten one keeps its config.
func (cr *creation) abort() {
	g, ok := cr.st.guests[cr.vmid]
	if !ok {
		return
	}
	if !cr.overwrite {
		delete(cr.st.guests, cr.vmid)
	} else if g.lock() == "create" {
		delete(g.conf, "lock")
	}
}

func (cr *creation) run(t *task) error {
	st := cr.st
	var conf map[string]string
	var description string
	var wasTemplate bool
	var rawLXC [][2]string
	sid := strings.Split(cr.archive, ":")[0]
	src := st.storages[sid]
	if cr.restore {
		t.logf("recovering backed-up configuration from '%s'", cr.archive)
		_, i := st.findVolume(cr.archive)
		if src != nil {
			if err := st.activate(src); err != nil {
				cr.abort()
				return failf("%s %s", cr.emsg(), err)
			}
		}
		if src == nil || i < 0 {
			cr.abort()
			return failf("%s volume '%s' does not exist", cr.emsg(), cr.archive)
		}
		arch := src.volumes[i]
		if arch.subtype == kindQemu {
			cr.abort()
			return failf("%s archive '%s' is a VM backup, not a container's", cr.emsg(), cr.archive)
		}
		conf = maps.Clone(arch.config)
		rawLXC = arch.lxc
		description = arch.description
		wasTemplate = conf["template"] == "1"
		delete(conf, "template")
		delete(conf, "parent")
		if !cr.unprivGiven {
			cr.unpriv = conf["unprivileged"] == "1"
		}
	} else {
		if src == nil || !slices.ContainsFunc(src.volumes, func(v *volume) bool { return v.volid == cr.archive }) {
			cr.abort()
			return failf("%s volume '%s' does not exist", cr.emsg(), cr.archive)
		}
		conf = map[string]string{"arch": "amd64", "ostype": ostypeOf(cr.archive)}
	}

	// From here on PVE destroys the config when anything fails.
	old := st.guests[cr.vmid]
	if cr.overwrite && old != nil {
		for _, vol := range st.guestVolumes(old) {
			t.logf("  Logical volume \"%s\" successfully removed.", volumeName(vol))
			st.releaseDisk(vol)
		}
	}
	g := &guest{node: st.current().name, kind: kindLXC, vmid: cr.vmid, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{}}
	st.guests[cr.vmid] = g

	// Disks: the archive's (or the request's) mount points, new volumes
	// on the target storage.
	mps := map[string]string{}
	for k, v := range conf {
		if k == "rootfs" || isIndexed(k, "mp") {
			mps[k] = v
			delete(conf, k)
		}
		if isIndexed(k, "unused") {
			delete(conf, k)
		}
	}
	if v, ok := cr.set["rootfs"]; ok {
		mps = map[string]string{"rootfs": v}
	} else if !cr.restore {
		mps["rootfs"] = cr.storage + ":4"
	}
	for k, v := range cr.set {
		if isIndexed(k, "mp") {
			mps[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(mps)) {
		v := mps[k]
		if strings.HasPrefix(volumeOf(v), "/") {
			g.conf[k] = v
			continue
		}
		target, size, opts := cr.storage, "", ""
		if m := newDiskRe.FindStringSubmatch(v); m != nil {
			target, size, opts = m[1], m[2]+"G", strings.TrimPrefix(m[4], ",")
		} else {
			size = formatSize(parseSize(v))
			var kept []string
			for i, part := range strings.Split(v, ",") {
				if (i == 0 && !strings.Contains(part, "=")) || strings.HasPrefix(part, "size=") || strings.HasPrefix(part, "volume=") {
					continue
				}
				kept = append(kept, part)
			}
			opts = strings.Join(kept, ",")
		}
		vol, err := st.allocDisk(cr.vmid, target, size, false)
		if err != nil {
			delete(st.guests, cr.vmid)
			return failf("%s %s", cr.emsg(), err)
		}
		t.logf("  Logical volume \"%s\" created.", volumeName(vol))
		value := vol
		if opts != "" {
			value += "," + opts
		}
		g.conf[k] = value + ",size=" + size
	}
	if cr.restore {
		t.logf("restoring '%s' now..", cr.archive)
	} else {
		t.logf("extracting archive '%s'", src.filePath(volumeName(cr.archive)))
	}
	t.logf("Total bytes read: %d (%dMiB, 187MiB/s)", guestUsedBytes(g), guestUsedBytes(g)/mib)
	t.logf("Detected container architecture: amd64")

	for k, v := range conf {
		g.conf[k] = v
	}
	g.description = description
	for k, v := range cr.set {
		if k == "rootfs" || isIndexed(k, "mp") {
			continue
		}
		if k == "description" {
			g.description = v
			continue
		}
		g.conf[k] = v
	}
	if cr.restore {
		t.logf("merging backed-up and given configuration..")
		// pve-container src/PVE/LXC/Create.pm sanitize_and_merge_config:
		// only root@pam restores raw lxc.* entries (API2/LXC.pm passes
		// restricted = !$is_root; an API token is never root@pam); for
		// anyone else they are a warning naming each, and left out.
		if len(rawLXC) > 0 {
			msg := "skipping custom lxc options, restore manually as root:\n--------------------------------\n"
			for _, e := range rawLXC {
				msg += e[0] + ": " + e[1] + "\n"
			}
			t.warnf("%s--------------------------------", msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.conf)) {
		if !isIndexed(k, "net") {
			continue
		}
		v := g.conf[k]
		if cr.unique || !strings.Contains(v, "hwaddr=") {
			v = replaceOption(v, "hwaddr", st.newMAC())
		}
		g.conf[k] = v
	}
	if cr.unpriv {
		g.conf["unprivileged"] = "1"
	} else {
		delete(g.conf, "unprivileged")
	}
	if g.conf["hostname"] == "" {
		g.conf["hostname"] = "CT" + vmidString(cr.vmid)
	}
	if g.conf["memory"] == "" {
		g.conf["memory"] = "512"
	}
	if g.conf["swap"] == "" {
		g.conf["swap"] = "512"
	}
	if wasTemplate {
		t.logf("Convert restored container to template...")
		for k, v := range g.conf {
			if k == "rootfs" || isIndexed(k, "mp") {
				g.conf[k] = strings.Replace(v, ":vm-", ":base-", 1)
			}
		}
		g.conf["template"] = "1"
	}
	delete(g.conf, "lock")
	if !cr.restore {
		t.logf("Creating SSH host key 'ssh_host_ed25519_key' - this may take some time ...")
	}
	if cr.start {
		st.startGuestTask(t.user, cr.vmid, t.end, cr.startDuration)
	}
	return nil
}

// replaceOption sets key=value in a property string.
func replaceOption(prop, key, value string) string {
	parts := strings.Split(prop, ",")
	for i, p := range parts {
		if strings.HasPrefix(p, key+"=") {
			parts[i] = key + "=" + value
			return strings.Join(parts, ",")
		}
	}
	return prop + "," + key + "=" + value
}
