package pvesim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The node: version, status, the cluster resource index, the next free
// vmid, and the local disks with their SMART data.

const (
	pveVersion = "8.2.4"
	pveRelease = "8.2"
	pveRepoID  = "faa83925c9641325"
	kernel     = "6.8.12-4-pve"
	kernelVer  = "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4 (2024-11-06T15:04Z)"
	cpuModel   = "Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz"
	cpuCores   = 6
	cpuFlags   = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb pti ssbd ibrs ibpb stibp tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid mpx rdseed adx smap clflushopt intel_pt xsaveopt xsavec xgetbv1 xsaves dtherm ida arat pln pts hwp hwp_notify hwp_act_window hwp_epp md_clear flush_l1d arch_capabilities"
)

func (st *state) cpuCount() int { return cpuCores }

func (st *state) uptime() int64 { return st.uptimeOf(st.current()) }

func (st *state) uptimeOf(n *nodeState) int64 { return int64(st.now.Sub(n.bootTime) / time.Second) }

func (c *call) getVersion() response {
	return ok(map[string]any{"version": pveVersion, "release": pveRelease, "repoid": pveRepoID})
}

// nodeEntry is n's entry in GET /nodes and the cluster resources
// (pve-manager PVE/API2Tools.pm extract_node_stats): its figures while
// online; a node that is down is "offline", with its capacities while
// pmxcfs still has them.
func (c *call) nodeEntry(n *nodeState) map[string]any {
	u := n.usage
	m := map[string]any{"node": n.name, "type": "node", "id": "node/" + n.name, "status": "online", "level": ""}
	if n.online {
		m["cpu"], m["mem"], m["disk"], m["uptime"] = u.CPU, u.MemoryUsed, u.RootFSUsed, c.st.uptimeOf(n)
	} else {
		m["status"] = "offline"
	}
	if c.st.nodeFresh(n) {
		m["maxcpu"], m["maxmem"], m["maxdisk"] = cpuCores, u.MemoryTotal, u.RootFSTotal
	} else {
		delete(m, "level")
	}
	return m
}

func (c *call) getNodes() response {
	out := []any{}
	for _, n := range c.st.nodes {
		m := c.nodeEntry(n)
		if fp := n.fingerprint; fp != "" && n.online {
			m["ssl_fingerprint"] = fp
		}
		out = append(out, m)
	}
	return ok(out)
}

func usageJSON(total, used uint64) map[string]any {
	return map[string]any{"total": total, "used": used, "free": total - min(used, total)}
}

func (c *call) getNodeStatus() response {
	u := c.st.current().usage
	load := make([]string, 3)
	for i, l := range u.LoadAvg {
		load[i] = fmt.Sprintf("%.2f", l)
	}
	rootfs := usageJSON(u.RootFSTotal, u.RootFSUsed)
	rootfs["avail"] = rootfs["free"]
	return ok(map[string]any{
		"cpu":  u.CPU,
		"wait": 0.0011,
		"idle": 0,
		"cpuinfo": map[string]any{
			"cpus": cpuCores, "cores": cpuCores, "sockets": 1, "model": cpuModel, "mhz": "2100.000",
			"hvm": "1", "user_hz": 100, "flags": cpuFlags,
		},
		"loadavg":    load,
		"memory":     usageJSON(u.MemoryTotal, u.MemoryUsed),
		"swap":       usageJSON(u.SwapTotal, u.SwapUsed),
		"rootfs":     rootfs,
		"ksm":        map[string]any{"shared": 0},
		"uptime":     c.st.uptime(),
		"kversion":   "Linux " + kernel + " " + kernelVer,
		"pveversion": "pve-manager/" + pveVersion + "/" + pveRepoID,
		"current-kernel": map[string]any{
			"sysname": "Linux", "release": kernel, "version": kernelVer, "machine": "x86_64",
		},
		"boot-info": map[string]any{"mode": "efi", "secureboot": 0},
	})
}

func (c *call) getClusterResources() response {
	typ := c.str("type")
	st := c.st
	out := []any{}
	if typ == "" || typ == "vm" {
		for _, vmid := range slices.Sorted(maps.Keys(st.guests)) {
			if !c.tok.has("/vms/"+vmidString(vmid), "VM.Audit") {
				continue
			}
			out = append(out, st.vmResource(st.guests[vmid]))
		}
	}
	if typ == "" || typ == "node" {
		for _, n := range st.nodes {
			m := c.nodeEntry(n)
			m["cgroup-mode"] = 2
			out = append(out, m)
		}
	}
	if typ == "" || typ == "storage" {
		for _, n := range st.nodes {
			for _, name := range slices.Sorted(maps.Keys(st.storages)) {
				s := st.storages[name]
				if !c.storageVisible(name) {
					continue
				}
				m := map[string]any{
					"id": "storage/" + n.name + "/" + name, "type": "storage", "storage": name,
					"node": n.name, "plugintype": s.typ, "content": strings.Join(s.content, ","),
					"shared": boolInt(s.shared), "status": "available", "disk": st.useOn(s, n.name).used(), "maxdisk": s.total,
				}
				if !st.nodeFresh(n) {
					m = map[string]any{"id": m["id"], "type": "storage", "storage": name, "node": n.name, "status": "unknown"}
				} else if st.activate(s) != nil {
					m["status"], m["disk"], m["maxdisk"] = "unknown", 0, 0
				}
				out = append(out, m)
			}
		}
	}
	if typ == "" || typ == "sdn" {
		for _, n := range st.nodes {
			if !st.nodeFresh(n) {
				continue
			}
			out = append(out, map[string]any{
				"id": "sdn/" + n.name + "/localnetwork", "type": "sdn", "sdn": "localnetwork",
				"node": n.name, "status": "ok",
			})
		}
	}
	return ok(out)
}

// vmResource is a guest's entry in the cluster resources
// (API2Tools.pm extract_vm_stats and Cluster.pm resources): its figures
// while pmxcfs has them, "unknown" and no figures once its node has been
// down five minutes; lock and tags from the config; hastate when
// HA-managed.
func (st *state) vmResource(g *guest) map[string]any {
	n := st.guestNode(g)
	m := map[string]any{
		"id": g.kind + "/" + vmidString(g.vmid), "vmid": g.vmid, "type": g.kind, "node": n.name, "status": "unknown",
	}
	if st.nodeFresh(n) {
		s := st.status(g)
		m["template"], m["maxcpu"] = 0, s["cpus"]
		for _, k := range []string{"name", "status", "cpu", "mem", "maxmem", "disk", "maxdisk", "uptime", "netin", "netout", "diskread", "diskwrite"} {
			if v, ok := s[k]; ok {
				m[k] = v
			}
		}
		if g.isTemplate() {
			m["template"] = 1
		}
	}
	if l := g.lock(); l != "" {
		m["lock"] = l
	}
	if t := g.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if g.ha != "" {
		m["hastate"] = g.ha
	}
	return m
}

// getNextID answers a string although the schema says integer, like PVE.
func (c *call) getNextID() response {
	if c.has("vmid") {
		vmid := c.int("vmid")
		if _, taken := c.st.guests[vmid]; taken {
			return paramError(map[string]string{"vmid": fmt.Sprintf("VM %d already exists", vmid)})
		}
		return ok(strconv.Itoa(vmid))
	}
	for id := 100; ; id++ {
		if _, taken := c.st.guests[id]; !taken {
			return ok(strconv.Itoa(id))
		}
	}
}

// --- disks --------------------------------------------------------------

// disk is one local block device with its SMART state.
type disk struct {
	dev, model, serial, vendor, wwn, byID string
	typ                                   string // ssd, hdd, usb, nvme
	size                                  uint64
	rpm                                   int
	gpt                                   bool
	used                                  string
	partitions                            []partition

	passed       bool
	reallocated  int
	temperature  int
	powerOnHours int
	powerCycles  int
	wearout      int // ssd: percent left; 0: N/A
	firmware     string
}

type partition struct {
	dev, fstype, uuid string
	size              uint64
}

func defaultDisks() []*disk {
	return []*disk{
		{
			dev: "/dev/sda", model: "Samsung SSD 870 EVO 500GB", serial: "S6PXNZ0T412345A", vendor: "ATA",
			wwn: "0x5002538f4123456a", byID: "ata-Samsung_SSD_870_EVO_500GB_S6PXNZ0T412345A",
			typ: "ssd", size: 500107862016, gpt: true, used: "LVM",
			passed: true, temperature: 34, powerOnHours: 12873, powerCycles: 211, wearout: 98, firmware: "SVT02B6Q",
		},
		{
			dev: "/dev/sdb", model: "WDC WD20SDRW-11VUUS0", serial: "WD-WX12A3456789", vendor: "WD",
			wwn: "0x50014ee2b5a4c3d1", byID: "usb-WD_My_Passport_25E2_575831324133343536373839-0:0",
			typ: "usb", size: 2000365289472, gpt: true, used: "partitions",
			partitions: []partition{{dev: "/dev/sdb1", fstype: "ext4", uuid: DefaultUSBUUID, size: 2000363192320}},
			passed:     true, temperature: 31, powerOnHours: 4410, powerCycles: 388, firmware: "4005",
		},
	}
}

func (st *state) disk(dev string) *disk {
	for _, d := range st.disks {
		if d.dev == dev {
			return d
		}
	}
	return nil
}

func (d *disk) health() string {
	if d.passed {
		return "PASSED"
	}
	return "FAILED"
}

func (c *call) listDisks() response {
	out := []any{}
	for _, d := range c.st.disks {
		if c.str("type") == "unused" && d.used != "" {
			continue
		}
		if c.str("type") == "journal_disks" && d.typ != "ssd" && d.typ != "nvme" {
			continue
		}
		health := d.health()
		if c.bool("skipsmart") {
			health = "UNKNOWN"
		}
		m := map[string]any{
			"devpath": d.dev, "size": d.size, "model": d.model, "serial": d.serial, "vendor": d.vendor,
			"wwn": d.wwn, "type": d.typ, "health": health, "used": d.used, "gpt": boolInt(d.gpt),
			"rpm": d.rpm, "osdid": -1, "osdid-list": nil, "by_id_link": "/dev/disk/by-id/" + d.byID,
			"wearout": "N/A",
		}
		if d.wearout > 0 {
			m["wearout"] = d.wearout
		}
		out = append(out, m)
		if c.bool("include-partitions") {
			for _, p := range d.partitions {
				pm := map[string]any{
					"devpath": p.dev, "parent": d.dev, "size": p.size, "type": "partition",
					"used": p.fstype, "gpt": boolInt(d.gpt), "osdid": -1, "osdid-list": nil,
					"health": "UNKNOWN", "wearout": "N/A", "rpm": 0,
				}
				for _, uuid := range c.st.mounts {
					if uuid == p.uuid {
						pm["mounted"] = 1
					}
				}
				out = append(out, pm)
			}
		}
	}
	return ok(out)
}

// smartAttributes are the ATA attribute rows smartctl prints for d.
func (d *disk) smartAttributes() []smartAttr {
	realloc := smartAttr{ID: 5, Name: "Reallocated_Sector_Ct", Flags: "PO--CK", Value: 100, Worst: 100, Thresh: 10, Raw: d.reallocated}
	if d.reallocated > 0 {
		realloc.Value = max(100-d.reallocated/8, 1)
		realloc.Worst = realloc.Value
	}
	if !d.passed && realloc.Value > realloc.Thresh {
		realloc.Value, realloc.Worst = realloc.Thresh, realloc.Thresh
	}
	return []smartAttr{
		{ID: 1, Name: "Raw_Read_Error_Rate", Flags: "POSR-K", Value: 100, Worst: 100, Thresh: 6},
		realloc,
		{ID: 9, Name: "Power_On_Hours", Flags: "-O--CK", Value: 97, Worst: 97, Raw: d.powerOnHours},
		{ID: 12, Name: "Power_Cycle_Count", Flags: "-O--CK", Value: 99, Worst: 99, Raw: d.powerCycles},
		{ID: 194, Name: "Temperature_Celsius", Flags: "-O---K", Value: 100 - d.temperature, Worst: 50, Raw: d.temperature},
		{ID: 199, Name: "UDMA_CRC_Error_Count", Flags: "-O--CK", Value: 100, Worst: 100},
	}
}

// smartAttr is one ATA SMART attribute.
type smartAttr struct {
	ID                   int
	Name, Flags          string
	Value, Worst, Thresh int
	Raw                  int
}

func (a smartAttr) failed() string {
	if a.Thresh > 0 && a.Value <= a.Thresh {
		return "FAILING_NOW"
	}
	return "-"
}

func (c *call) diskSmart() response {
	d := c.st.disk(c.str("disk"))
	if d == nil {
		return die("not a valid block device")
	}
	if c.bool("healthonly") {
		return ok(map[string]any{"health": d.health(), "type": "ata"})
	}
	attrs := []any{}
	for _, a := range d.smartAttributes() {
		// PVE parses smartctl's text table: the id keeps its padding.
		attrs = append(attrs, map[string]any{
			"id": fmt.Sprintf("%3d", a.ID), "name": a.Name, "flags": a.Flags, "value": a.Value,
			"normalized": a.Value, "worst": a.Worst, "threshold": a.Thresh, "fail": a.failed(),
			"raw": strconv.Itoa(a.Raw),
		})
	}
	m := map[string]any{"health": d.health(), "type": "ata", "attributes": attrs}
	if d.wearout > 0 {
		m["wearout"] = d.wearout
	}
	return ok(m)
}

// --- shaping API ------------------------------------------------------------

// NodeUsage returns the first node's load and capacity (the one node of
// the default world); NodeUsageOf names a cluster node.
func (s *Sim) NodeUsage() NodeUsage {
	u, _ := s.NodeUsageOf("")
	return u
}

// NodeUsageOf returns node name's load and capacity ("" the first node),
// as GET /nodes/{node}/status reports them; an error for a node the
// world does not have.
func (s *Sim) NodeUsageOf(name string) (NodeUsage, error) {
	var u NodeUsage
	err := s.with(func(st *state) error {
		n, err := st.usageNode("NodeUsageOf", name)
		if err == nil {
			u = n.usage
		}
		return err
	})
	return u, err
}

// SetNodeUsage sets the first node's load and capacity (for monitor
// tests); SetNodeUsageOf names a cluster node.
func (s *Sim) SetNodeUsage(u NodeUsage) error { return s.SetNodeUsageOf("", u) }

// SetNodeUsageOf sets node name's load and capacity ("" the first node).
func (s *Sim) SetNodeUsageOf(name string, u NodeUsage) error {
	if u.CPU < 0 || u.CPU > 1 {
		return fmt.Errorf("pvesim: SetNodeUsage: CPU %v must be a fraction 0..1", u.CPU)
	}
	if u.MemoryUsed > u.MemoryTotal || u.SwapUsed > u.SwapTotal || u.RootFSUsed > u.RootFSTotal {
		return fmt.Errorf("pvesim: SetNodeUsage: a used figure exceeds its total")
	}
	return s.with(func(st *state) error {
		n, err := st.usageNode("SetNodeUsageOf", name)
		if err == nil {
			n.usage = u
		}
		return err
	})
}

// usageNode is node name, or the first node for "".
func (st *state) usageNode(op, name string) (*nodeState, error) {
	if name == "" {
		return st.node, nil
	}
	if n := st.nodeByName(name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("pvesim: %s: no node %q", op, name)
}

// SetDiskHealth sets a disk's SMART verdict and its reallocated sector
// count (attribute 5), as GET .../disks/smart, disks/list and
// `smartctl --json -a` report them.
func (s *Sim) SetDiskHealth(dev string, passed bool, reallocated int) error {
	if reallocated < 0 {
		return fmt.Errorf("pvesim: SetDiskHealth(%s): reallocated %d must not be negative", dev, reallocated)
	}
	return s.with(func(st *state) error {
		d := st.disk(dev)
		if d == nil {
			return fmt.Errorf("pvesim: SetDiskHealth: no disk %q", dev)
		}
		d.passed, d.reallocated = passed, reallocated
		return nil
	})
}

// SetDiskTemperature sets a disk's temperature in °C.
func (s *Sim) SetDiskTemperature(dev string, celsius int) error {
	return s.with(func(st *state) error {
		d := st.disk(dev)
		if d == nil {
			return fmt.Errorf("pvesim: SetDiskTemperature: no disk %q", dev)
		}
		d.temperature = celsius
		return nil
	})
}
