package builtins

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// This file converts between Go and Starlark for the proxmox, task, host
// and monitor modules. Go → Starlark: every record becomes a
// *starlarkstruct.Struct with typed fields (sizes as ints, times as
// time.time, durations as time.duration, a zero time as None); only maps
// with arbitrary keys (a config's raw keys, option lists) become dicts.
// Starlark → Go: the argument unpackers the builtins share.

// newStruct builds the struct value every builtin returns.
func newStruct(fields starlark.StringDict) *starlarkstruct.Struct {
	return starlarkstruct.FromStringDict(starlarkstruct.Default, fields)
}

// timeValue is t as a time.time, or None for the zero time (PVE sent none,
// or the task has not ended).
func timeValue(t time.Time) starlark.Value {
	if t.IsZero() {
		return starlark.None
	}
	return startime.Time(t)
}

func durationValue(d time.Duration) starlark.Value { return startime.Duration(d) }

func secondsValue(s int64) starlark.Value { return startime.Duration(time.Duration(s) * time.Second) }

func stringList(ss []string) *starlark.List {
	elems := make([]starlark.Value, len(ss))
	for i, s := range ss {
		elems[i] = starlark.String(s)
	}
	return starlark.NewList(elems)
}

// stringDict is m as a dict with keys in configKeyOrder, so output is
// deterministic.
func stringDict(m map[string]string) *starlark.Dict {
	return dictOf(m, func(v string) starlark.Value { return starlark.String(v) })
}

// sortedKeys orders PVE config keys naturally: "mp2" before "mp10".
func sortedKeys[V any](m map[string]V) []string {
	return slices.SortedFunc(maps.Keys(m), configKeyOrder)
}

// configKeyOrder compares (prefix, index, key), which is a total order:
// keys without a numeric suffix are their own prefix with index -1.
func configKeyOrder(a, b string) int {
	pa, na := splitIndex(a)
	pb, nb := splitIndex(b)
	return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(na, nb), cmp.Compare(a, b))
}

// splitIndex splits "mp10" into ("mp", 10); a key without a numeric suffix
// gives (key, -1).
func splitIndex(k string) (string, int) {
	i := len(k)
	for i > 0 && k[i-1] >= '0' && k[i-1] <= '9' {
		i--
	}
	if i == len(k) || i == 0 {
		return k, -1
	}
	n, err := strconv.Atoi(k[i:])
	if err != nil {
		return k, -1
	}
	return k[:i], n
}

// splitTags splits PVE's tag list ("a;b", also "a,b" or "a b" as written by
// older hosts) into its tags.
func splitTags(s string) *starlark.List {
	return stringList(strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }))
}

func versionValue(v proxmox.Version) starlark.Value {
	return newStruct(starlark.StringDict{
		"version": starlark.String(v.Version),
		"release": starlark.String(v.Release),
		"repoid":  starlark.String(v.RepoID),
	})
}

func nodeValue(n proxmox.Node) starlark.Value {
	return newStruct(starlark.StringDict{
		"node":    starlark.String(n.Node),
		"status":  starlark.String(n.Status),
		"cpu":     starlark.Float(n.CPU),
		"maxcpu":  starlark.MakeInt(n.MaxCPU),
		"mem":     starlark.MakeUint64(n.Mem),
		"maxmem":  starlark.MakeUint64(n.MaxMem),
		"disk":    starlark.MakeUint64(n.Disk),
		"maxdisk": starlark.MakeUint64(n.MaxDisk),
		"uptime":  secondsValue(n.Uptime),
	})
}

func usageValue(u proxmox.Usage) starlark.Value {
	return newStruct(starlark.StringDict{
		"total":   starlark.MakeUint64(u.Total),
		"used":    starlark.MakeUint64(u.Used),
		"free":    starlark.MakeUint64(u.Free),
		"percent": starlark.Float(u.Percent()),
	})
}

func nodeStatusValue(s proxmox.NodeStatus) starlark.Value {
	return newStruct(starlark.StringDict{
		"cpu":        starlark.Float(s.CPU),
		"cpus":       starlark.MakeInt(s.CPUs),
		"loadavg":    starlark.NewList([]starlark.Value{starlark.Float(s.LoadAvg[0]), starlark.Float(s.LoadAvg[1]), starlark.Float(s.LoadAvg[2])}),
		"memory":     usageValue(s.Memory),
		"rootfs":     usageValue(s.RootFS),
		"swap":       usageValue(s.Swap),
		"uptime":     secondsValue(s.Uptime),
		"kernel":     starlark.String(s.Kernel),
		"pveversion": starlark.String(s.PVEVersion),
	})
}

func resourceValue(r proxmox.Resource) starlark.Value {
	return newStruct(starlark.StringDict{
		"id":       starlark.String(r.ID),
		"type":     starlark.String(r.Type),
		"node":     starlark.String(r.Node),
		"name":     starlark.String(r.Name),
		"status":   starlark.String(r.Status),
		"storage":  starlark.String(r.Storage),
		"vmid":     starlark.MakeInt(r.VMID),
		"cpu":      starlark.Float(r.CPU),
		"maxcpu":   starlark.Float(r.MaxCPU),
		"mem":      starlark.MakeUint64(r.Mem),
		"maxmem":   starlark.MakeUint64(r.MaxMem),
		"disk":     starlark.MakeUint64(r.Disk),
		"maxdisk":  starlark.MakeUint64(r.MaxDisk),
		"uptime":   secondsValue(r.Uptime),
		"template": starlark.Bool(r.Template),
	})
}

// guestValueOn converts guests listed as being on node.
func guestValueOn(node string) func(proxmox.Guest) starlark.Value {
	return func(g proxmox.Guest) starlark.Value { return guestValue(g, node) }
}

func guestValue(g proxmox.Guest, node string) starlark.Value {
	return newStruct(starlark.StringDict{
		"node":     starlark.String(node),
		"type":     starlark.String(g.Type),
		"vmid":     starlark.MakeInt(g.VMID),
		"name":     starlark.String(g.Name),
		"status":   starlark.String(g.Status),
		"lock":     starlark.String(g.Lock),
		"template": starlark.Bool(g.Template),
		"tags":     splitTags(g.Tags),
		"cpus":     starlark.Float(g.CPUs),
		"cpu":      starlark.Float(g.CPU),
		"mem":      starlark.MakeUint64(g.Mem),
		"maxmem":   starlark.MakeUint64(g.MaxMem),
		"disk":     starlark.MakeUint64(g.Disk),
		"maxdisk":  starlark.MakeUint64(g.MaxDisk),
		"uptime":   secondsValue(g.Uptime),
	})
}

func guestStatusValue(g proxmox.GuestStatus) starlark.Value {
	return newStruct(starlark.StringDict{
		"type":      starlark.String(g.Type),
		"qmpstatus": starlark.String(g.QMPStatus),
		"vmid":      starlark.MakeInt(g.VMID),
		"name":      starlark.String(g.Name),
		"status":    starlark.String(g.Status),
		"running":   starlark.Bool(g.Status == "running"),
		"lock":      starlark.String(g.Lock),
		"template":  starlark.Bool(g.Template),
		"cpus":      starlark.Float(g.CPUs),
		"cpu":       starlark.Float(g.CPU),
		"mem":       starlark.MakeUint64(g.Mem),
		"maxmem":    starlark.MakeUint64(g.MaxMem),
		"disk":      starlark.MakeUint64(g.Disk),
		"maxdisk":   starlark.MakeUint64(g.MaxDisk),
		"swap":      starlark.MakeUint64(g.Swap),
		"maxswap":   starlark.MakeUint64(g.MaxSwap),
		"uptime":    secondsValue(g.Uptime),
	})
}

func mountPointValue(m proxmox.MountPoint) starlark.Value {
	return newStruct(starlark.StringDict{
		"volume":  starlark.String(m.Volume),
		"path":    starlark.String(m.Path),
		"size":    starlark.String(m.Size),
		"options": stringDict(m.Options),
	})
}

func netValue(n proxmox.Net) starlark.Value {
	return newStruct(starlark.StringDict{
		"name":      starlark.String(n.Name),
		"model":     starlark.String(n.Model),
		"bridge":    starlark.String(n.Bridge),
		"hwaddr":    starlark.String(n.HWAddr),
		"link_down": starlark.Bool(n.LinkDown),
		"ip":        starlark.String(n.IP),
		"gateway":   starlark.String(n.Gateway),
		"ip6":       starlark.String(n.IP6),
		"gateway6":  starlark.String(n.Gateway6),
		"tag":       starlark.MakeInt(n.Tag),
		"firewall":  starlark.Bool(n.Firewall),
		"options":   stringDict(n.Options),
	})
}

func guestConfigValue(c proxmox.GuestConfig) starlark.Value {
	var rootfs starlark.Value = starlark.None
	if c.RootFS.Volume != "" {
		rootfs = mountPointValue(c.RootFS)
	}
	return newStruct(starlark.StringDict{
		"type":         starlark.String(c.Type),
		"name":         starlark.String(c.Name),
		"sockets":      starlark.MakeInt(c.Sockets),
		"cpu":          starlark.String(c.CPU),
		"machine":      starlark.String(c.Machine),
		"bios":         starlark.String(c.BIOS),
		"boot":         starlark.String(c.Boot),
		"agent":        starlark.String(c.Agent),
		"drives":       dictOf(c.Drives, driveValue),
		"hostname":     starlark.String(c.Hostname),
		"description":  starlark.String(c.Description),
		"ostype":       starlark.String(c.OSType),
		"arch":         starlark.String(c.Arch),
		"cores":        starlark.MakeInt(c.Cores),
		"memory":       starlark.MakeInt(c.Memory),
		"swap":         starlark.MakeInt(c.Swap),
		"onboot":       starlark.Bool(c.OnBoot),
		"template":     starlark.Bool(c.Template),
		"unprivileged": starlark.Bool(c.Unprivileged),
		"lock":         starlark.String(c.Lock),
		"tags":         splitTags(c.Tags),
		"features":     starlark.String(c.Features),
		"digest":       starlark.String(c.Digest),
		"rootfs":       rootfs,
		"mountpoints":  dictOf(c.MountPoints, mountPointValue),
		"nets":         dictOf(c.Nets, netValue),
		"raw":          stringDict(c.Raw),
	})
}

func driveValue(d proxmox.Drive) starlark.Value {
	return newStruct(starlark.StringDict{
		"volume":  starlark.String(d.Volume),
		"size":    starlark.String(d.Size),
		"media":   starlark.String(d.Media),
		"options": stringDict(d.Options),
	})
}

func storageValue(s proxmox.Storage) starlark.Value {
	return newStruct(starlark.StringDict{
		"storage":       starlark.String(s.Storage),
		"type":          starlark.String(s.Type),
		"content":       stringList(s.Content),
		"path":          starlark.String(s.Path),
		"shared":        starlark.Bool(s.Shared),
		"enabled":       starlark.Bool(s.Enabled),
		"active":        starlark.Bool(s.Active),
		"total":         starlark.MakeUint64(s.Total),
		"used":          starlark.MakeUint64(s.Used),
		"avail":         starlark.MakeUint64(s.Avail),
		"used_percent":  starlark.Float(s.UsedPercent()),
		"prune_backups": starlark.String(s.PruneBackups),
	})
}

func volumeValue(v proxmox.Volume) starlark.Value {
	return newStruct(starlark.StringDict{
		"volid":        starlark.String(v.VolID),
		"content":      starlark.String(v.Content),
		"format":       starlark.String(v.Format),
		"subtype":      starlark.String(v.Subtype),
		"vmid":         starlark.MakeInt(v.VMID),
		"size":         starlark.MakeUint64(v.Size),
		"ctime":        timeValue(v.CTime),
		"notes":        starlark.String(v.Notes),
		"protected":    starlark.Bool(v.Protected),
		"verification": starlark.String(v.Verification),
		"encrypted":    starlark.String(v.Encrypted),
	})
}

func snapshotValue(s proxmox.Snapshot) starlark.Value {
	return newStruct(starlark.StringDict{
		"name":        starlark.String(s.Name),
		"description": starlark.String(s.Description),
		"parent":      starlark.String(s.Parent),
		"snaptime":    timeValue(s.SnapTime),
		"vmstate":     starlark.Bool(s.VMState),
	})
}

// taskListValue converts an entry of the node's task list. PVE puts the
// exit status in "status" once a task stopped and leaves it empty (or
// "RUNNING") while it runs; the client may also have filled ExitStatus.
func taskListValue(t proxmox.Task) starlark.Value {
	exit := t.ExitStatus
	if exit == "" && t.Status != "RUNNING" {
		exit = t.Status
	}
	st := proxmox.TaskStatus{UPID: t.UPID, Status: "running"}
	if exit != "" {
		st = proxmox.TaskStatus{UPID: t.UPID, Status: "stopped", ExitStatus: exit}
	}
	return newStruct(starlark.StringDict{
		"upid":       starlark.String(t.UPID.String()),
		"node":       starlark.String(t.Node),
		"type":       starlark.String(t.Type),
		"id":         starlark.String(t.ID),
		"user":       starlark.String(t.User),
		"status":     starlark.String(st.Status),
		"exitstatus": starlark.String(st.ExitStatus),
		"ok":         starlark.Bool(st.Succeeded()),
		"starttime":  timeValue(t.StartTime),
		"endtime":    timeValue(t.EndTime),
	})
}

func diskValue(d proxmox.Disk) starlark.Value {
	return newStruct(starlark.StringDict{
		"devpath": starlark.String(d.DevPath),
		"model":   starlark.String(d.Model),
		"serial":  starlark.String(d.Serial),
		"vendor":  starlark.String(d.Vendor),
		"type":    starlark.String(d.Type),
		"health":  starlark.String(d.Health),
		"wwn":     starlark.String(d.WWN),
		"used":    starlark.String(d.Used),
		"size":    starlark.MakeUint64(d.Size),
		"rpm":     starlark.MakeInt(d.RPM),
		"gpt":     starlark.Bool(d.GPT),
	})
}

func smartDataValue(s proxmox.SMARTData) starlark.Value {
	attrs := make([]starlark.Value, len(s.Attributes))
	for i, a := range s.Attributes {
		attrs[i] = newStruct(starlark.StringDict{
			"id":        starlark.MakeInt(a.ID),
			"name":      starlark.String(a.Name),
			"value":     starlark.MakeInt(a.Value),
			"worst":     starlark.MakeInt(a.Worst),
			"threshold": starlark.MakeInt(a.Threshold),
			"raw":       starlark.String(a.Raw),
			"flags":     starlark.String(a.Flags),
			"fail":      starlark.String(a.Fail),
		})
	}
	return newStruct(starlark.StringDict{
		"health":     starlark.String(s.Health),
		"passed":     starlark.Bool(healthPassed(s.Health)),
		"type":       starlark.String(s.Type),
		"text":       starlark.String(s.Text),
		"attributes": starlark.NewList(attrs),
	})
}

// healthPassed reads PVE's disk health: "PASSED" for ATA, "OK" for SAS/NVMe.
func healthPassed(h string) bool { return h == "PASSED" || h == "OK" }

func smartReportValue(r proxmox.SMARTReport) starlark.Value {
	return newStruct(starlark.StringDict{
		"device":         starlark.String(r.Device),
		"model":          starlark.String(r.Model),
		"serial":         starlark.String(r.Serial),
		"passed":         starlark.Bool(r.Passed),
		"temperature":    starlark.MakeInt(r.Temperature),
		"power_on_hours": starlark.MakeInt64(r.PowerOnHours),
		"reallocated":    starlark.MakeInt64(r.Reallocated),
		"exit_status":    starlark.MakeInt(r.ExitStatus),
	})
}

func sensorValue(s proxmox.SensorReading) starlark.Value {
	return newStruct(starlark.StringDict{
		"chip":    starlark.String(s.Chip),
		"adapter": starlark.String(s.Adapter),
		"label":   starlark.String(s.Label),
		"celsius": starlark.Float(s.Celsius),
		"high":    starlark.Float(s.High),
		"crit":    starlark.Float(s.Crit),
	})
}

// dictOf converts m to a dict with keys in sortedKeys order (so output is
// deterministic), with conv for each value.
func dictOf[V any](m map[string]V, conv func(V) starlark.Value) *starlark.Dict {
	d := starlark.NewDict(len(m))
	for _, k := range sortedKeys(m) {
		_ = d.SetKey(starlark.String(k), conv(m[k])) // a new dict is never frozen
	}
	return d
}

// listOf converts a slice with one of the converters above.
func listOf[T any](xs []T, conv func(T) starlark.Value) *starlark.List {
	elems := make([]starlark.Value, len(xs))
	for i, x := range xs {
		elems[i] = conv(x)
	}
	return starlark.NewList(elems)
}

// ---- Starlark → Go: argument unpackers ----
//
// The shared ones (VMID, Duration, StringList) are in args.go; these add
// what only this module's builtins need.

// vmidFilter is an optional guest id filter: 0 (no filter) or a guest id.
type vmidFilter int

var _ starlark.Unpacker = (*vmidFilter)(nil)

func (v *vmidFilter) Unpack(x starlark.Value) error {
	if i, ok := x.(starlark.Int); ok && i.Sign() == 0 {
		*v = 0
		return nil
	}
	var id VMID
	if err := id.Unpack(x); err != nil {
		return err
	}
	*v = vmidFilter(id)
	return nil
}

// vmidList is a list or tuple of distinct guest ids.
type vmidList []int

var _ starlark.Unpacker = (*vmidList)(nil)

func (l *vmidList) Unpack(x starlark.Value) error {
	seq, ok := x.(starlark.Indexable)
	if !ok {
		return fmt.Errorf("got %s, want a list of guest ids", x.Type())
	}
	if _, isStr := x.(starlark.String); isStr {
		return fmt.Errorf("got string, want a list of guest ids")
	}
	out := make([]int, 0, seq.Len())
	for i := range seq.Len() {
		var id VMID
		if err := id.Unpack(seq.Index(i)); err != nil {
			return fmt.Errorf("element %d: %v", i, err)
		}
		if slices.Contains(out, int(id)) {
			return fmt.Errorf("guest %d is listed twice", id)
		}
		out = append(out, int(id))
	}
	*l = out
	return nil
}

// durationArg is a duration argument: a time.duration, a duration string
// ("90s", "10m") or an int number of seconds. Negative durations are
// refused. Used with "name??" so None means "not given".
type durationArg struct {
	d   time.Duration
	set bool
}

var _ starlark.Unpacker = (*durationArg)(nil)

func (a *durationArg) Unpack(x starlark.Value) error {
	var d time.Duration
	switch x := x.(type) {
	case startime.Duration:
		d = time.Duration(x)
	case starlark.String:
		p, err := time.ParseDuration(string(x))
		if err != nil {
			return fmt.Errorf("bad duration %q: want e.g. \"90s\" or \"10m\"", string(x))
		}
		d = p
	case starlark.Int:
		s, ok := x.Int64()
		if !ok || s > int64(maxDuration/time.Second) || s < -int64(maxDuration/time.Second) {
			return fmt.Errorf("%s seconds is out of range", x)
		}
		d = time.Duration(s) * time.Second
	default:
		return fmt.Errorf("got %s, want a duration, a duration string or int seconds", x.Type())
	}
	if d < 0 {
		return fmt.Errorf("duration %s is negative", d)
	}
	*a = durationArg{d: d, set: true}
	return nil
}

const maxDuration = time.Duration(1<<63 - 1)

// nonEmpty refuses an empty string parameter with an error naming it.
func nonEmpty(b *starlark.Builtin, name, value string) error {
	if err := nonEmptyArg(name, value); err != nil {
		return fmt.Errorf("%s: %w", b.Name(), err)
	}
	return nil
}

// nonEmptyArg is nonEmpty for a caller that names the builtin itself.
func nonEmptyArg(name, value string) error {
	if value == "" {
		return fmt.Errorf("%s must not be empty", name)
	}
	return nil
}
