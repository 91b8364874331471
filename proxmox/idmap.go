package proxmox

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
)

// DefaultUnprivilegedRoot is the host uid of an unprivileged container's
// root when its config has no lxc.idmap: PVE's default mapping
// u 0 100000 65536 (pve-container src/PVE/LXC.pm parse_id_maps).
const DefaultUnprivilegedRoot = 100000

// idmapPattern is one lxc.idmap value as parse_id_maps accepts it:
// "u|g CT HOST LENGTH".
var idmapPattern = regexp.MustCompile(`^([ug])\s+(\d+)\s+(\d+)\s+(\d+)\s*$`)

// RootUID is the host uid of the container's root, as PVE computes it
// (pve-container src/PVE/LXC.pm parse_id_maps): the host id of the
// lxc.idmap entry "u 0 HOST LENGTH" among the raw lxc.* keys PVE returns
// as the config's "lxc" array ([[key, value], ...]); with no lxc.idmap at
// all, DefaultUnprivilegedRoot for an unprivileged container and 0 (host
// root) for a privileged one. Like PVE, a custom mapping that maps no
// container uid 0 leaves root at 0. An lxc.idmap it cannot parse is an
// error naming it, as PVE's "failed to parse idmap".
func (c GuestConfig) RootUID() (int, error) {
	raw, ok := c.Raw["lxc"]
	var entries [][]string
	if ok && raw != "" {
		if err := json.Unmarshal([]byte(raw), &entries); err != nil {
			return 0, fmt.Errorf("the config's lxc entries are not [[key, value], ...]: %w", err)
		}
	}
	root, mapped := 0, false
	for _, e := range entries {
		if len(e) != 2 {
			return 0, fmt.Errorf("the config's lxc entry %q is not a [key, value] pair", e)
		}
		if e[0] != "lxc.idmap" {
			continue
		}
		m := idmapPattern.FindStringSubmatch(e[1])
		if m == nil {
			return 0, fmt.Errorf("failed to parse idmap: lxc.idmap %q is not \"u|g CONTAINER-ID HOST-ID COUNT\"", e[1])
		}
		mapped = true
		if m[1] == "u" && isZero(m[2]) {
			host, err := strconv.Atoi(m[3])
			if err != nil || host > 1<<32-2 {
				return 0, fmt.Errorf("failed to parse idmap: lxc.idmap %q maps root to a host uid out of range", e[1])
			}
			root = host
		}
	}
	if !mapped && c.Unprivileged {
		return DefaultUnprivilegedRoot, nil
	}
	return root, nil
}

// isZero: the decimal digits s are the number 0 (Perl's $ct == 0).
func isZero(s string) bool {
	for _, r := range s {
		if r != '0' {
			return false
		}
	}
	return true
}
