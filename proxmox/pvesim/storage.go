package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Storages: their configuration, usage and activation, after pve-storage
// (PVE/Storage.pm, Storage/DirPlugin.pm). What they hold is in volumes.go.

type storage struct {
	name    string
	typ     string // dir, lvmthin, ...
	content []string
	path    string
	total   uint64
	// used is the bytes used: of a shared storage (shared=1), the one
	// figure the cluster has; of a local one, the first node's. usedOn
	// holds the other nodes' figures of a local storage, and a node not
	// in it is at baseUsed (the spec's Used: nodes set up alike). Read
	// and change them through state.useOn, never directly.
	used     uint64
	usedOn   map[string]uint64
	baseUsed uint64
	shared   bool
	disabled bool
	prune    string
	mountpnt bool // is_mountpoint: active only while something is mounted at path
	volumes  []*volume
	// pbs: the Proxmox Backup Server and datastore (PBSPlugin.pm
	// properties server, datastore, username, fingerprint).
	server, datastore string
	// pool: a zfspool storage's dataset (ZFSPoolPlugin.pm pool).
	pool string
	// verifyNew: a pbs datastore's verify-new, the state a new snapshot
	// is verified to ("" when the datastore does not verify new ones).
	verifyNew string
}

// pbsUser is the user every pbs storage logs in as (its username).
const pbsUser = "felhom@pbs"

// pbsRepository is the repository string proxmox-backup-client is given.
func (s *storage) pbsRepository() string {
	return pbsUser + "@" + s.server + ":8007:" + s.datastore
}

type volume struct {
	node        string // on a storage without shared=1: the node it is on ("" in no cluster: every node)
	volid       string
	content     string
	format      string
	size        uint64
	ctime       time.Time
	vmid        int
	subtype     string
	notes       string
	protected   bool
	config      map[string]string // backups: the guest config inside the archive
	lxc         [][2]string       // backups of containers: the config's raw lxc.* entries
	description string            // backups: the guest description inside the archive
	// verification is a PBS snapshot's verify state: "ok", "failed", or
	// "" before any verify job ran.
	verification string
	verifyUPID   string
}

// StorageSpec describes a storage for AddStorage.
type StorageSpec struct {
	Name         string   // storage id, e.g. "nas"
	Type         string   // "" means dir; lvmthin, zfspool, nfs, ... are accepted
	Content      []string // content types: backup, vztmpl, iso, rootdir, images, snippets, import
	Path         string   // dir-like storages: "" means /mnt/pve/<Name>
	Total        uint64   // bytes; 0 means 1 TiB
	Used         uint64   // bytes
	Shared       bool     // shared=1 (listed, not otherwise simulated)
	Disabled     bool     // disable=1: inactive, refused for use
	PruneBackups string   // e.g. "keep-last=3"; "" keeps everything
	// MountPoint is PVE's is_mountpoint: the storage is active only while
	// a filesystem is mounted at Path (see RootRunner's mount, Unmount).
	MountPoint bool
	// Server and Datastore are a "pbs" storage's Proxmox Backup Server
	// and datastore; "" means pbs.example.lan and "store1". A pbs storage
	// holds backups only (its Content is ["backup"] whatever is given).
	Server, Datastore string
	// Pool is a "zfspool" storage's dataset; "" means rpool/data.
	Pool string
	// VerifyNew makes a "pbs" datastore verify each new snapshot (PBS's
	// datastore option verify-new) with this outcome: "ok" or "failed";
	// "" leaves new snapshots unverified.
	VerifyNew string
}

func newStorage(sp StorageSpec) *storage {
	s := &storage{
		name: sp.Name, typ: sp.Type, content: slices.Sorted(slices.Values(sp.Content)), path: sp.Path,
		total: sp.Total, used: sp.Used, baseUsed: sp.Used, shared: sp.Shared, disabled: sp.Disabled, prune: sp.PruneBackups,
		mountpnt: sp.MountPoint,
	}
	if s.typ == "" {
		s.typ = "dir"
	}
	switch s.typ {
	case "pbs":
		s.server, s.datastore, s.verifyNew = sp.Server, sp.Datastore, sp.VerifyNew
		if s.server == "" {
			s.server = "pbs.example.lan"
		}
		if s.datastore == "" {
			s.datastore = "store1"
		}
		s.content = []string{"backup"}
	case "zfspool":
		s.pool = sp.Pool
		if s.pool == "" {
			s.pool = "rpool/data"
		}
	}
	if s.total == 0 {
		s.total = 1 << 40
	}
	if s.path == "" && s.hasPath() {
		s.path = "/mnt/pve/" + s.name
	}
	return s
}

// hasPath reports whether the storage keeps files in a directory.
func (s *storage) hasPath() bool {
	switch s.typ {
	case "dir", "nfs", "cifs", "cephfs", "btrfs", "glusterfs":
		return true
	}
	return false
}

func (s *storage) supports(content string) bool { return slices.Contains(s.content, content) }

// nodeUse is one usage counter of a storage: what node sees of it. A
// storage with shared=1 is one filesystem for the cluster and has one
// counter; a storage without it is each node's own disk of that name
// (pve-storage src/PVE/Storage.pm storage_info runs on the node asked, and
// pve-manager PVE/Service/pvestatd.pm update_storage_status broadcasts
// every node's figures as pve2-storage/NODE/STORAGE), so it has one per
// node. The first node's counter is storage.used, so the one-node world
// keeps exactly one.
type nodeUse struct {
	s    *storage
	node string // "": storage.used (a shared storage, or the first node)
}

// useOn is storage s's counter as node sees it ("" the first node).
func (st *state) useOn(s *storage, node string) nodeUse {
	if s.shared || node == "" || node == st.node.name {
		return nodeUse{s: s}
	}
	return nodeUse{s: s, node: node}
}

// useHere is storage s's counter as the node being handled sees it.
func (st *state) useHere(s *storage) nodeUse { return st.useOn(s, st.current().name) }

func (u nodeUse) used() uint64 {
	if u.node == "" {
		return u.s.used
	}
	if n, ok := u.s.usedOn[u.node]; ok {
		return n
	}
	return u.s.baseUsed
}

func (u nodeUse) set(n uint64) {
	if u.node == "" {
		u.s.used = n
		return
	}
	if u.s.usedOn == nil {
		u.s.usedOn = map[string]uint64{}
	}
	u.s.usedOn[u.node] = n
}

func (u nodeUse) avail() uint64 {
	if used := u.used(); used < u.s.total {
		return u.s.total - used
	}
	return 0
}

// claim and release account for space a volume takes.
func (u nodeUse) claim(n uint64) { u.set(min(u.used()+n, u.s.total)) }
func (u nodeUse) release(n uint64) {
	used := u.used()
	u.set(used - min(n, used))
}

// setAll sets every node's counter of s to used (one for a shared
// storage).
func (s *storage) setAll(used uint64) {
	s.used, s.baseUsed = used, used
	clear(s.usedOn)
}

// activate is PVE's activate_storage: a disabled storage or an unmounted
// mount point cannot be used.
func (st *state) activate(s *storage) error {
	if s.disabled {
		return failf("storage '%s' is disabled", s.name)
	}
	if s.mountpnt {
		if _, mounted := st.mounts[s.path]; !mounted {
			return failf("unable to activate storage '%s' - directory is expected to be a mount point but is not mounted: '%s'", s.name, s.path)
		}
	}
	return nil
}

func (st *state) storage(name string) (*storage, error) {
	s, ok := st.storages[name]
	if !ok {
		return nil, failf("storage '%s' does not exist", name)
	}
	return s, nil
}

// storageVisible reports whether the token may see storage sid in listings.
func (c *call) storageVisible(sid string) bool {
	p := "/storage/" + sid
	return c.tok.has(p, "Datastore.Audit") || c.tok.has(p, "Datastore.AllocateSpace")
}

func (c *call) listStorageConfig() response {
	out := []any{}
	for _, name := range slices.Sorted(maps.Keys(c.st.storages)) {
		s := c.st.storages[name]
		if !c.storageVisible(name) || (c.has("type") && s.typ != c.str("type")) {
			continue
		}
		m := map[string]any{"storage": name, "type": s.typ, "content": strings.Join(s.content, ","), "digest": c.st.storageDigest()}
		if s.hasPath() {
			m["path"] = s.path
		}
		switch s.typ {
		case "lvmthin":
			m["thinpool"], m["vgname"] = "data", "pve"
		case "zfspool":
			m["pool"], m["sparse"] = s.pool, 1
		case "pbs":
			m["server"], m["datastore"], m["username"] = s.server, s.datastore, pbsUser
			m["fingerprint"] = "4f:1b:9a:0c:6e:d2:77:83:5a:10:c4:e9:3b:2f:88:61:07:fa:5d:c3:19:ae:42:b6:90:7e:13:cd:58:24:af:01"
		}
		if s.shared {
			m["shared"] = 1
		}
		if s.disabled {
			m["disable"] = 1
		}
		if s.prune != "" {
			m["prune-backups"] = s.prune
		}
		if s.mountpnt {
			m["is_mountpoint"] = "yes"
		}
		out = append(out, m)
	}
	return ok(out)
}

// storageDigest is the SHA-1 PVE gives storage.cfg, here of its
// simulated form.
func (st *state) storageDigest() string {
	h := sha1.New()
	for _, name := range slices.Sorted(maps.Keys(st.storages)) {
		s := st.storages[name]
		fmt.Fprintf(h, "%s: %s\n\tcontent %s\n\tpath %s\n\tprune-backups %s\n\n", s.typ, name, strings.Join(s.content, ","), s.path, s.prune)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (c *call) listStorageStatus() response {
	out := []any{}
	want := splitList(c.str("content"))
	for _, name := range slices.Sorted(maps.Keys(c.st.storages)) {
		s := c.st.storages[name]
		if !c.storageVisible(name) || (c.has("storage") && name != c.str("storage")) {
			continue
		}
		if c.bool("enabled") && s.disabled {
			continue
		}
		if len(want) > 0 && !slices.ContainsFunc(want, s.supports) {
			continue
		}
		active := c.st.activate(s) == nil
		u := c.st.useHere(s)
		m := map[string]any{
			"storage": name, "type": s.typ, "content": strings.Join(s.content, ","),
			"shared": boolInt(s.shared), "enabled": boolInt(!s.disabled), "active": boolInt(active),
			"total": 0, "used": 0, "avail": 0,
		}
		if active {
			m["total"], m["used"], m["avail"] = s.total, u.used(), u.avail()
			m["used_fraction"] = float64(u.used()) / float64(s.total)
		}
		out = append(out, m)
	}
	return ok(out)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fillStorage makes a storage full, used = total: on node, or on every
// node for "" (a shared storage has one figure either way).
func (st *state) fillStorage(name, node string) error {
	s, ok := st.storages[name]
	if !ok {
		return fmt.Errorf("no storage %q", name)
	}
	if node == "" {
		s.setAll(s.total)
		return nil
	}
	if st.nodeByName(node) == nil {
		return fmt.Errorf("no node %q", node)
	}
	st.useOn(s, node).set(s.total)
	return nil
}

// --- shaping API ------------------------------------------------------------

// AddStorage adds a storage to the node.
func (s *Sim) AddStorage(sp StorageSpec) error {
	if why := checkFormatValue("pve-storage-id", sp.Name); why != "" {
		return fmt.Errorf("pvesim: AddStorage: name: %s", strings.TrimSpace(why))
	}
	for _, ct := range sp.Content {
		if !contentTypes[ct] {
			return fmt.Errorf("pvesim: AddStorage(%s): content type %q is not one of images, rootdir, vztmpl, iso, backup, snippets, import", sp.Name, ct)
		}
	}
	if sp.VerifyNew != "" && (sp.Type != "pbs" || (sp.VerifyNew != "ok" && sp.VerifyNew != "failed")) {
		return fmt.Errorf("pvesim: AddStorage(%s): VerifyNew %q needs type pbs and ok or failed", sp.Name, sp.VerifyNew)
	}
	if sp.Total != 0 && sp.Used > sp.Total {
		return fmt.Errorf("pvesim: AddStorage(%s): used %d exceeds total %d", sp.Name, sp.Used, sp.Total)
	}
	return s.with(func(st *state) error {
		if _, ok := st.storages[sp.Name]; ok {
			return fmt.Errorf("pvesim: AddStorage: storage %q already exists", sp.Name)
		}
		st.storages[sp.Name] = newStorage(sp)
		return nil
	})
}

// SetStorageUsage sets a storage's size and use in bytes, the use on every
// node (a storage without shared=1 is each node's own; SetStorageUsageOn
// sets one node's).
func (s *Sim) SetStorageUsage(name string, total, used uint64) error {
	if total == 0 || used > total {
		return fmt.Errorf("pvesim: SetStorageUsage(%s): want 0 < used (%d) <= total (%d)", name, used, total)
	}
	return s.with(func(st *state) error {
		sto, ok := st.storages[name]
		if !ok {
			return fmt.Errorf("pvesim: SetStorageUsage: no storage %q", name)
		}
		sto.total = total
		sto.setAll(used)
		return nil
	})
}

// SetStorageUsageOn sets the use in bytes of storage name as node sees it:
// that node's own, for a storage without shared=1; the cluster's, for a
// shared one. The size stays the storage's.
func (s *Sim) SetStorageUsageOn(name, node string, used uint64) error {
	return s.with(func(st *state) error {
		sto, ok := st.storages[name]
		if !ok {
			return fmt.Errorf("pvesim: SetStorageUsageOn: no storage %q", name)
		}
		if st.nodeByName(node) == nil {
			return fmt.Errorf("pvesim: SetStorageUsageOn: no node %q (the nodes are %v)", node, s.nodeNamesLocked(st))
		}
		if used > sto.total {
			return fmt.Errorf("pvesim: SetStorageUsageOn(%s): used %d exceeds total %d", name, used, sto.total)
		}
		st.useOn(sto, node).set(used)
		return nil
	})
}

// FillStorage leaves no free space on storage name, on every node (a
// storage without shared=1 is each node's own disk: all of them fill;
// FillStorageOn fills one node's): a vzdump to it fails the way a full
// disk makes it fail (the archive write hits "No space left on device").
func (s *Sim) FillStorage(name string) error { return s.FillStorageOn(name, "") }

// FillStorageOn leaves no free space on storage name as node sees it: that
// node's own disk for a storage without shared=1, the one filesystem of a
// shared one; node "" means every node.
func (s *Sim) FillStorageOn(name, node string) error {
	return s.with(func(st *state) error {
		if err := st.fillStorage(name, node); err != nil {
			return fmt.Errorf("pvesim: FillStorage: %w", err)
		}
		return nil
	})
}

// Storages lists the storages with their usage as the first node sees it;
// StoragesOn names a node.
func (s *Sim) Storages() []proxmox.Storage {
	out, _ := s.StoragesOn("")
	return out
}

// StoragesOn lists the storages with their usage as node sees it ("" the
// first node): its own figures of the storages without shared=1.
func (s *Sim) StoragesOn(node string) ([]proxmox.Storage, error) {
	var out []proxmox.Storage
	err := s.with(func(st *state) error {
		if node != "" && st.nodeByName(node) == nil {
			return fmt.Errorf("pvesim: StoragesOn: no node %q (the nodes are %v)", node, s.nodeNamesLocked(st))
		}
		for _, name := range slices.Sorted(maps.Keys(st.storages)) {
			sto := st.storages[name]
			u := st.useOn(sto, node)
			out = append(out, proxmox.Storage{
				Storage: name, Type: sto.typ, Content: slices.Clone(sto.content), Path: sto.path,
				Shared: sto.shared, Enabled: !sto.disabled, Active: st.activate(sto) == nil,
				Total: sto.total, Used: u.used(), Avail: u.avail(), PruneBackups: sto.prune,
			})
		}
		return nil
	})
	return out, err
}
