package pvesim

import (
	"maps"
	"strconv"
	"strings"
	"time"
)

// The default world: a single-node PVE 8.2 host with a self-test guest, a
// golden template, two customer containers, two customer VMs, a local
// directory storage, a thin pool, a USB backup disk, a Proxmox Backup
// Server and the agent's API token.
const (
	// DefaultNode is the node name of the default world.
	DefaultNode = "demo-felhom"
	// DefaultTokenID is the agent's API token in the default world. It
	// holds the FelhomAgent role's privileges on "/".
	DefaultTokenID = "felhom-agent@pve!agent"
	// DefaultTokenSecret is that token's secret. It is well known: the
	// simulator is for tests and demos, never for guarding anything.
	DefaultTokenSecret = "5f1c9a4e-3b7d-4c2a-8e6f-0d9b1a2c3e4f"
	// DefaultUSBUUID is the filesystem UUID of the USB backup disk's
	// partition (/dev/sdb1), mounted at /mnt/usb-backup.
	DefaultUSBUUID = "7c0e2f3a-5b1d-4e8f-9a6c-2d4b8e1f0a37"
	// DefaultTemplate is the OS template volume on storage local.
	DefaultTemplate = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
)

// Guests of the default world.
const (
	SelftestVMID = 9999 // "selftest", running
	GoldenVMID   = 9000 // "golden", a stopped template with an archive on local
	CustomerWeb  = 101  // "web", running, one archive on usb-backup
	CustomerDB   = 102  // "db", running, one archive on usb-backup
	CustomerApp  = 200  // "app", a running VM, one archive on usb-backup and one on pbs-backup
	CustomerCI   = 201  // "build", a stopped VM, one archive on usb-backup
)

// PBSStorage is the default world's Proxmox Backup Server storage; it holds
// a verified, protected snapshot of CustomerWeb and one of CustomerApp,
// both older than their usb-backup archives.
const PBSStorage = "pbs-backup"

const (
	gib = 1 << 30
	mib = 1 << 20
)

// state is everything the simulated host holds. Only the Sim's mutex
// holder touches it.
type state struct {
	sim *Sim
	now time.Time // the clock reading of the current locked section

	// cluster is the cluster's name, "" for a node in no cluster; nodes
	// are its members (one node when there is no cluster), node the
	// first of them: the node a request that names none is answered by,
	// and whose root operations the RootRunner simulates. here is the
	// node whose request or task is being handled (cluster.go), nil
	// outside one.
	cluster   string
	nodes     []*nodeState
	node      *nodeState
	here      *nodeState
	guests    map[int]*guest
	storages  map[string]*storage
	tasks     taskIndex
	tasksByID map[string]*task
	tokens    map[string]*token
	denials   []denial
	faults    []*activeFault
	disks     []*disk
	sensors   []*sensorChip
	usbParts  map[string]string // filesystem UUID → partition device
	mounts    map[string]string // mount target → filesystem UUID

	requests   int
	mutating   int // requests other than GETs
	mutations  map[int]int
	byRoute    map[string]int // requests by route key ("GET /nodes/{node}/tasks/{upid}/log")
	nextPID    uint32
	macSeq     int
	snapSeq    int      // snapshots made so far, for their creation order
	events     []*event // what happens part-way through tasks (locks.go)
	eventSeq   int
	diskCTimes map[string]time.Time // guest disk volid → its creation time as listed (shapes.go)
}

// nodeState is a node's identity, membership and load.
type nodeState struct {
	name        string
	nodeid      int    // corosync's node id; 0 outside a cluster
	ip          string // the address its name resolves to
	online      bool   // a member corosync sees
	downSince   time.Time
	fingerprint string // the served certificate's, for GET /nodes
	bootTime    time.Time
	usage       NodeUsage
}

// NodeUsage is the node's load and capacity as GET /nodes/{node}/status
// reports them. Get it with Sim.NodeUsage, change it, set it back with
// Sim.SetNodeUsage.
type NodeUsage struct {
	CPU         float64    // 0..1 fraction of all CPUs
	LoadAvg     [3]float64 // 1, 5, 15 minutes
	MemoryTotal uint64     // bytes
	MemoryUsed  uint64     // bytes
	SwapTotal   uint64     // bytes
	SwapUsed    uint64     // bytes
	RootFSTotal uint64     // bytes
	RootFSUsed  uint64     // bytes
}

func newWorld(s *Sim, now time.Time) *state {
	st := &state{
		sim:       s,
		now:       now,
		guests:    map[int]*guest{},
		storages:  map[string]*storage{},
		tasksByID: map[string]*task{},
		tokens:    map[string]*token{},
		mutations: map[int]int{},
		byRoute:   map[string]int{},
		nextPID:   0x0001A2F0,
		usbParts:  map[string]string{DefaultUSBUUID: "/dev/sdb1"},
		mounts:    map[string]string{"/mnt/usb-backup": DefaultUSBUUID},
	}
	st.nodes = []*nodeState{newNode(DefaultNode, 0, now)}
	if s.Nodes > 1 {
		st.cluster = ClusterName
		st.nodes = nil
		for i := 1; i <= s.Nodes; i++ {
			st.nodes = append(st.nodes, newNode(ClusterNodeName(i), i, now))
		}
	}
	st.node = st.nodes[0]
	st.tokens[DefaultTokenID] = &token{
		id:     DefaultTokenID,
		secret: DefaultTokenSecret,
		acl:    map[string][]string{"/": FelhomAgentPrivileges()},
	}
	if s.NodeName != "" {
		st.node.name = s.NodeName
	}
	st.disks = defaultDisks()
	st.sensors = defaultSensors()
	if s.Blank {
		st.usbParts, st.mounts = map[string]string{}, map[string]string{}
		return st
	}

	for _, sp := range []StorageSpec{
		{Name: "local", Type: "dir", Path: "/var/lib/vz", Content: []string{"backup", "iso", "vztmpl"},
			Total: 100861726720, Used: 13254635520},
		{Name: "local-lvm", Type: "lvmthin", Content: []string{"images", "rootdir"},
			Total: 366253838336, Used: 41943040000},
		{Name: "usb-backup", Type: "dir", Path: "/mnt/usb-backup", Content: []string{"backup"},
			Total: 1967317295104, Used: 88046829568, PruneBackups: "keep-last=7", MountPoint: true},
		{Name: PBSStorage, Type: "pbs", Content: []string{"backup"}, Server: "pbs.felhom.lan", Datastore: "felhom",
			Total: 3998614552576, Used: 412316860416, PruneBackups: "keep-daily=7,keep-weekly=4"},
	} {
		st.storages[sp.Name] = newStorage(sp)
	}
	st.storages["local"].volumes = append(st.storages["local"].volumes, &volume{
		node:  st.node.name,
		volid: DefaultTemplate, content: "vztmpl", format: "tzst", size: 126839705,
		ctime: time.Date(2024, 11, 18, 10, 12, 44, 0, time.UTC),
	})

	for _, g := range []GuestSpec{
		{VMID: SelftestVMID, Hostname: "selftest", Running: true, Cores: 1, MemoryMB: 256, SwapMB: 256,
			RootFS: "local-lvm:vm-9999-disk-0,size=2G", Features: "nesting=1",
			Description: "felhom-agent self-test container", Tags: "felhom"},
		{VMID: GoldenVMID, Hostname: "golden", Template: true, Cores: 2, MemoryMB: 1024, SwapMB: 512,
			RootFS: "local-lvm:base-9000-disk-0,size=8G", Features: "keyctl=1,nesting=1",
			Description: "felhom golden image\nDebian 12 with the customer stack", Tags: "felhom;golden"},
		{VMID: CustomerWeb, Hostname: "web", Running: true, Cores: 2, MemoryMB: 2048, SwapMB: 512,
			RootFS: "local-lvm:vm-101-disk-0,size=8G", Features: "nesting=1", OnBoot: true,
			Description: "customer web server"},
		{VMID: CustomerDB, Hostname: "db", Running: true, Cores: 2, MemoryMB: 4096, SwapMB: 1024,
			RootFS: "local-lvm:vm-102-disk-0,size=16G", Features: "nesting=1", OnBoot: true,
			Description: "customer database"},
		{Type: kindQemu, VMID: CustomerApp, Hostname: "app", Running: true, Cores: 4, MemoryMB: 8192,
			Disk: "local-lvm:vm-200-disk-0,iothread=1,size=32G", OnBoot: true, Tags: "customer",
			Description: "customer application server"},
		{Type: kindQemu, VMID: CustomerCI, Hostname: "build", Cores: 2, MemoryMB: 4096,
			Disk: "local-lvm:vm-201-disk-0,iothread=1,size=16G", Description: "customer build runner"},
	} {
		st.addGuest(g)
	}

	for _, a := range []struct {
		storage string
		vmid    int
		stamp   string
		notes   string
	}{
		{"local", GoldenVMID, "2026_11_01-02_00_00", "golden image"},
		{"usb-backup", CustomerWeb, "2026_11_19-03_00_01", "web"},
		{"usb-backup", CustomerDB, "2026_11_19-03_00_48", "db"},
		{"usb-backup", CustomerApp, "2026_11_19-03_01_30", "app"},
		{"usb-backup", CustomerCI, "2026_11_19-03_04_12", "build"},
	} {
		g := st.guests[a.vmid]
		name, format := "vzdump-lxc-"+vmidString(a.vmid)+"-"+a.stamp+".tar.zst", "tar.zst"
		if g.isQemu() {
			name, format = "vzdump-qemu-"+vmidString(a.vmid)+"-"+a.stamp+".vma.zst", "vma.zst"
		}
		conf := maps.Clone(g.conf)
		if a.vmid == GoldenVMID {
			// The golden archive was made before the guest became a
			// template; a template's archive restores as a template.
			delete(conf, "template")
			conf["rootfs"] = strings.Replace(conf["rootfs"], ":base-", ":vm-", 1)
		}
		st.storages[a.storage].volumes = append(st.storages[a.storage].volumes, &volume{
			node:    st.node.name,
			volid:   a.storage + ":backup/" + name,
			content: "backup", format: format, subtype: g.kind, vmid: a.vmid,
			size:  archiveSize(g, "zstd"),
			ctime: archiveTime(a.stamp),
			notes: a.notes, config: conf, description: g.description,
		})
	}

	for _, a := range []struct {
		vmid      int
		at        time.Time
		verified  string
		protected bool
	}{
		{CustomerWeb, time.Date(2026, 11, 17, 2, 0, 0, 0, time.UTC), "ok", true},
		{CustomerApp, time.Date(2026, 11, 17, 2, 1, 30, 0, time.UTC), "ok", false},
	} {
		g := st.guests[a.vmid]
		btype := "ct"
		if g.isQemu() {
			btype = "vm"
		}
		st.storages[PBSStorage].volumes = append(st.storages[PBSStorage].volumes, &volume{
			node:    st.node.name,
			volid:   PBSStorage + ":backup/" + btype + "/" + vmidString(a.vmid) + "/" + a.at.Format("2006-01-02T15:04:05Z"),
			content: "backup", format: "pbs-" + btype, subtype: g.kind, vmid: a.vmid,
			size: guestUsedBytes(g), ctime: a.at, notes: g.name(), protected: a.protected,
			config: snapshotCopy(g.conf), description: g.description,
			verification: a.verified, verifyUPID: "UPID:pbs:000012AB:0001F2C3:00000002:6919A5F0:verificationjob:felhom\\x3av\\x2dd6e1\\x2d3f4a:root@pam:",
		})
	}

	if st.cluster != "" {
		st.populateCluster()
	}
	return st
}

// newNode is a node of the world, online, booted some days ago; node i
// of a cluster (1, 2, ...) boots a little later than the one before.
func newNode(name string, nodeid int, now time.Time) *nodeState {
	ip := "127.0.0.1"
	if nodeid > 0 {
		ip = "10.10.10." + strconv.Itoa(10+nodeid)
	}
	return &nodeState{
		name: name, nodeid: nodeid, ip: ip, online: true,
		bootTime: now.Add(-12*24*time.Hour - 3*time.Hour - 17*time.Minute + time.Duration(max(nodeid-1, 0))*41*time.Minute),
		usage: NodeUsage{
			CPU:         0.0342,
			LoadAvg:     [3]float64{0.42, 0.37, 0.31},
			MemoryTotal: 32 * gib,
			MemoryUsed:  9*gib + 412*mib,
			SwapTotal:   8 * gib,
			SwapUsed:    0,
			RootFSTotal: 100861726720,
			RootFSUsed:  13254635520,
		},
	}
}

// archiveTime is the local time a vzdump archive's name encodes (PVE reads
// it back with timelocal).
func archiveTime(stamp string) time.Time {
	t, err := time.ParseInLocation("2006_01_02-15_04_05", stamp, time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}
