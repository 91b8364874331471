package pvesim

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A cluster world: with Sim.Nodes of 2 or more the simulator is a Proxmox
// VE cluster of that many nodes, as pmxcfs and corosync make one
// (pve-cluster src/PVE/Cluster.pm, pve-manager PVE/API2/Cluster.pm and
// PVE/HTTPServer.pm):
//
//   - every node's API answers for every node's paths: a request naming
//     another node is proxied to it (HTTPServer.pm proxyto), so one Sim
//     answers them all; NodeHandler serves the API as one node (the one
//     GET /cluster/status calls local);
//   - vmids are unique cluster-wide (one /etc/pve/.vmlist); a guest lives
//     on one node, and the other nodes' paths do not find it
//     ("Configuration file 'nodes/pve1/lxc/120.conf' does not exist": the
//     node the request is proxied to reads its own directory);
//   - storages are cluster-wide configuration; what a storage without
//     shared=1 holds is each node's own, what a shared one holds every
//     node sees. So is its use: a local storage has one usage figure per
//     node (GET /nodes/{node}/storage and …/status answer the node's
//     own, GET /cluster/resources lists storage/NODE/STORAGE per node,
//     as pvestatd broadcasts them), a shared one a single figure; a
//     backup, a disk or a deletion changes the figure of the node that
//     made it (a disk: its guest's node), a migration moves a guest's
//     local disks' space to the target (storage.go nodeUse, moveGuest);
//     FillStorage and the full:STORAGE fault fill every node's disk of
//     that name, FillStorageOn and full:STORAGE:NODE one node's;
//   - a node that is down answers nothing, and a request another node
//     proxies to it fails as AnyEvent::HTTP fails: 595 with the socket's
//     error as reason phrase, "No route to host" (pve-http-server
//     src/PVE/APIServer/AnyEvent.pm proxy_request); its guests stay in
//     GET /cluster/resources with the status pmxcfs last had, "unknown"
//     once that is older than five minutes (pve-cluster
//     src/pmxcfs/status.c rrd_entry_is_old);
//   - without a majority of nodes online the cluster has no quorum, and
//     what checks it (check_cfs_quorum) dies "cluster not ready - no
//     quorum?".

// ClusterName is the name of the cluster world.
const ClusterName = "felhom"

// ClusterNodeName is the name of node i (1, 2, ...) of the cluster world:
// pve1, pve2, ...
func ClusterNodeName(i int) string { return "pve" + strconv.Itoa(i) }

// Guests the cluster world adds on its second and third node (the default
// world's guests are on the first).
const (
	ClusterShop = 110 // "shop": a running container on pve2
	ClusterERP  = 210 // "erp": a running VM on pve2
	ClusterMail = 120 // "mail": a running, HA-managed container on pve3
	ClusterWiki = 121 // "wiki": a stopped container on pve3
)

// The cluster world's operator token: root@pam's, with every privilege on
// "/", for what an operator does and the agent does not (migrate a guest,
// manage HA). Well known, like DefaultTokenSecret.
const (
	OperatorTokenID     = "root@pam!operator"
	OperatorTokenSecret = "0b7e2c4a-91d3-4f6e-a5b8-3c1d9e7f2a60"
)

// SharedBackupStorage is the cluster world's shared NFS backup storage
// (shared: 1), seen by every node.
const SharedBackupStorage = "nas-backup"

// rrdExpiry is how long pmxcfs keeps a node's last status figures.
const rrdExpiry = 5 * time.Minute

// populateCluster adds what the cluster world has besides the default
// world: guests on the other nodes, a shared NFS storage, and the PBS
// storage marked shared (a datastore every node reaches).
func (st *state) populateCluster() {
	all := slices.Sorted(maps.Keys(knownPrivileges))
	st.tokens[OperatorTokenID] = &token{id: OperatorTokenID, secret: OperatorTokenSecret, acl: map[string][]string{"/": all}}
	st.storages[PBSStorage].shared = true
	st.storages[SharedBackupStorage] = newStorage(StorageSpec{
		Name: SharedBackupStorage, Type: "nfs", Path: "/mnt/pve/" + SharedBackupStorage, Content: []string{"backup"},
		Total: 7996326920192, Used: 1209462790144, Shared: true, PruneBackups: "keep-last=7",
	})
	for _, g := range []GuestSpec{
		{Node: ClusterNodeName(2), VMID: ClusterShop, Hostname: "shop", Running: true, Cores: 2, MemoryMB: 2048,
			OnBoot: true, Description: "customer shop"},
		{Node: ClusterNodeName(2), Type: kindQemu, VMID: ClusterERP, Hostname: "erp", Running: true, Cores: 4,
			MemoryMB: 8192, OnBoot: true, Description: "customer ERP"},
		{Node: ClusterNodeName(3), VMID: ClusterMail, Hostname: "mail", Running: true, Cores: 2, MemoryMB: 2048,
			OnBoot: true, HA: true, Description: "customer mail server"},
		{Node: ClusterNodeName(3), VMID: ClusterWiki, Hostname: "wiki", Cores: 1, MemoryMB: 1024,
			Description: "customer wiki"},
	} {
		if st.nodeByName(g.Node) != nil {
			st.addGuest(g)
		}
	}
}

func (st *state) nodeByName(name string) *nodeState {
	for _, n := range st.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// quorate is corosync's quorum: more than half of the nodes online.
func (st *state) quorate() bool {
	online := 0
	for _, n := range st.nodes {
		if n.online {
			online++
		}
	}
	return online*2 > len(st.nodes)
}

// checkQuorum is PVE::Cluster::check_cfs_quorum.
func (st *state) checkQuorum() error {
	if !st.quorate() {
		return failf("cluster not ready - no quorum?")
	}
	return nil
}

// current is the node whose request or task is being handled, or the
// first node outside one.
func (st *state) current() *nodeState {
	if st.here != nil {
		return st.here
	}
	return st.node
}

// as runs f with n as the node being handled.
func (st *state) as(n *nodeState, f func()) {
	prev := st.here
	st.here = n
	defer func() { st.here = prev }()
	f()
}

// onNode reports whether g is on the node being handled (every guest is,
// outside a request or task).
func (st *state) onNode(g *guest) bool {
	return st.here == nil || g.node == st.here.name
}

// volumeVisible reports whether v on s is seen from the node being
// handled: everything on a shared storage, a local storage's own content.
func (st *state) volumeVisible(s *storage, v *volume) bool {
	return s.shared || st.here == nil || v.node == "" || v.node == st.here.name
}

// guestNode is the node a guest is on, as the vmlist says.
func (st *state) guestNode(g *guest) *nodeState {
	if n := st.nodeByName(g.node); n != nil {
		return n
	}
	return st.node
}

// nodeFresh reports whether pmxcfs still has n's status figures: it is
// online, or went down less than five minutes ago.
func (st *state) nodeFresh(n *nodeState) bool {
	return n.online || st.now.Sub(n.downSince) <= rrdExpiry
}

// proxyUnreachable is what a node answers for a request it proxies to a
// node that is down: AnyEvent::HTTP's 595 with the connect error as the
// reason phrase and no body.
func proxyUnreachable() response {
	return response{status: 595, message: "No route to host", bare: true}
}

// --- handlers ---------------------------------------------------------------

// getClusterStatus is pve-manager PVE/API2/Cluster.pm get_status: in a
// cluster the cluster entry (nodes, version, name, quorate) and one entry
// per member (nodeid, local, online, ip, level); on a node in no cluster
// one "fake entry for local node" (nodeid 0, local, online, its
// subscription level, "" without one).
func (c *call) getClusterStatus() response {
	st := c.st
	here := st.current()
	if st.cluster == "" {
		return ok([]any{map[string]any{
			"type": "node", "id": "node/" + here.name, "name": here.name,
			"ip": here.ip, "local": 1, "nodeid": 0, "online": 1, "level": "",
		}})
	}
	out := []any{map[string]any{
		"type": "cluster", "id": "cluster", "nodes": len(st.nodes), "version": len(st.nodes),
		"name": st.cluster, "quorate": boolInt(st.quorate()),
	}}
	for _, n := range st.nodes {
		out = append(out, map[string]any{
			"type": "node", "id": "node/" + n.name, "name": n.name, "nodeid": n.nodeid,
			"local": boolInt(n == c.via()), "online": boolInt(n.online), "ip": n.ip, "level": "",
		})
	}
	return ok(out)
}

// via is the node that received the request.
func (c *call) via() *nodeState {
	if c.req != nil && c.req.via != nil {
		return c.req.via
	}
	return c.st.node
}

// --- migration --------------------------------------------------------------

// migrateGuest is pve-container src/PVE/API2/LXC.pm migrate_vm (restart
// mode; "lxc live migration is currently not implemented") and qemu-server
// src/PVE/API2/Qemu.pm migrate_vm (online): the request's checks, then a
// vzmigrate or qmigrate worker that holds the guest's "migrate" lock
// (LXC/Migrate.pm and QemuMigrate.pm phase1) and moves it, or, for an
// HA-managed guest, a hamigrate worker that asks the HA manager, which
// migrates it afterwards.
func (c *call) migrateGuest() response {
	st, vmid, kind := c.st, c.int("vmid"), c.kind()
	here := st.current()
	target := c.str("target")
	if target == here.name {
		return paramError(map[string]string{"target": "target is local node."})
	}
	if err := st.checkQuorum(); err != nil {
		return die("%s", err)
	}
	tn := st.nodeByName(target)
	if tn == nil {
		return die("no such cluster node '%s'", target)
	}
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if kind == kindQemu {
		if err := checkLock(g); err != nil {
			return die("%s", err)
		}
		if g.running && !c.bool("online") {
			return die("can't migrate running VM without --online")
		}
	} else if g.running && !c.bool("online") && !c.bool("restart") {
		return die("can't migrate running container without --online or --restart")
	}
	if g.ha != "" {
		return ok(st.haTask(c.tok.id, g, "hamigrate", fmt.Sprintf("Requesting HA migration for %s %d to node %s", g.label(), vmid, target), func(at time.Time) {
			if g, ok := st.guests[vmid]; ok {
				st.as(st.guestNode(g), func() { st.migrateTask(rootUser, kind, vmid, tn, true, true, at) })
			}
		}).id)
	}
	return ok(st.migrateTask(c.tok.id, kind, vmid, tn, c.bool("restart"), c.bool("with-local-disks"), st.now).id)
}

// rootUser is the user the HA stack's own workers run as.
const rootUser = "root@pam"

// migrateTask forks the migration worker of vmid to node tn.
func (st *state) migrateTask(user, kind string, vmid int, tn *nodeState, restart, localDisks bool, at time.Time) *task {
	typ := "vzmigrate"
	if kind == kindQemu {
		typ = "qmigrate"
	}
	var wasRunning bool
	return st.startTask(user, taskSpec{
		typ: typ, id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(), at: at,
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.Migrate"}},
		begin: func(t *task) error {
			g, ok := st.lookup(kind, vmid)
			if !ok {
				return st.missing(kind, vmid)
			}
			if err := checkLock(g); err != nil {
				return err
			}
			wasRunning = g.running
			if kind == kindLXC && g.running && !restart {
				return failf("lxc live migration is currently not implemented")
			}
			stamp := func() string { return t.start.Format("2006-01-02 15:04:05") }
			if kind == kindLXC {
				if err := localMountPoint(g); err != "" {
					// prepare dies; AbstractMigrate logs and dies "migration aborted".
					t.logf("%s ERROR: migration aborted (duration 00:00:00): %s", stamp(), err)
					return failf("migration aborted")
				}
			}
			if !tn.online {
				// prepare's ssh check of the target fails; AbstractMigrate
				// logs it and dies "migration aborted".
				t.logf("%s ERROR: migration aborted (duration 00:00:00): Can't connect to destination address using public key", stamp())
				return failf("migration aborted")
			}
			if kind == kindQemu && g.running && !localDisks {
				for _, d := range st.guestDisks(g) {
					if s := st.storages[storageOf(d.volid)]; s != nil && !s.shared {
						t.logf("%s ERROR: Problem found while scanning volumes - can't live migrate attached local disks without with-local-disks option", stamp())
						t.logf("%s ERROR: migration aborted (duration 00:00:00): Problem found while scanning volumes - can't live migrate attached local disks without with-local-disks option", stamp())
						return failf("migration aborted")
					}
				}
			}
			if kind == kindLXC && g.running {
				// LXC/Migrate.pm prepare: in restart mode the container
				// is shut down before it moves (vm_stop), so it is
				// stopped while the task runs.
				t.logf("%s shutdown CT %d", stamp(), vmid)
				st.setRunning(g, false, t.start)
			}
			t.logf("%s starting migration of %s %d to node '%s' (%s)", stamp(), g.label(), vmid, tn.name, tn.ip)
			g.conf["lock"] = "migrate"
			return nil
		},
		cleanup: func() {
			if g, ok := st.lookup(kind, vmid); ok && g.lock() == "migrate" {
				delete(g.conf, "lock")
			}
		},
		work: func(t *task) error {
			g, ok := st.guests[vmid]
			if !ok {
				return st.missing(kind, vmid)
			}
			delete(g.conf, "lock")
			st.moveGuest(g, tn)
			if wasRunning && kind == kindLXC {
				// LXC/Migrate.pm final_cleanup: "pct start" on the target;
				// its failure (a bind mount's directory missing there,
				// LXC.pm mountpoint_mount) is logged, the container stays
				// stopped on the target and AbstractMigrate ends with
				// "migration problems".
				end := t.end.Format("2006-01-02 15:04:05")
				t.logf("%s start container on target node", end)
				if err := st.missingBindDir(g); err != "" {
					t.logf("%s ERROR: %s", end, err)
					t.logf("%s ERROR: startup for container '%d' failed", end, vmid)
					t.logf("%s ERROR: migration finished with problems (duration %s)", end, hms(t.end.Sub(t.start)))
					return failf("migration problems")
				}
			}
			if wasRunning {
				st.setRunning(g, true, t.end)
			}
			t.logf("%s migration finished successfully (duration %s)", t.end.Format("2006-01-02 15:04:05"), hms(t.end.Sub(t.start)))
			return nil
		},
	})
}

// localMountPoint is pve-container's refusal to migrate a container with
// a bind or device mount point not marked shared=1 (src/PVE/LXC/Migrate.pm
// prepare: "cannot migrate local $type mount point '$ms'"; the type as
// PVE::LXC::Config classify_mountpoint gives it: /dev/... a device, any
// other absolute path a bind mount), for the first such in PVE's order
// (mp0..mp255); "" when there is none.
func localMountPoint(g *guest) string {
	for n := 0; n <= 255; n++ {
		key := "mp" + strconv.Itoa(n)
		v, ok := g.conf[key]
		if !ok {
			continue
		}
		vol, opts, _ := strings.Cut(v, ",")
		if !strings.HasPrefix(vol, "/") || slices.Contains(strings.Split(opts, ","), "shared=1") {
			continue
		}
		typ := "bind"
		if strings.HasPrefix(vol, "/dev/") {
			typ = "device"
		}
		return fmt.Sprintf("cannot migrate local %s mount point '%s'", typ, key)
	}
	return ""
}

// moveGuest is what a finished migration leaves: the guest's config
// (all of it, the description included) on node tn, and its disks on
// local storages with it, their space with them. pve-container
// src/PVE/LXC/Migrate.pm phase1 copies each local volume to the target
// (PVE::Storage::storage_migrate allocates it there) and phase3 frees the
// source's ("destroy local copies": vdisk_free); qemu-server
// src/PVE/QemuMigrate.pm mirrors with-local-disks drives to volumes
// allocated on the target and phase3_cleanup frees the source's the same
// way. So the source node's local storage gets the space back and the
// target's takes it; a shared storage's figure does not change.
func (st *state) moveGuest(g *guest, tn *nodeState) {
	from := g.node
	for _, d := range st.guestDisks(g) {
		if s := st.storages[storageOf(d.volid)]; s != nil && !s.shared {
			st.useOn(s, from).release(d.size)
			st.useOn(s, tn.name).claim(d.size)
		}
	}
	g.node = tn.name
	for _, s := range st.storages {
		for _, v := range s.volumes {
			if v.vmid == g.vmid && v.content != "backup" && !s.shared {
				st.useOn(s, v.node).release(v.size)
				v.node = tn.name
				st.useOn(s, v.node).claim(v.size)
			}
		}
	}
}

// MigrateGuest moves guest vmid to node at once, as a finished migration
// leaves it (its config and its local disks on node; a running guest
// runs there), without a task: for tests that need the outcome, not the
// migration.
func (s *Sim) MigrateGuest(vmid int, node string) error {
	return s.with(func(st *state) error {
		g, ok := st.guests[vmid]
		if !ok {
			return fmt.Errorf("pvesim: MigrateGuest: no guest %d", vmid)
		}
		tn := st.nodeByName(node)
		if tn == nil {
			return fmt.Errorf("pvesim: MigrateGuest: no node %q (the nodes are %v)", node, s.nodeNamesLocked(st))
		}
		if g.lock() != "" {
			return fmt.Errorf("pvesim: MigrateGuest: guest %d is locked (%s)", vmid, g.lock())
		}
		st.moveGuest(g, tn)
		return nil
	})
}

func (s *Sim) nodeNamesLocked(st *state) []string {
	var out []string
	for _, n := range st.nodes {
		out = append(out, n.name)
	}
	return out
}

func hms(d time.Duration) string {
	s := int(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// storageOf is the storage id of a volid.
func storageOf(volid string) string {
	for i := 0; i < len(volid); i++ {
		if volid[i] == ':' {
			return volid[:i]
		}
	}
	return volid
}

// --- HA -----------------------------------------------------------------------

// haTask forks the worker PVE forks for a request on an HA-managed guest
// (hastart, hastop, hamigrate: qemu-server API2/Qemu.pm and pve-container
// API2/LXC/Status.pm): it only tells the HA manager ("Requesting HA start
// for CT 120") and stops at once; the HA stack acts afterwards with its
// own worker (then, run when this one ends), as root@pam.
func (st *state) haTask(user string, g *guest, typ, line string, then func(at time.Time)) *task {
	vmid := g.vmid
	return st.startTask(user, taskSpec{
		typ: typ, id: vmidString(vmid), vmid: vmid, duration: 0,
		intro:  []string{line},
		checks: []taskCheck{{"/vms/" + vmidString(vmid), "VM.PowerMgmt"}},
		work: func(t *task) error {
			if then != nil {
				// The CRM and LRM take a moment to notice the request.
				next := t.end.Add(st.sim.taskDuration())
				st.schedule(next, func() { then(next) })
			}
			return nil
		},
	})
}

// haPower answers a start or stop of an HA-managed guest: a hastart or
// hastop task, the requested state recorded, and the LRM's vzstart/
// qmstart or vzstop/qmstop worker afterwards.
func (c *call) haPower(g *guest, start bool) response {
	st, kind, vmid := c.st, g.kind, g.vmid
	if start {
		g.ha = "started"
		return ok(st.haTask(c.tok.id, g, "hastart", fmt.Sprintf("Requesting HA start for %s %d", g.label(), vmid), func(at time.Time) {
			if g, ok := st.guests[vmid]; ok && !g.running {
				st.as(st.guestNode(g), func() { st.startKindTask(kind, rootUser, vmid, at, st.sim.taskDuration()) })
			}
		}).id)
	}
	g.ha = "stopped"
	return ok(st.haTask(c.tok.id, g, "hastop", fmt.Sprintf("Requesting HA stop for %s %d", g.label(), vmid), func(at time.Time) {
		if g, ok := st.guests[vmid]; ok && g.running {
			st.as(st.guestNode(g), func() {
				st.startTask(rootUser, taskSpec{
					typ: workerType(kind, "stop"), id: vmidString(vmid), vmid: vmid, duration: st.sim.taskDuration(), at: at,
					work: func(t *task) error {
						if g, ok := st.guests[vmid]; ok && g.running {
							st.setRunning(g, false, t.end)
						}
						return nil
					},
				})
			})
		}
	}).id)
}

// haStatus is the "ha" object of a guest's status/current.
func haStatus(g *guest) map[string]any {
	if g.ha == "" {
		return map[string]any{"managed": 0}
	}
	return map[string]any{"managed": 1, "state": g.ha, "group": nil}
}

// --- shaping API --------------------------------------------------------------

// NodeHandler serves the API as node name receives it (the node GET
// /cluster/status calls local); requests naming other nodes are answered
// as that node proxies them. While the node is down its handler answers
// nothing: it closes the connection. It panics for a node the world does
// not have.
func (s *Sim) NodeHandler(name string) http.Handler {
	s.init()
	var n *nodeState
	_ = s.with(func(st *state) error { n = st.nodeByName(name); return nil })
	if n == nil {
		panic(fmt.Sprintf("pvesim: NodeHandler: no node %q", name))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveAs(n, w, r) })
}

// NodeNames lists the world's node names, in order.
func (s *Sim) NodeNames() []string {
	var out []string
	_ = s.with(func(st *state) error {
		for _, n := range st.nodes {
			out = append(out, n.name)
		}
		return nil
	})
	return out
}

// SetNodeOnline takes a node down (false) or brings it back (true). A down
// node answers nothing, requests proxied to it fail with 595, its guests
// keep their last status in the cluster resources for five minutes and
// then show "unknown", and without a majority online the cluster loses
// quorum.
func (s *Sim) SetNodeOnline(name string, online bool) error {
	return s.with(func(st *state) error {
		n := st.nodeByName(name)
		if n == nil {
			return fmt.Errorf("pvesim: SetNodeOnline: no node %q (nodes: %v)", name, slices.Collect(func(yield func(string) bool) {
				for _, n := range st.nodes {
					if !yield(n.name) {
						return
					}
				}
			}))
		}
		if n.online && !online {
			n.downSince = st.now
		}
		n.online = online
		return nil
	})
}

// GuestNode is the node guest vmid is on ("" when there is no such guest).
func (s *Sim) GuestNode(vmid int) string {
	var node string
	_ = s.with(func(st *state) error {
		if g, ok := st.guests[vmid]; ok {
			node = st.guestNode(g).name
		}
		return nil
	})
	return node
}
