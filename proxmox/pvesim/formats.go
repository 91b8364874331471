package pvesim

import (
	"net/netip"
	"regexp"
	"strings"
)

// This file holds PVE's named string formats (PVE::JSONSchema
// register_format and the plugins that add to it). Each returns the text
// PVE dies with, newline included, or "" when the value is valid. Formats
// the simulator has no rule for pass, as they would on a host that knows
// them: the simulator must never refuse what PVE accepts.

var (
	nodeNameRe   = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	vmidRe       = regexp.MustCompile(`^[1-9][0-9]{2,8}$`)
	configIDRe   = regexp.MustCompile(`(?i)^[a-z][a-z0-9_-]+$`)
	storageIDRe  = regexp.MustCompile(`(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	dnsNameRe    = regexp.MustCompile(`^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$`)
	volumeIDRe   = regexp.MustCompile(`(?i)^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$`)
	poolIDRe     = regexp.MustCompile(`^[A-Za-z0-9.\-_]+$`)
	tagRe        = regexp.MustCompile(`(?i)^[a-z0-9_][a-z0-9_\-+.]*$`)
	macRe        = regexp.MustCompile(`(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$`)
	diskSizeRe   = regexp.MustCompile(`^(\d+(\.\d+)?)([KMGT](?:iB)?)?$`)
	startupRe    = regexp.MustCompile(`^((order=)?\d+|up=\d+|down=\d+)$`)
	emailRe      = regexp.MustCompile(`^[\w+\-~]+(\.[\w+\-~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$`)
	userRe       = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$`)
	timezoneRe   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$`)
	taskStatusRe = regexp.MustCompile(`(?i)^(ok|error|warning|unknown)$`)
	listSplitRe  = regexp.MustCompile(`[\x00,;\s]+`)
)

// contentTypes are the storage content types PVE knows
// (PVE::Storage::Plugin::valid_content_types of a dir storage, plus import).
var contentTypes = map[string]bool{
	"images": true, "rootdir": true, "vztmpl": true, "iso": true, "backup": true,
	"snippets": true, "import": true,
}

// splitList is PVE::Tools::split_list: separators are commas, semicolons,
// NULs and whitespace; empty items vanish.
func splitList(s string) []string {
	var out []string
	for _, p := range listSplitRe.Split(s, -1) {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// checkNamedFormat validates v against PVE's named format; "-list" formats
// validate each item of a split_list.
func checkNamedFormat(name, v string) string {
	if base, ok := strings.CutSuffix(name, "-list"); ok {
		for _, item := range splitList(v) {
			if why := checkFormatValue(base, item); why != "" {
				return why
			}
		}
		return ""
	}
	if base, ok := strings.CutSuffix(name, "-opt"); ok {
		if v == "" {
			return ""
		}
		name = base
	}
	return checkFormatValue(name, v)
}

func checkFormatValue(name, v string) string {
	switch name {
	case "pve-node":
		if !nodeNameRe.MatchString(v) {
			return "value does not look like a valid node name\n"
		}
	case "pve-vmid":
		if !vmidRe.MatchString(v) {
			return "value does not look like a valid VM ID\n"
		}
	case "pve-configid":
		if !configIDRe.MatchString(v) {
			return "invalid configuration ID '" + v + "'\n"
		}
	case "pve-storage-id":
		if len(v) < 2 {
			return "storage ID '" + v + "' cannot be shorter than 2 characters\n"
		}
		if !storageIDRe.MatchString(v) {
			return "storage ID '" + v + "' contains illegal characters\n"
		}
	case "dns-name":
		if !dnsNameRe.MatchString(v) {
			return "value does not look like a valid DNS name\n"
		}
	case "pve-volume-id":
		if !volumeIDRe.MatchString(v) {
			return "unable to parse volume ID '" + v + "'\n"
		}
	case "pve-poolid":
		if !poolIDRe.MatchString(v) {
			return "invalid pool ID '" + v + "'\n"
		}
	case "pve-tag":
		if !tagRe.MatchString(v) {
			return "invalid characters in tag\n"
		}
	case "pve-storage-content":
		if !contentTypes[v] {
			return "invalid content type '" + v + "'\n"
		}
	case "pve-task-status-type":
		if !taskStatusRe.MatchString(v) {
			return "invalid status '" + v + "'\n"
		}
	case "pve-startup-order":
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) != "" && !startupRe.MatchString(p) {
				return "unable to parse startup options\n"
			}
		}
	case "mac-addr":
		if !macRe.MatchString(v) {
			return "value does not look like a valid unicast MAC address\n"
		}
	case "disk-size":
		if !diskSizeRe.MatchString(v) {
			return "value does not look like a valid disk size: " + v + "\n"
		}
	case "ipv4":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
			return "value does not look like a valid IPv4 address\n"
		}
	case "ipv6":
		if a, err := netip.ParseAddr(v); err != nil || !a.Is6() {
			return "value does not look like a valid IPv6 address\n"
		}
	case "ip", "lxc-ip-with-ll-iface", "address":
		addr, _, _ := strings.Cut(v, "%")
		if _, err := netip.ParseAddr(addr); err != nil {
			return "value does not look like a valid IP address\n"
		}
	case "email-or-username":
		if !emailRe.MatchString(v) && !userRe.MatchString(v) {
			return "value does not look like a valid email address or user name\n"
		}
	case "pve-ct-timezone":
		if v != "host" && v != "UTC" && !timezoneRe.MatchString(v) {
			return "invalid time zone '" + v + "'\n"
		}
	}
	return ""
}

// namedPropertyFormats are hash formats the extract names instead of
// spelling out (registered in pve-storage and pve-manager).
var namedPropertyFormats = map[string]map[string]*propSchema{
	"prune-backups": {
		"keep-all":     {Type: "boolean", Optional: true},
		"keep-last":    pruneOption(),
		"keep-hourly":  pruneOption(),
		"keep-daily":   pruneOption(),
		"keep-weekly":  pruneOption(),
		"keep-monthly": pruneOption(),
		"keep-yearly":  pruneOption(),
	},
	"backup-fleecing": {
		"enabled": {Type: "boolean", Optional: true, DefaultKey: true},
		"storage": {Type: "string", Optional: true, formatName: "pve-storage-id"},
	},
	"backup-performance": {
		"max-workers":        {Type: "integer", Optional: true, Minimum: numberPtr(1), Maximum: numberPtr(256)},
		"pbs-entries-max":    {Type: "integer", Optional: true, Minimum: numberPtr(1)},
		"max-worker-threads": {Type: "integer", Optional: true},
	},
}

func pruneOption() *propSchema {
	return &propSchema{Type: "integer", Optional: true, Minimum: numberPtr(0)}
}

func numberPtr(f float64) *number { n := number(f); return &n }
