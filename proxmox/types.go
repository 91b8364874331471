package proxmox

import (
	"strconv"
	"strings"
	"time"
)

// This file holds the typed values the Client returns and the options its
// mutations take. Field names follow PVE's JSON keys; sizes are bytes
// unless a field says otherwise. Decoders accept the shapes real hosts send
// (numbers as strings, vmid as string before PVE 8.1, loadavg as strings).

// Version is GET /version.
type Version struct {
	Version string `json:"version"` // e.g. "8.2.4"
	Release string `json:"release"` // e.g. "8.2"
	RepoID  string `json:"repoid"`
}

// Node is one entry of GET /nodes.
type Node struct {
	Node    string  `json:"node"`
	Status  string  `json:"status"` // online, offline, unknown
	CPU     float64 `json:"cpu"`    // 0..1 fraction
	MaxCPU  int     `json:"maxcpu"`
	Mem     uint64  `json:"mem"`
	MaxMem  uint64  `json:"maxmem"`
	Disk    uint64  `json:"disk"`
	MaxDisk uint64  `json:"maxdisk"`
	Uptime  int64   `json:"uptime"` // seconds
}

// Usage is PVE's nested {total, used, free} object (memory, rootfs, swap).
type Usage struct {
	Total uint64 `json:"total"`
	Used  uint64 `json:"used"`
	Free  uint64 `json:"free"`
}

// Percent is Used as a percentage of Total; 0 when Total is 0.
func (u Usage) Percent() float64 {
	if u.Total == 0 {
		return 0
	}
	return float64(u.Used) * 100 / float64(u.Total)
}

// NodeStatus is GET /nodes/{node}/status.
type NodeStatus struct {
	CPU        float64    `json:"cpu"`     // 0..1 fraction
	CPUs       int        `json:"cpus"`    // from cpuinfo.cpus
	LoadAvg    [3]float64 `json:"loadavg"` // PVE sends strings
	Memory     Usage      `json:"memory"`
	RootFS     Usage      `json:"rootfs"`
	Swap       Usage      `json:"swap"`
	Uptime     int64      `json:"uptime"` // seconds
	Kernel     string     `json:"kversion"`
	PVEVersion string     `json:"pveversion"`
}

// Resource is one entry of GET /cluster/resources.
type Resource struct {
	ID       string  `json:"id"`   // "lxc/101", "storage/pve/local", "node/pve"
	Type     string  `json:"type"` // lxc, qemu, node, storage, sdn, pool
	Node     string  `json:"node"`
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	Storage  string  `json:"storage"`
	VMID     int     `json:"vmid"`
	CPU      float64 `json:"cpu"`
	MaxCPU   float64 `json:"maxcpu"`
	Mem      uint64  `json:"mem"`
	MaxMem   uint64  `json:"maxmem"`
	Disk     uint64  `json:"disk"`
	MaxDisk  uint64  `json:"maxdisk"`
	Uptime   int64   `json:"uptime"`
	Template bool    `json:"template"`
	Lock     string  `json:"lock"`    // guests: the config lock, e.g. "migrate"
	HAState  string  `json:"hastate"` // HA-managed guests: the requested state
}

// Guest is one guest as GET /nodes/{node}/lxc or /nodes/{node}/qemu lists
// it. Type says which; a vmid is unique across both kinds.
type Guest struct {
	Type     GuestKind `json:"type"` // lxc or qemu
	VMID     int       `json:"vmid"`
	Name     string    `json:"name"`
	Status   string    `json:"status"` // running, stopped
	Lock     string    `json:"lock"`   // "" when unlocked
	Template bool      `json:"template"`
	Tags     string    `json:"tags"`
	CPUs     float64   `json:"cpus"`
	CPU      float64   `json:"cpu"`
	Mem      uint64    `json:"mem"`
	MaxMem   uint64    `json:"maxmem"`
	Disk     uint64    `json:"disk"`
	MaxDisk  uint64    `json:"maxdisk"`
	Uptime   int64     `json:"uptime"`
}

// GuestStatus is GET /nodes/{node}/{lxc|qemu}/{vmid}/status/current. Type
// and VMID come from the request path.
type GuestStatus struct {
	Type      GuestKind `json:"type"`
	VMID      int       `json:"vmid"`
	QMPStatus string    `json:"qmpstatus"` // VMs only: running, paused, stopped, ...
	Name      string    `json:"name"`
	Status    string    `json:"status"` // running, stopped
	Lock      string    `json:"lock"`
	Template  bool      `json:"template"`
	CPUs      float64   `json:"cpus"`
	CPU       float64   `json:"cpu"`
	Mem       uint64    `json:"mem"`
	MaxMem    uint64    `json:"maxmem"`
	Disk      uint64    `json:"disk"`
	MaxDisk   uint64    `json:"maxdisk"`
	Swap      uint64    `json:"swap"`
	MaxSwap   uint64    `json:"maxswap"`
	Uptime    int64     `json:"uptime"`
}

// GuestConfig is GET /nodes/{node}/{lxc|qemu}/{vmid}/config: the fields
// flows use, typed, and every key as PVE sent it in Raw (so nothing is
// lost). Fields marked "CT" or "VM" are only ever set for that kind.
type GuestConfig struct {
	Type         GuestKind // from the request path
	Name         string    // a VM's name; a container's hostname
	Hostname     string    // CT
	Description  string    // as PVE returns it, with a trailing newline, without a guest-API identity line (identity.go)
	OSType       string
	Arch         string
	Cores        int
	Memory       int // MiB
	Swap         int // MiB
	OnBoot       bool
	Template     bool
	Unprivileged bool
	Lock         string
	Tags         string
	Features     string
	Digest       string
	Sockets      int                   // VM
	CPU          string                // VM: the CPU type, e.g. "x86-64-v2-AES"
	Machine      string                // VM: e.g. "q35"
	BIOS         string                // VM: seabios, ovmf
	Boot         string                // VM: e.g. "order=scsi0;net0"
	Agent        string                // VM: the guest agent option as written, e.g. "1" or "enabled=1,fstrim_cloned_disks=1"
	VMState      string                // VM: the saved state volume of a hibernated VM
	RootFS       MountPoint            // CT: key "rootfs"
	MountPoints  map[string]MountPoint // CT: keys "mp0".."mp255"
	Drives       map[string]Drive      // VM: keys "scsi0", "virtio0", "ide2", "efidisk0", ...
	Nets         map[string]Net        // keys "net0".."net31"
	Raw          map[string]string     // every key, values as strings
	// Identity is a container's guest-API identity line from its
	// description (identity.go); nil when it holds none, or more than one.
	Identity *GuestIdentity
	// identityText is every identity line of the description as written,
	// which SetConfig carries over.
	identityText string
}

// Drive is a parsed VM disk value: "local-lvm:vm-200-disk-0,iothread=1,
// size=32G" or "none,media=cdrom".
type Drive struct {
	Volume  string            // first, unnamed element (or file=): a volid, "none" or "cdrom"
	Size    string            // size= as written, e.g. "32G"
	Media   string            // "disk" (PVE's default) or "cdrom"
	Options map[string]string // every key=value, file included
}

// MountPoint is a parsed rootfs/mpN value: "local-lvm:vm-101-disk-0,size=8G"
// or "local-lvm:vm-101-disk-1,mp=/srv,backup=1".
type MountPoint struct {
	Volume  string            // first, unnamed element (or volume=)
	Path    string            // mp=; "/" for rootfs
	Size    string            // size= as written, e.g. "8G"
	Options map[string]string // every key=value, volume included
}

// Net is a parsed netN value: a container's
// "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:..,ip=dhcp,type=veth" or a VM's
// "virtio=BC:24:11:..,bridge=vmbr0,firewall=1".
type Net struct {
	Name     string // CT: the interface name inside the guest
	Model    string // VM: the NIC model, e.g. "virtio"
	Bridge   string
	HWAddr   string // the MAC (a VM's model=MAC or macaddr=)
	LinkDown bool   // link_down=1: the link is disconnected
	IP       string
	Gateway  string
	IP6      string
	Gateway6 string
	Tag      int
	Firewall bool
	Options  map[string]string // every key=value as written
}

// Storage is one storage: from GET /storage (configuration only) or
// GET /nodes/{node}/storage (with usage and state).
type Storage struct {
	Storage string   `json:"storage"`
	Type    string   `json:"type"`    // dir, lvmthin, zfspool, nfs, pbs, ...
	Content []string `json:"content"` // backup, vztmpl, iso, rootdir, images, snippets
	Path    string   `json:"path"`
	Shared  bool     `json:"shared"`
	Enabled bool     `json:"enabled"`
	Active  bool     `json:"active"`
	Total   uint64   `json:"total"`
	Used    uint64   `json:"used"`
	Avail   uint64   `json:"avail"`
	// PruneBackups is the storage's retention option as written, e.g.
	// "keep-last=3,keep-daily=7" (GET /storage only).
	PruneBackups string `json:"prune-backups"`
}

// UsedPercent is Used as a percentage of Total; 0 when Total is 0.
func (s Storage) UsedPercent() float64 { return Usage{Total: s.Total, Used: s.Used}.Percent() }

// Volume is one entry of GET /nodes/{node}/storage/{storage}/content.
type Volume struct {
	VolID     string    `json:"volid"` // "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"
	Content   string    `json:"content"`
	Format    string    `json:"format"`  // tar.zst, raw, subvol, ...
	Subtype   string    `json:"subtype"` // lxc, qemu (backups)
	VMID      int       `json:"vmid"`
	Size      uint64    `json:"size"`
	CTime     time.Time `json:"ctime"` // PVE sends unix seconds
	Notes     string    `json:"notes"` // a listing carries the first line only (Client.VolumeNotes: all of it)
	Protected bool      `json:"protected"`
	// Verification is a PBS snapshot's verification state: "ok",
	// "failed", or "" when it was never verified (pve-storage
	// PBSPlugin.pm list_volumes passes PBS's verification object on).
	Verification string `json:"verification"`
	// Encrypted is a PBS snapshot's key fingerprint, "1" when encrypted
	// with an unknown key, "" when not encrypted.
	Encrypted string `json:"encrypted"`
}

// Snapshot is one entry of GET /nodes/{node}/{lxc|qemu}/{vmid}/snapshot.
// PVE lists the pseudo-snapshot "current" too; the Client drops it.
type Snapshot struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Parent      string    `json:"parent"`
	SnapTime    time.Time `json:"snaptime"` // zero when PVE sent none
	VMState     bool      `json:"vmstate"`  // VMs: the snapshot holds the RAM, so a rollback resumes the VM
}

// SnapshotOptions is POST /nodes/{node}/{lxc|qemu}/{vmid}/snapshot.
type SnapshotOptions struct {
	Name        string // snapname; required
	Description string
	VMState     bool // VMs only: save the RAM of a running VM too
}

// Task is one entry of GET /nodes/{node}/tasks.
type Task struct {
	UPID       UPID      `json:"upid"`
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Node       string    `json:"node"`
	Status     string    `json:"status"` // exit status once stopped; "" or "RUNNING" while running
	StartTime  time.Time `json:"starttime"`
	EndTime    time.Time `json:"endtime"` // zero while running
	ExitStatus string    `json:"-"`
}

// TaskFilter narrows GET /nodes/{node}/tasks. Zero fields do not filter.
type TaskFilter struct {
	VMID       int
	TypeFilter string // worker type, e.g. vzdump
	Source     string // active, archive, all (PVE's default: archive)
	Errors     bool   // only failed tasks
	Limit      int    // PVE's default is 50
	// UserFilter keeps tasks whose user contains it (PVE matches it
	// case-insensitively as a substring: Tasks.pm `userfilter`).
	UserFilter string
	// Since keeps tasks started at or after it (whole seconds; PVE's
	// `since`); zero does not filter.
	Since time.Time
}

// TaskStatus is GET /nodes/{node}/tasks/{upid}/status.
type TaskStatus struct {
	UPID       UPID
	Status     string // "running" or "stopped"
	ExitStatus string // only once stopped: "OK", "WARNINGS: N" or the error text
}

// Running reports whether the task has not stopped yet.
func (s TaskStatus) Running() bool { return s.Status != "stopped" }

// Succeeded reports whether the task stopped with OK or WARNINGS: N.
func (s TaskStatus) Succeeded() bool {
	return !s.Running() && (s.ExitStatus == "OK" || s.Warnings() > 0)
}

// Warnings is N of an exitstatus "WARNINGS: N", or 0.
func (s TaskStatus) Warnings() int {
	rest, ok := strings.CutPrefix(s.ExitStatus, "WARNINGS: ")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// LogLine is one line of GET /nodes/{node}/tasks/{upid}/log.
type LogLine struct {
	N int    `json:"n"` // 1-based line number
	T string `json:"t"` // text
}

// WaitOptions tune [Client.WaitTask]. The zero value polls at once, then
// sleeps a twentieth of the time waited so far, between 25ms and a minute,
// with no overall timeout beyond ctx, and keeps the last 20 log lines for a
// *TaskError.
//
// MinInterval and MaxInterval bound each sleep; they no longer start and
// cap a doubling backoff (which was 250ms doubling to 2s). Waits sharing
// a node's poll sleep at least min(n, 10) times the smallest MinInterval
// among the n of them.
type WaitOptions struct {
	Timeout     time.Duration // overall limit; 0 means only ctx
	MinInterval time.Duration // shortest sleep between polls; 0 means 25ms
	MaxInterval time.Duration // longest sleep between polls; 0 means 1m
	LogTail     int           // log lines kept in a TaskError; 0 means 20

	// Expected is how long the task is expected to run, from how long
	// the same kind of task took on the same guest before; 0 means
	// unknown. A wait that expects a duration E polls sparsely (every
	// quarter of the time waited) until a little before E/2 — a task
	// twice as fast as its history is still noticed within 5% — and once
	// at E itself, so that a task as long as its history is noticed as it
	// ends. The estimate never makes a wait sleep past E: a task longer
	// than expected is waited for by the ordinary schedule from E/2 on.
	// Only a wait alone on its node's poll uses it; waits sharing one
	// follow the youngest's ordinary schedule. (The builtins pass it only
	// for runs nobody follows: a followed task's log is read at polls.)
	Expected time.Duration

	// Polled, if set, is called each time the wait has seen its task
	// still running — its own status poll, or its node's shared active
	// list showing it — so that work that should follow the polls (a
	// followed task's log, at most one read per poll) can. It is called
	// from the goroutine that looked, maybe with the Client's wait state
	// locked: it must return at once and not call the Client.
	Polled func()
}

// Disk is one entry of GET /nodes/{node}/disks/list.
type Disk struct {
	DevPath string `json:"devpath"` // /dev/sda
	Model   string `json:"model"`
	Serial  string `json:"serial"`
	Vendor  string `json:"vendor"`
	Type    string `json:"type"`   // hdd, ssd, nvme, usb
	Health  string `json:"health"` // PASSED, OK, FAILED, UNKNOWN
	WWN     string `json:"wwn"`
	Used    string `json:"used"` // LVM, ZFS, partitions, ...
	Size    uint64 `json:"size"`
	RPM     int    `json:"rpm"`
	GPT     bool   `json:"gpt"`
}

// SMARTData is GET /nodes/{node}/disks/smart.
type SMARTData struct {
	Health     string           `json:"health"` // PASSED, FAILED, UNKNOWN
	Type       string           `json:"type"`   // ata, text
	Text       string           `json:"text"`   // type text (NVMe, SAS)
	Attributes []SMARTAttribute `json:"attributes"`
}

// SMARTAttribute is one ATA attribute row.
type SMARTAttribute struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Value     int    `json:"value"`
	Worst     int    `json:"worst"`
	Threshold int    `json:"threshold"`
	Raw       string `json:"raw"`
	Flags     string `json:"flags"`
	Fail      string `json:"fail"`
}

// RestoreOptions is a restore: POST /nodes/{node}/lxc with ostemplate and
// restore=1 for a container, POST /nodes/{node}/qemu with archive for a
// VM. It creates (or, with Force, overwrites) guest VMID from the backup
// archive Archive.
type RestoreOptions struct {
	// Kind is the kind the archive holds; "" takes it from the archive's
	// name ([ArchiveKind]), as PVE names vzdump archives and PBS snapshots.
	Kind     GuestKind
	VMID     int    // required
	Archive  string // backup volid, e.g. "local:backup/vzdump-lxc-9000-....tar.zst"; required
	Storage  string // target storage of the root disk; "" means PVE's default, "local", which a stock host refuses for container disks
	Force    bool   // overwrite an existing guest
	Unique   bool   // assign new MAC addresses
	Start    bool   // start after restore
	Hostname string // optional override; containers only (a VM's is its name)
	// Config are configuration options set in the restore request itself,
	// over the archive's (pve-container merges them into the restored
	// config; qemu-server's create_vm passes them as override_conf), so
	// that no moment exists in which the guest has the archive's values:
	// a restore drill's net links down and onboot off. Disk keys are
	// refused by PVE.
	Config map[string]string
}

// VzdumpOptions is POST /nodes/{node}/vzdump.
type VzdumpOptions struct {
	VMIDs    []int  // guests to back up; empty with All backs up every guest
	All      bool   // all=1
	Storage  string // target storage; required
	Mode     string // snapshot (default), suspend, stop
	Compress string // zstd (default), gzip, lzo, 0
	Notes    string // notes-template
	Remove   bool   // let PVE prune by the storage's prune-backups
}

// GoldenSpec is what [Privileged.CreateGoldenLXC] creates: a template-ready
// container with keyctl=1, which the API refuses to set for a token (only
// root@pam may change the keyctl feature), hence the fenced root CLI.
type GoldenSpec struct {
	VMID         int    // 100..999999999
	Template     string // OS template volid, e.g. "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
	Hostname     string // DNS label
	Storage      string // root disk storage, e.g. "local-lvm"
	RootFSGB     int    // root disk size in GiB; 0 means 8
	Cores        int    // 0 means 1
	MemoryMB     int    // 0 means 512
	Bridge       string // 0 means "vmbr0"
	Unprivileged bool
}

// SMARTReport is the summary of `smartctl --json -a DEVICE`.
type SMARTReport struct {
	Device       string
	Model        string
	Serial       string
	Passed       bool  // smart_status.passed
	Temperature  int   // °C, 0 when not reported
	PowerOnHours int64 // 0 when not reported
	Reallocated  int64 // ATA attribute 5 raw value (or NVMe media errors); 0 when absent
	// ExitStatus is smartctl's exit code; its bits mean (smartctl(8)):
	// 1 command line, 2 device open, 4 command failed, 8 disk failing,
	// 16 prefail attributes at threshold, 32 attributes were at threshold,
	// 64 error log has errors, 128 self-test log has errors.
	ExitStatus int
}

// SensorReading is one temperature input of `sensors -j`.
type SensorReading struct {
	Chip    string  // e.g. "coretemp-isa-0000"
	Adapter string  // e.g. "ISA adapter"
	Label   string  // e.g. "Package id 0"
	Celsius float64 // tempN_input
	High    float64 // tempN_max, 0 when absent
	Crit    float64 // tempN_crit, 0 when absent
}
