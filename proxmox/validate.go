package proxmox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// The validators below guard every argument [Privileged] puts on a root
// command line. Each accepts only a narrow, documented shape, so that no
// accepted value can start with "-" (option injection), contain a NUL or a
// newline, or carry a separator that the tool would parse further (",", "=",
// ":" or "/" where the tool splits on them).

// ArgError is an argument that [Privileged] refused before running anything.
// Op is the operation as playbooks call it ("host.mount_usb"), Field the
// parameter, Value the refused value and Reason what is wrong with it.
type ArgError struct {
	Op     string
	Field  string
	Value  string
	Reason string
}

func (e *ArgError) Error() string {
	return fmt.Sprintf("%s: %s %q %s", e.Op, e.Field, e.Value, e.Reason)
}

// Operation names, used as the prefix of every error of [Privileged].
const (
	opCreateGolden = "host.create_golden"
	opMountUSB     = "host.mount_usb"
	opSMART        = "host.smart"
	opSensors      = "host.sensors"
	opAttachRO     = "host.attach_bootstrap"
)

// MinVMID and MaxVMID bound a Proxmox VE guest id: the pve-vmid format
// of pve-common's PVE/JSONSchema.pm (an integer 100..999999999). Every
// check of a guest id — the client, the fenced commands, the builtins, the
// simulator — uses these two.
const (
	MinVMID = 100
	MaxVMID = 999_999_999
)

var (
	// uuidPattern: RFC 4122 (ext4, xfs, btrfs), FAT's "XXXX-XXXX" volume
	// serial and NTFS's 16 hex digits — what blkid reports as UUID=.
	uuidPattern = regexp.MustCompile(`^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{4}-[0-9a-fA-F]{4}|[0-9a-fA-F]{16})$`)
	// devicePattern: whole SATA/SAS/USB disks, NVMe namespaces and legacy
	// IDE disks; never partitions, never symlinks under /dev/disk.
	devicePattern = regexp.MustCompile(`^/dev/(?:sd[a-z]{1,2}|nvme[0-9]{1,2}n[0-9]{1,2}|hd[a-z])$`)
	// hostnamePattern: one DNS label (RFC 1123).
	hostnamePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	// storagePattern is the lower-case subset of PVE's pve-storage-id
	// that the fenced commands (and deploy/sudoers) accept; the API client
	// accepts PVE's case-insensitive form (apiStorageIDPattern).
	storagePattern = regexp.MustCompile(`^[a-z][a-z0-9\-_.]*[a-z0-9]$`)
	// templatePattern: an OS template volume on a storage, no subdirectory.
	templatePattern = regexp.MustCompile(`^([a-z][a-z0-9\-_.]*[a-z0-9]):vztmpl/[a-zA-Z0-9][a-zA-Z0-9._+-]*\.tar\.(?:gz|xz|zst)$`)
	// bridgePattern: a Linux interface name (at most 15 bytes) as PVE
	// bridges are named: vmbr0, vmbr1234, or an SDN vnet such as "vnet1".
	bridgePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)
	// pathComponentPattern: one component of a mount target.
	pathComponentPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
)

func checkVMID(op string, v int) error {
	if v < MinVMID || v > MaxVMID {
		return &ArgError{op, "vmid", fmt.Sprint(v), fmt.Sprintf("is not in %d..%d", MinVMID, MaxVMID)}
	}
	return nil
}

func checkUUID(op, uuid string) error {
	if !uuidPattern.MatchString(uuid) {
		return &ArgError{op, "uuid", uuid, "is not a filesystem UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, XXXX-XXXX or 16 hex digits)"}
	}
	return nil
}

func checkDevice(op, dev string) error {
	if !devicePattern.MatchString(dev) {
		return &ArgError{op, "device", dev, "is not a whole-disk device (/dev/sdX, /dev/nvmeNnM, /dev/hdX)"}
	}
	return nil
}

func checkHostname(op, name string) error {
	if !hostnamePattern.MatchString(name) {
		return &ArgError{op, "hostname", name, "is not a DNS label (letters, digits, inner '-', at most 63)"}
	}
	return nil
}

func checkStorage(op, field, id string) error {
	if !storagePattern.MatchString(id) {
		return &ArgError{op, field, id, "is not a PVE storage id ([a-z][a-z0-9-_.]*[a-z0-9])"}
	}
	return nil
}

func checkTemplate(op, volid string) error {
	if !templatePattern.MatchString(volid) || strings.Contains(volid, "..") {
		return &ArgError{op, "template", volid, "is not an OS template volid (STORAGE:vztmpl/NAME.tar.{gz,xz,zst})"}
	}
	return nil
}

func checkBridge(op, name string) error {
	if !bridgePattern.MatchString(name) {
		return &ArgError{op, "bridge", name, "is not a bridge name (e.g. vmbr0; [a-z][a-z0-9]*, at most 15)"}
	}
	return nil
}

func checkRange(op, field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return &ArgError{op, field, fmt.Sprint(v), fmt.Sprintf("is not in %d..%d", lo, hi)}
	}
	return nil
}

// checkMountTarget accepts an absolute path in clean form strictly below
// prefix, each component made of [a-zA-Z0-9._-] and not only of dots
// (which also keeps deploy/sudoers' pattern for the target simple).
// Cleaning is not done for the caller: a path that needs it is refused, so
// what is validated is exactly what mount receives.
func checkMountTarget(op, prefix, target string) error {
	bad := func(reason string) error { return &ArgError{op, "target", target, reason} }
	switch {
	case !filepath.IsAbs(target):
		return bad("is not an absolute path")
	case filepath.Clean(target) != target:
		return bad(fmt.Sprintf("is not a clean path (want %q)", filepath.Clean(target)))
	case len(target) > 4095:
		return bad("is too long")
	}
	rest, ok := strings.CutPrefix(target, prefix+"/")
	if !ok || rest == "" {
		return bad(fmt.Sprintf("is not below the mount prefix %s", prefix))
	}
	for _, c := range strings.Split(rest, "/") {
		if len(c) > 255 || !pathComponentPattern.MatchString(c) {
			return bad(fmt.Sprintf("has a component %q outside [a-zA-Z0-9._-]", c))
		}
		if strings.Trim(c, ".") == "" {
			return bad(fmt.Sprintf("has a component %q made only of dots", c))
		}
	}
	return nil
}

// checkNoSymlinks refuses a mount target when the prefix or any existing
// component below it is a symbolic link: mount(8) follows links, so a link
// planted under the prefix (on a mounted disk, say) would carry the mount
// anywhere, /etc included. Components that do not exist yet end the walk;
// mount then fails on its own.
func checkNoSymlinks(op, prefix, target string) error {
	path := prefix
	rest, _ := strings.CutPrefix(target, prefix)
	for _, c := range append([]string{""}, strings.Split(strings.Trim(rest, "/"), "/")...) {
		if c != "" {
			path += "/" + c
		}
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return &ArgError{op, "target", target, fmt.Sprintf("cannot inspect %s: %v", path, err)}
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &ArgError{op, "target", target, fmt.Sprintf("passes through the symbolic link %s", path)}
		}
	}
	return nil
}

// checkMountPrefix is the configuration check of PrivilegedConfig.MountPrefix.
func checkMountPrefix(prefix string) error {
	switch {
	case !filepath.IsAbs(prefix):
		return fmt.Errorf("%q is not an absolute path", prefix)
	case filepath.Clean(prefix) != prefix:
		return fmt.Errorf("%q is not a clean path (want %q)", prefix, filepath.Clean(prefix))
	case prefix == "/":
		return fmt.Errorf("%q would allow mounting over the whole system", prefix)
	}
	for _, c := range strings.Split(prefix[1:], "/") {
		if !pathComponentPattern.MatchString(c) || c == "." || c == ".." {
			return fmt.Errorf("%q has a component %q outside [a-zA-Z0-9._-]", prefix, c)
		}
	}
	return nil
}
