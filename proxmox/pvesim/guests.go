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

// LXC guests: their configuration (the keys of /etc/pve/lxc/VMID.conf),
// run state and snapshots, the API handlers that read and change them, and
// the methods tests use to shape them. Texts and the order of checks follow
// pve-container (src/PVE/API2/LXC.pm, LXC/Status.pm, LXC/Config.pm) and
// pve-guest-common (AbstractConfig.pm).

type guest struct {
	node        string // the node it is on (cluster.go)
	ha          string // an HA resource's requested state, "started" or "stopped"; "" when not HA-managed
	kind        string // "lxc" or "qemu"; see qemu.go for VMs
	vmid        int
	conf        map[string]string // config keys except description and digest
	lxc         [][2]string       // raw lxc.* entries in file order (containers)
	description string            // as written; read back per line with "\n"
	running     bool
	startedAt   time.Time
	pid         int
	snapshots   map[string]*snapshot
}

func (g *guest) lock() string     { return g.conf["lock"] }
func (g *guest) isTemplate() bool { return g.conf["template"] == "1" }

func (g *guest) name() string {
	if g.isQemu() {
		if n := g.conf["name"]; n != "" {
			return n
		}
		return "VM" + vmidString(g.vmid)
	}
	if h := g.conf["hostname"]; h != "" {
		return h
	}
	return "CT" + vmidString(g.vmid)
}

func (g *guest) isQemu() bool { return g.kind == kindQemu }

// label is PVE's guest_type: "CT" for a container, "VM" for a VM.
func (g *guest) label() string { return kindLabel(g.kind) }

// GuestSpec describes a guest for AddGuest. Zero fields take the defaults
// noted; Config adds or overrides raw config keys (an empty value removes
// the key).
type GuestSpec struct {
	// Type is "lxc" (or "") for a container, "qemu" for a VM. A VM takes
	// Hostname as its name, Disk as its scsi0 and Net0 as its net0; the
	// container-only fields (RootFS, OSType, Privileged, Features) do not
	// apply to it.
	Type        string
	Node        string            // the node it is on; "" means the first (cluster.go)
	HA          bool              // HA-managed (ha-manager add), requested state started or stopped as it runs
	VMID        int               // 100..999999999; required
	Hostname    string            // "" means CT<VMID> (VM<VMID> for a VM)
	Disk        string            // VMs: scsi0; "" means local-lvm:vm-<VMID>-disk-0,iothread=1,size=32G
	Running     bool              // running for a few hours (never a template)
	Template    bool              // template=1
	Cores       int               // 0 means 1
	MemoryMB    int               // 0 means 512
	SwapMB      int               // 0 means 512
	RootFS      string            // "" means local-lvm:vm-<VMID>-disk-0,size=8G
	Net0        string            // "" means eth0 on vmbr0 with DHCP and a generated MAC
	OSType      string            // "" means debian
	Privileged  bool              // false: unprivileged=1, PVE's default for new guests
	Features    string            // e.g. "nesting=1"
	Description string            // stored as written; read back with a newline per line
	Tags        string            // "a;b"
	OnBoot      bool              // onboot=1
	Lock        string            // a config lock held from the start, e.g. "backup"
	Config      map[string]string // raw keys applied last; "" removes a key
	// LXC are a container's raw lxc.* lines in order, e.g.
	// {"lxc.idmap", "u 0 200000 65536"}: written into the config file as
	// "key: value" after the other keys and returned by GET .../config as
	// the "lxc" array [[key, value], ...] (pve-container
	// src/PVE/LXC/Config.pm parse_pct_config, write_pct_config).
	LXC [][2]string
}

// GuestView is a copy of one guest's state.
type GuestView struct {
	Node        string            // the node it is on
	HA          string            // HA-managed: the requested state (started, stopped); "" otherwise
	Type        string            // "lxc" or "qemu"
	VMID        int               // the guest id
	Name        string            // the hostname, or CT<VMID>
	Status      string            // running or stopped
	Lock        string            // "" when unlocked
	Template    bool              // template=1
	Description string            // as stored (the API adds a newline per line)
	Config      map[string]string // every key of the config file, as written
	Snapshots   []SnapshotView    // oldest first
}

// SnapshotView is one snapshot of a guest.
type SnapshotView struct {
	Name        string    // the snapshot name
	Parent      string    // the snapshot it was taken after, "" for the first
	Description string    // the snapshot's description
	SnapTime    time.Time // when it was taken, second resolution
}

func (st *state) addGuest(sp GuestSpec) *guest {
	if sp.Type == kindQemu {
		return st.addVM(sp)
	}
	g := &guest{kind: kindLXC, vmid: sp.VMID, conf: map[string]string{}, snapshots: map[string]*snapshot{}}
	c := g.conf
	c["arch"] = "amd64"
	c["hostname"] = sp.Hostname
	if sp.Hostname == "" {
		c["hostname"] = "CT" + vmidString(sp.VMID)
	}
	c["cores"] = strconv.Itoa(max(sp.Cores, 1))
	c["memory"] = strconv.Itoa(orDefault(sp.MemoryMB, 512))
	c["swap"] = strconv.Itoa(orDefault(sp.SwapMB, 512))
	c["rootfs"] = sp.RootFS
	if sp.RootFS == "" {
		c["rootfs"] = fmt.Sprintf("local-lvm:vm-%d-disk-0,size=8G", sp.VMID)
	}
	c["net0"] = sp.Net0
	if sp.Net0 == "" {
		c["net0"] = "name=eth0,bridge=vmbr0,hwaddr=" + st.newMAC() + ",ip=dhcp,type=veth"
	}
	c["ostype"] = sp.OSType
	if sp.OSType == "" {
		c["ostype"] = "debian"
	}
	if !sp.Privileged {
		c["unprivileged"] = "1"
	}
	setIf(c, "features", sp.Features)
	g.lxc = slices.Clone(sp.LXC)
	return st.registerGuest(g, c, sp)
}

// registerGuest finishes a new guest of either kind: the options every kind's
// config shares (tags, lock, onboot, template), the spec's own config
// overrides (an empty value removes a key), its description and power
// state; then it registers the guest. c is g's config.
func (st *state) registerGuest(g *guest, c map[string]string, sp GuestSpec) *guest {
	setIf(c, "tags", sp.Tags)
	setIf(c, "lock", sp.Lock)
	if sp.OnBoot {
		c["onboot"] = "1"
	}
	if sp.Template {
		c["template"] = "1"
	}
	for k, v := range sp.Config {
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	g.description = sp.Description
	g.node = st.current().name
	if sp.Node != "" {
		g.node = sp.Node
	}
	if sp.HA {
		g.ha = "stopped"
		if sp.Running {
			g.ha = "started"
		}
	}
	if sp.Running && !sp.Template {
		st.setRunning(g, true, st.now.Add(-time.Duration(sp.VMID%97+3)*time.Hour))
	}
	st.guests[sp.VMID] = g
	return g
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func setIf(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func (st *state) setRunning(g *guest, running bool, at time.Time) {
	g.running = running
	if running {
		g.startedAt = at
		st.nextPID++
		g.pid = int(st.nextPID)
	} else {
		g.startedAt, g.pid = time.Time{}, 0
	}
}

// newMAC is a locally generated address in Proxmox's OUI (BC:24:11), as
// PVE 8 assigns to new interfaces.
func (st *state) newMAC() string {
	st.macSeq++
	n := st.macSeq
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", 0x5A, (n>>8)&0xff, n&0xff)
}

func (g *guest) view() GuestView {
	v := GuestView{
		Node: g.node, HA: g.ha, Type: g.kind, VMID: g.vmid, Name: g.name(), Status: "stopped", Lock: g.lock(), Template: g.isTemplate(),
		Description: g.description, Config: maps.Clone(g.conf),
	}
	if g.running {
		v.Status = "running"
	}
	for _, s := range g.sortedSnapshots() {
		v.Snapshots = append(v.Snapshots, SnapshotView{
			Name: s.name, Parent: s.conf["parent"], Description: s.description, SnapTime: s.snaptime,
		})
	}
	return v
}

// configPathOf is the config file of a guest of kind: lxc/VMID.conf or
// qemu-server/VMID.conf below the node's directory of /etc/pve.
func (st *state) configPathOf(kind string, vmid int) string {
	dir := "lxc"
	if kind == kindQemu {
		dir = "qemu-server"
	}
	return fmt.Sprintf("nodes/%s/%s/%d.conf", st.current().name, dir, vmid)
}

// lookup is the guest vmid if it is of kind: PVE finds a guest by its
// config file, which lives in the directory of its kind, so a VM is no
// container to the container endpoints (and the other way round).
func (st *state) lookup(kind string, vmid int) (*guest, bool) {
	g, ok := st.guests[vmid]
	if !ok || g.kind != kind || !st.onNode(g) {
		return nil, false
	}
	return g, true
}

// missing is load_config's failure for a guest of kind that does not exist.
func (st *state) missing(kind string, vmid int) error {
	return failf("Configuration file '%s' does not exist", st.configPathOf(kind, vmid))
}

// loadGuest is PVE's load_config for the kind the endpoint serves: the
// guest or the 500 PVE answers.
func (c *call) loadGuest(vmid int) (*guest, response) {
	g, ok := c.st.lookup(c.kind(), vmid)
	if !ok {
		return nil, die("Configuration file '%s' does not exist", c.st.configPathOf(c.kind(), vmid))
	}
	return g, response{}
}

// checkLock is AbstractConfig::check_lock: "CT is locked (backup)" or
// "VM is locked (backup)", with no vmid in the text.
func checkLock(g *guest) error {
	if l := g.lock(); l != "" {
		return failf("%s is locked (%s)", g.label(), l)
	}
	return nil
}

// --- sizes and live figures --------------------------------------------

var sizeRe = regexp.MustCompile(`(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)`)

// parseSize is PVE's parse_size for the size= of a mount point; bytes.
func parseSize(v string) uint64 {
	m := sizeRe.FindStringSubmatch(v)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m[2]]
	return uint64(f * mult)
}

// formatSize is PVE's format_size: the largest whole unit.
func formatSize(b uint64) string {
	for _, u := range []struct {
		s string
		n uint64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if b >= u.n && b%u.n == 0 {
			return strconv.FormatUint(b/u.n, 10) + u.s
		}
	}
	return strconv.FormatUint(b, 10)
}

// maxDisk is the size of the root disk: a container's rootfs, a VM's
// first disk (its boot disk, as vmstatus reports it).
func (g *guest) maxDisk() uint64 {
	if g.isQemu() {
		for _, d := range vmDriveKeys(g.conf) {
			if !isCDROM(g.conf[d]) {
				return parseSize(g.conf[d])
			}
		}
		return 0
	}
	return parseSize(g.conf["rootfs"])
}

func atoiOr(s string, d int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return d
}

// status is PVE::LXC::vmstatus for one guest: deterministic figures that
// look like a lightly loaded host.
func (st *state) status(g *guest) map[string]any {
	maxmem := uint64(atoiOr(g.conf["memory"], 512)) * mib
	maxswap := uint64(atoiOr(g.conf["swap"], 512)) * mib
	maxdisk := g.maxDisk()
	m := map[string]any{
		"vmid": g.vmid, "name": g.name(), "type": g.kind, "status": "stopped",
		"cpus": atoiOr(g.conf["cores"], st.cpuCount()), "maxmem": maxmem, "maxswap": maxswap, "maxdisk": maxdisk,
		"cpu": 0, "mem": 0, "swap": 0, "disk": 0, "uptime": 0,
		"netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if g.running {
		up := int64(st.now.Sub(g.startedAt) / time.Second)
		m["status"] = "running"
		m["uptime"] = up
		m["pid"] = g.pid
		m["cpu"] = float64(g.vmid%5+1) * 0.0037
		m["mem"] = maxmem / 100 * uint64(18+g.vmid%23)
		m["disk"] = maxdisk / 100 * uint64(22+g.vmid%31)
		m["netin"] = up*1375 + int64(g.vmid)
		m["netout"] = up*422 + int64(g.vmid)
		m["diskread"] = uint64(up)*4096 + 284319744
		m["diskwrite"] = uint64(up)*2048 + 19607552
	}
	if g.isTemplate() {
		m["template"] = 1
	}
	if g.isQemu() {
		vmStatus(g, m)
	}
	if l := g.lock(); l != "" {
		m["lock"] = l
	}
	if t := g.conf["tags"]; t != "" {
		m["tags"] = t
	}
	return m
}

// --- read handlers ------------------------------------------------------

func (c *call) listGuests() response {
	out := []any{}
	for _, vmid := range slices.Sorted(maps.Keys(c.st.guests)) {
		if g := c.st.guests[vmid]; g.kind == c.kind() && c.st.onNode(g) && c.tok.has("/vms/"+vmidString(vmid), "VM.Audit") {
			out = append(out, c.st.status(c.st.guests[vmid]))
		}
	}
	return ok(out)
}

func (c *call) guestStatus() response {
	g, fail := c.loadGuest(c.int("vmid"))
	if g == nil {
		return fail
	}
	m := c.st.status(g)
	m["ha"] = haStatus(g)
	if g.isQemu() {
		m["qmpstatus"] = m["status"]
	}
	return ok(m)
}

func (c *call) getGuestConfig() response {
	if c.has("snapshot") && c.bool("current") {
		msg := "cannot use 'snapshot' parameter with 'current'"
		return paramError(map[string]string{"snapshot": msg, "current": msg})
	}
	g, fail := c.loadGuest(c.int("vmid"))
	if g == nil {
		return fail
	}
	if name := c.str("snapshot"); name != "" {
		s, found := g.snapshots[name]
		if !found {
			return die("snapshot '%s' does not exist", name)
		}
		conf := maps.Clone(s.conf)
		conf["snaptime"] = strconv.FormatInt(s.snaptime.Unix(), 10)
		return ok(typedConfig(g.kind, conf, s.description, g.digest()))
	}
	out := typedConfig(g.kind, g.conf, g.description, g.digest())
	if len(g.lxc) > 0 {
		pairs := make([][]string, len(g.lxc))
		for i, e := range g.lxc {
			pairs[i] = []string{e[0], e[1]}
		}
		out["lxc"] = pairs
	}
	return ok(out)
}

// --- shaping API -----------------------------------------------------------

// lxcKeyPattern is a raw lxc.* key as parse_pct_config reads it.
var lxcKeyPattern = regexp.MustCompile(`^lxc\.[a-z0-9_\-.]+$`)

// AddGuest adds a guest to the world (replacing none: the vmid must be
// free).
func (s *Sim) AddGuest(sp GuestSpec) error {
	if sp.VMID < proxmox.MinVMID || sp.VMID > proxmox.MaxVMID {
		return fmt.Errorf("pvesim: AddGuest: vmid %d out of range 100-999999999", sp.VMID)
	}
	if sp.Type != "" && sp.Type != kindLXC && sp.Type != kindQemu {
		return fmt.Errorf("pvesim: AddGuest %d: type %q is not lxc or qemu", sp.VMID, sp.Type)
	}
	if sp.Hostname != "" && checkFormatValue("dns-name", sp.Hostname) != "" {
		return fmt.Errorf("pvesim: AddGuest %d: hostname %q is not a DNS name", sp.VMID, sp.Hostname)
	}
	for _, e := range sp.LXC {
		if sp.Type == kindQemu || !lxcKeyPattern.MatchString(e[0]) || strings.ContainsAny(e[1], "\n\x00") {
			return fmt.Errorf("pvesim: AddGuest %d: lxc entry %q is not a container's raw lxc.* key and value", sp.VMID, e)
		}
	}
	return s.with(func(st *state) error {
		if g, ok := st.guests[sp.VMID]; ok {
			return fmt.Errorf("pvesim: AddGuest: %s %d already exists", g.label(), sp.VMID)
		}
		g := st.addGuest(sp)
		for _, vol := range st.guestVolumes(g) {
			st.claimDisk(vol)
		}
		return nil
	})
}

// RemoveGuest removes a guest and its disks at once, without a task.
func (s *Sim) RemoveGuest(vmid int) error {
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: RemoveGuest: no guest %d", vmid)
		}
		for _, vol := range st.guestVolumes(g) {
			st.releaseDisk(vol)
		}
		delete(st.guests, vmid)
		return nil
	})
}

// SetGuestStatus sets a guest "running" or "stopped" at once.
func (s *Sim) SetGuestStatus(vmid int, status string) error {
	if status != "running" && status != "stopped" {
		return fmt.Errorf("pvesim: SetGuestStatus(%d): status %q must be running or stopped", vmid, status)
	}
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: SetGuestStatus: no guest %d", vmid)
		}
		if g.running != (status == "running") {
			st.setRunning(g, status == "running", st.now)
		}
		return nil
	})
}

// SetGuestOption sets config key of guest vmid to value at once, or
// with "" removes it, as root editing the guest's config file does: no
// check of the key or value, no task. For tests that need a config PVE
// only lets root write (a bind mount point) and undo.
func (s *Sim) SetGuestOption(vmid int, key, value string) error {
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: SetGuestOption: no guest %d", vmid)
		}
		if value == "" {
			delete(g.conf, key)
		} else {
			g.conf[key] = value
		}
		return nil
	})
}

// guestLocks are the lock values PVE's schema allows.
var guestLocks = []string{"backup", "create", "destroyed", "disk", "fstrim", "migrate", "mounted", "rollback", "snapshot", "snapshot-delete"}

// SetGuestLock sets (or with "" clears) a guest's config lock, as if a
// task or an operator held it.
func (s *Sim) SetGuestLock(vmid int, lock string) error {
	if lock != "" && !slices.Contains(guestLocks, lock) {
		return fmt.Errorf("pvesim: SetGuestLock(%d): lock %q is not one of %s", vmid, lock, strings.Join(guestLocks, ", "))
	}
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: SetGuestLock: no guest %d", vmid)
		}
		if lock == "" {
			delete(g.conf, "lock")
		} else {
			g.conf["lock"] = lock
		}
		return nil
	})
}

// Guest returns a copy of guest vmid's state.
func (s *Sim) Guest(vmid int) (GuestView, bool) {
	var v GuestView
	var found bool
	_ = s.with(func(st *state) error {
		if g, ok := st.guests[vmid]; ok {
			v, found = g.view(), true
		}
		return nil
	})
	return v, found
}

// Guests returns copies of every guest, by vmid.
func (s *Sim) Guests() []GuestView {
	var out []GuestView
	_ = s.with(func(st *state) error {
		for _, vmid := range slices.Sorted(maps.Keys(st.guests)) {
			out = append(out, st.guests[vmid].view())
		}
		return nil
	})
	return out
}
