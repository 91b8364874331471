package proxmox

import (
	"strings"
	"testing"
)

// The cases follow pve-container src/PVE/LXC.pm parse_id_maps.
func TestRootUID(t *testing.T) {
	for _, tt := range []struct {
		name         string
		lxc          string // the config's "lxc" as GET .../config returns it
		unprivileged bool
		want         int
		wantErr      string
	}{
		{"privileged, no idmap", "", false, 0, ""},
		{"unprivileged, no idmap: PVE's default", "", true, 100000, ""},
		{"other lxc keys only", `[["lxc.cgroup2.devices.allow","c 226:0 rwm"]]`, true, 100000, ""},
		{"custom idmap", `[["lxc.idmap","u 0 200000 1000"],["lxc.idmap","g 0 200000 1000"],["lxc.idmap","u 1000 1000 1"],["lxc.idmap","u 1001 201001 64535"]]`, true, 200000, ""},
		{"root mapped later, leading zeros", `[["lxc.idmap","u 1000 1000 1"],["lxc.idmap","u 00 300000 1000 "]]`, true, 300000, ""},
		{"a mapping without root's uid leaves 0, as PVE", `[["lxc.idmap","g 0 200000 65536"]]`, true, 0, ""},
		{"unparsable idmap", `[["lxc.idmap","u 0 200000"]]`, true, 0, `failed to parse idmap: lxc.idmap "u 0 200000"`},
		{"idmap with a name", `[["lxc.idmap","u root 200000 1"]]`, true, 0, "failed to parse idmap"},
		{"host uid out of range", `[["lxc.idmap","u 0 99999999999 1"]]`, true, 0, "out of range"},
		{"not pairs", `[["lxc.idmap"]]`, true, 0, "not a [key, value] pair"},
		{"not an array", `"u 0 1 1"`, true, 0, "not [[key, value], ...]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := GuestConfig{Unprivileged: tt.unprivileged, Raw: map[string]string{}}
			if tt.lxc != "" {
				c.Raw["lxc"] = tt.lxc
			}
			got, err := c.RootUID()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RootUID = %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RootUID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}
