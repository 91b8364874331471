package builtins

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// A Shape declares what a builtin returns, as far as `felhom-agent check`
// reasons about it: a struct with exactly these fields, or a list of such
// structs. With it, check reports a field the value does not have
// (g.hostname on a guest of proxmox.guests(); the field is name) before the
// playbook runs. A Func's Returns holds it; nil means check does not reason
// about the result (an int, a string, a dict, or a value it cannot know).
//
// Invariant: a builtin returns a value its Shape matches ([Shape.Match]);
// the builtins' tests call every builtin that declares one against the
// simulator and match the result, so a field added to a struct without its
// Shape (or the other way round) fails a test.
//
// Shapes are shared and must not be modified.
type Shape struct {
	// Name says what the value is in messages: "guest", "task".
	Name string
	// Fields are the struct's field names, exactly; empty for a list.
	Fields []string
	// Nested are the shapes of fields holding a struct (or None) or a list
	// of structs; a field not here is not reasoned about.
	Nested map[string]*Shape
	// Elem is the shape of a list's elements; nil for a struct.
	Elem *Shape
}

// StructShape is a struct called name with the given fields.
func StructShape(name string, fields ...string) *Shape {
	return &Shape{Name: name, Fields: fields}
}

// ListOf is a list whose elements have shape elem.
func ListOf(elem *Shape) *Shape { return &Shape{Name: "list of " + elem.Name, Elem: elem} }

// With returns a copy of s whose field holds a value of shape nested.
func (s *Shape) With(field string, nested *Shape) *Shape {
	c := *s
	c.Nested = make(map[string]*Shape, len(s.Nested)+1)
	for k, v := range s.Nested {
		c.Nested[k] = v
	}
	c.Nested[field] = nested
	return &c
}

// IsList reports whether s is a list shape.
func (s *Shape) IsList() bool { return s.Elem != nil }

// Has reports whether the struct s has field name.
func (s *Shape) Has(name string) bool { return slices.Contains(s.Fields, name) }

// Match reports how v differs from s: a struct with other fields, a list
// whose element does not match, a value of another type. None matches any
// struct shape (optional values: a config's rootfs, catch's error).
func (s *Shape) Match(v starlark.Value) error {
	if s.IsList() {
		l, ok := v.(*starlark.List)
		if !ok {
			return fmt.Errorf("%s: got %s, want list", s.Name, v.Type())
		}
		for i := range l.Len() {
			if err := s.Elem.Match(l.Index(i)); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		return nil
	}
	if v == starlark.None {
		return nil
	}
	st, ok := record(v)
	if !ok {
		return fmt.Errorf("%s: got %s, want struct", s.Name, v.Type())
	}
	got, want := st.AttrNames(), slices.Sorted(slices.Values(s.Fields))
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: fields %s; declared %s", s.Name, strings.Join(got, ", "), strings.Join(want, ", "))
	}
	for name, nested := range s.Nested {
		fv, _ := st.Attr(name)
		if err := nested.Match(fv); err != nil {
			return fmt.Errorf("%s.%s: %w", s.Name, name, err)
		}
	}
	return nil
}

// record is v as a value of named fields that a builtin returns: a struct
// or a task (whose own type has the fields of taskShape).
func record(v starlark.Value) (starlark.HasAttrs, bool) {
	switch v := v.(type) {
	case *starlarkstruct.Struct:
		return v, true
	case *taskValue:
		return v, true
	}
	return nil, false
}

// The shapes of the structs this package returns, next to each other so a
// reader sees them at once; convert.go builds the values.
var (
	versionShape    = StructShape("version", "version", "release", "repoid")
	nodeShape       = StructShape("node", "node", "status", "cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "uptime")
	usageShape      = StructShape("usage", "total", "used", "free", "percent")
	nodeStatusShape = StructShape("node status", "cpu", "cpus", "loadavg", "memory", "rootfs", "swap", "uptime", "kernel", "pveversion").
			With("memory", usageShape).With("rootfs", usageShape).With("swap", usageShape)
	resourceShape = StructShape("resource", "id", "type", "node", "name", "status", "storage", "vmid", "cpu", "maxcpu",
		"mem", "maxmem", "disk", "maxdisk", "uptime", "template")
	guestShape = StructShape("guest", "vmid", "name", "status", "lock", "template", "tags", "cpus", "cpu", "mem", "maxmem",
		"disk", "maxdisk", "uptime", "type", "node")
	clusterNodeShape = StructShape("cluster node", "name", "nodeid", "ip", "online", "local")
	clusterShape     = StructShape("cluster", "name", "quorate", "nodes", "offline", "member").With("nodes", ListOf(clusterNodeShape))
	locationShape    = StructShape("guest location", "vmid", "type", "node", "status", "lock", "here")
	guestStatusShape = StructShape("guest status", "vmid", "name", "status", "running", "lock", "template", "cpus", "cpu",
		"mem", "maxmem", "disk", "maxdisk", "swap", "maxswap", "uptime", "type", "qmpstatus")
	mountPointShape  = StructShape("mount point", "volume", "path", "size", "options")
	guestConfigShape = StructShape("guest config", "hostname", "description", "ostype", "arch", "cores", "memory", "swap",
		"onboot", "template", "unprivileged", "lock", "tags", "features", "digest", "rootfs", "mountpoints", "nets", "raw",
		"type", "name", "sockets", "cpu", "machine", "bios", "boot", "agent", "drives").
		With("rootfs", mountPointShape)
	storageShape = StructShape("storage", "storage", "type", "content", "path", "shared", "enabled", "active", "total",
		"used", "avail", "used_percent", "prune_backups")
	volumeShape = StructShape("volume", "volid", "content", "format", "subtype", "vmid", "size", "ctime", "notes", "protected",
		"verification", "encrypted")
	snapshotShape = StructShape("snapshot", "name", "description", "parent", "snaptime", "vmstate")
	taskListShape = StructShape("task list entry", "upid", "node", "type", "id", "user", "status", "exitstatus", "ok",
		"starttime", "endtime")
	diskShape      = StructShape("disk", "devpath", "model", "serial", "vendor", "type", "health", "wwn", "used", "size", "rpm", "gpt")
	smartAttrShape = StructShape("SMART attribute", "id", "name", "value", "worst", "threshold", "raw", "flags", "fail")
	smartShape     = StructShape("SMART data", "health", "passed", "type", "text", "attributes").With("attributes", ListOf(smartAttrShape))
	smartReport    = StructShape("SMART report", "device", "model", "serial", "passed", "temperature", "power_on_hours", "reallocated", "exit_status")
	sensorShape    = StructShape("sensor", "chip", "adapter", "label", "celsius", "high", "crit")
	// The monitor module's readings (monitor_*.go).
	monitorNodeShape = StructShape("node reading", "cpu", "cpus", "load1", "load5", "load15", "mem_used", "mem_total",
		"mem_percent", "rootfs_used", "rootfs_total", "rootfs_percent", "swap_percent", "uptime")
	monitorStorageShape = ListOf(StructShape("storage reading", "storage", "type", "active", "enabled", "used", "total",
		"avail", "used_percent"))
	monitorSmartShape   = ListOf(StructShape("disk health", "device", "model", "health", "passed", "temperature", "reallocated", "source", "error"))
	monitorSensorsShape = ListOf(sensorShape)
	monitorTunnelShape  = StructShape("tunnel reading", "endpoint", "up", "latency", "error")
	monitorAllShape     = StructShape("monitor readings", "node", "storage", "smart", "sensors", "tunnel", "errors", "skipped", "took").
				With("node", monitorNodeShape).With("storage", monitorStorageShape).With("smart", monitorSmartShape).
				With("sensors", monitorSensorsShape).With("tunnel", monitorTunnelShape)
	taskStatusShape = StructShape("task status", "upid", "status", "exitstatus", "ok", "running")
	errorShape      = StructShape("error", "message", "kind", "privilege", "path", "lock", "exitstatus", "upid", "log", "status")
	catchShape      = StructShape("catch result", "ok", "value", "error").With("error", errorShape)

	// taskShape is every task struct: what a proxmox mutation and
	// task.wait return (fields listed at [TaskTable]).
	taskShape = StructShape("task", "upid", "node", "type", "id", "status", "exitstatus", "ok", "warnings", "duration",
		"volid", "backups", "storage", "sync").With("backups", ListOf(volumeShape))
)
