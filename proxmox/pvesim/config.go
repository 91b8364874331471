package pvesim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The guest config as PVE writes and reads it (pve-container LXC/Config.pm
// parse_pct_config, write_pct_config) and its synchronous update, PUT
// .../config (API2/LXC/Config.pm update_vm), with the per-key privilege
// checks of PVE::LXC::check_ct_modify_config_perm.

// --- description and the config file ---------------------------------

// perlSplitLines is Perl's split(/\n/, $s): trailing empty fields vanish.
func perlSplitLines(s string) []string {
	parts := strings.Split(s, "\n")
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// descriptionAsRead is what PVE returns for a stored description: every
// '#' line of the config decoded and followed by a newline; nothing when
// it is empty.
func descriptionAsRead(stored string) string {
	var b strings.Builder
	for _, line := range perlSplitLines(stored) {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// encodeText is PVE::Tools::encode_text: control and non-ASCII bytes, '%'
// and ':' are percent-encoded.
func encodeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 0x20 && ch <= 0x7e && ch != '%' && ch != ':' {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}

// rawConfig renders the config file as PVE writes it (write_pct_config);
// its SHA-1 is the digest.
func (g *guest) rawConfig() string {
	var b strings.Builder
	writeSection(&b, g.description, g.conf)
	for _, e := range g.lxc {
		fmt.Fprintf(&b, "%s: %s\n", e[0], e[1])
	}
	for _, s := range slices.Sorted(maps.Keys(g.snapshots)) {
		snap := g.snapshots[s]
		fmt.Fprintf(&b, "\n[%s]\n", s)
		conf := maps.Clone(snap.conf)
		conf["snaptime"] = strconv.FormatInt(snap.snaptime.Unix(), 10)
		writeSection(&b, snap.description, conf)
	}
	return b.String()
}

func writeSection(b *strings.Builder, description string, conf map[string]string) {
	for _, line := range perlSplitLines(description) {
		b.WriteString("#" + encodeText(line) + "\n")
	}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		fmt.Fprintf(b, "%s: %s\n", k, conf[k])
	}
}

func (g *guest) digest() string {
	sum := sha1.Sum([]byte(g.rawConfig()))
	return hex.EncodeToString(sum[:])
}

// typedConfig is a config as GET .../config returns it: numbers and
// booleans typed by the endpoint's return schema, the description read
// back, and the digest.
func typedConfig(kind string, conf map[string]string, description, digest string) map[string]any {
	ret := loadSchema()["GET /nodes/{node}/"+kind+"/{vmid}/config"].Returns
	props := objectSchema{Properties: ret.Properties}
	out := make(map[string]any, len(conf)+2)
	for k, v := range conf {
		out[k] = v
		if p := props.property(k); p != nil {
			switch p.Type {
			case "integer", "boolean":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[k] = n
				}
			case "number":
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					out[k] = f
				}
			}
		}
	}
	if d := descriptionAsRead(description); d != "" {
		out["description"] = d
	}
	if digest != "" {
		out["digest"] = digest
	}
	return out
}

// --- config update --------------------------------------------------------

// configOnlyParams are PUT parameters that are not config keys.
var configOnlyParams = map[string]bool{"node": true, "vmid": true, "digest": true, "delete": true, "revert": true}

func (c *call) putGuestConfig() response {
	st, vmid := c.st, c.int("vmid")
	set := map[string]string{}
	for k, v := range c.params {
		if !configOnlyParams[k] {
			set[k] = v
		}
	}
	if len(set) == 0 && !c.has("delete") && !c.has("revert") {
		return die("no options specified")
	}
	dels, reverts := splitList(c.str("delete")), splitList(c.str("revert"))
	g, fail := c.loadGuest(vmid)
	if g == nil {
		return fail
	}
	if err := checkLock(g); err != nil {
		return die("%s", err)
	}
	if d := c.str("digest"); d != "" && d != g.digest() {
		return die("detected modified configuration - file changed by other user? Try again.")
	}
	unpriv := g.conf["unprivileged"] == "1"
	for _, list := range [][]string{dels, reverts} {
		if resp, ok := c.checkConfigPerms(vmid, g.conf, nil, list, unpriv); !ok {
			return resp
		}
	}
	putSchema := loadSchema()["PUT /nodes/{node}/lxc/{vmid}/config"].Parameters
	for _, opt := range reverts {
		if putSchema.property(opt) == nil || configOnlyParams[opt] {
			return paramError(map[string]string{"revert": fmt.Sprintf("unknown option '%s'", opt)})
		}
		if _, both := set[opt]; both {
			return paramError(map[string]string{"revert": fmt.Sprintf("you can't use '-%s' and '-revert %s' at the same time", opt, opt)})
		}
	}
	for _, opt := range dels {
		if putSchema.property(opt) == nil || configOnlyParams[opt] {
			return paramError(map[string]string{"delete": fmt.Sprintf("unknown option '%s'", opt)})
		}
		if _, both := set[opt]; both {
			// PVE's message has this stray quote.
			return paramError(map[string]string{"delete": fmt.Sprintf("you can't use '-%s' and -delete %s' at the same time", opt, opt)})
		}
		if slices.Contains(reverts, opt) {
			return paramError(map[string]string{"delete": fmt.Sprintf("you can't use '-delete %s' and '-revert %s' at the same time", opt, opt)})
		}
	}
	if resp, ok := c.checkConfigPerms(vmid, g.conf, set, nil, unpriv); !ok {
		return resp
	}
	if _, ok := set["unprivileged"]; ok {
		return die("unable to modify read-only option: 'unprivileged'")
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if err := st.applyOption(g, k, set[k]); err != nil {
			return paramError(map[string]string{k: err.Error()})
		}
	}
	for _, k := range dels {
		if k == "description" {
			g.description = ""
		}
		if k == "rootfs" {
			return paramError(map[string]string{"delete": "unable to delete required option 'rootfs'"})
		}
		if strings.HasPrefix(k, "mp") {
			if vol := volumeOf(g.conf[k]); vol != "" {
				st.releaseDisk(vol)
			}
		}
		delete(g.conf, k)
	}
	return ok(nil)
}

var newDiskRe = regexp.MustCompile(`^([^:/\s]+):(\d+(\.\d+)?)(,.*)?$`)

// applyOption is update_pct_config for one key.
func (st *state) applyOption(g *guest, k, v string) error {
	switch {
	case k == "description":
		g.description = v
		return nil
	case k == "rootfs" || strings.HasPrefix(k, "mp"):
		if m := newDiskRe.FindStringSubmatch(v); m != nil {
			vol, err := st.allocDisk(g.vmid, m[1], m[2]+"G", g.isTemplate())
			if err != nil {
				return err
			}
			v = vol + m[4] + ",size=" + m[2] + "G"
		}
	case strings.HasPrefix(k, "net"):
		if !strings.Contains(v, "hwaddr=") {
			v += ",hwaddr=" + st.newMAC()
		}
	}
	g.conf[k] = v
	return nil
}

// checkConfigPerms is PVE::LXC::check_ct_modify_config_perm for an API
// token (never root@pam): each key needs its own privilege; feature flags
// other than nesting, device passthrough, bind mounts and hookscripts are
// root-only.
func (c *call) checkConfigPerms(vmid int, old, set map[string]string, dels []string, unpriv bool) (response, bool) {
	vm := "/vms/" + vmidString(vmid)
	check := func(opt string, isDelete bool, value string) (response, bool) {
		switch {
		case opt == "cores" || opt == "cpuunits" || opt == "cpulimit":
			return c.tok.check(vm, "VM.Config.CPU")
		case opt == "rootfs" || isIndexed(opt, "mp"):
			if resp, ok := c.tok.check(vm, "VM.Config.Disk"); !ok || isDelete {
				return resp, ok
			}
			vol := volumeOf(value)
			if strings.HasPrefix(vol, "/") {
				return permError("mount point type bind is only allowed for root@pam"), false
			}
			if m := newDiskRe.FindStringSubmatch(value); m != nil {
				return c.tok.check("/storage/"+m[1], "Datastore.AllocateSpace")
			}
			if _, resp := c.checkVolumeAccess(vmid, vol, "rootdir"); resp.failed() {
				return resp, false
			}
			return response{}, true
		case opt == "memory" || opt == "swap":
			return c.tok.check(vm, "VM.Config.Memory")
		case isIndexed(opt, "net"):
			if resp, ok := c.tok.check(vm, "VM.Config.Network"); !ok {
				return resp, ok
			}
			for _, raw := range []string{old[opt], value} {
				if raw == "" {
					continue
				}
				if resp, ok := c.checkBridge(raw); !ok {
					return resp, ok
				}
			}
			return response{}, true
		case isIndexed(opt, "dev"):
			return permError("configuring device passthrough is only allowed for root@pam"), false
		case opt == "nameserver" || opt == "searchdomain" || opt == "hostname":
			return c.tok.check(vm, "VM.Config.Network")
		case opt == "features":
			if !unpriv {
				return permError("changing feature flags for privileged container is only allowed for root@pam"), false
			}
			nesting, other := featureChanges(old["features"], value, isDelete)
			if other {
				return permError("changing feature flags (except nesting) is only allowed for root@pam"), false
			}
			if nesting {
				return c.tok.check(vm, "VM.Allocate")
			}
			return response{}, true
		case opt == "hookscript":
			return permError("changing the hookscript is only allowed for root@pam"), false
		}
		return c.tok.check(vm, "VM.Config.Options")
	}
	for _, opt := range slices.Sorted(maps.Keys(set)) {
		if resp, ok := check(opt, false, set[opt]); !ok {
			return resp, false
		}
	}
	for _, opt := range dels {
		if resp, ok := check(opt, true, ""); !ok {
			return resp, false
		}
	}
	return response{}, true
}

func isIndexed(opt, prefix string) bool {
	m := indexedKey.FindStringSubmatch(opt)
	return m != nil && m[1] == prefix
}

// featureChanges compares feature flag strings like PVE: whether nesting
// changed, and whether anything else did.
func featureChanges(oldRaw, newRaw string, isDelete bool) (nesting, other bool) {
	parse := func(s string) map[string]string {
		m := map[string]string{}
		for _, kv := range strings.Split(s, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = parseBoolean(v)
			}
		}
		return m
	}
	onlyNesting := func(m map[string]string) (bool, bool) {
		_, hasNesting := m["nesting"]
		return len(m) == 1 && hasNesting, len(m) > 0
	}
	if isDelete {
		n, any := onlyNesting(parse(oldRaw))
		return n, any && !n
	}
	newF := parse(newRaw)
	if oldRaw == "" {
		n, any := onlyNesting(newF)
		return n, any && !n
	}
	oldF := parse(oldRaw)
	for _, k := range slices.Sorted(maps.Keys(mergeKeys(oldF, newF))) {
		if oldF[k] != newF[k] {
			if k == "nesting" {
				nesting = true
				continue
			}
			return nesting, true
		}
	}
	return nesting, false
}

func mergeKeys(a, b map[string]string) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

var bridgeTagRe = regexp.MustCompile(`(?:^|,)(bridge|tag|trunks)=([^,]*)`)

// checkBridge is check_bridge_access / check_vnet_access: PVE 8.1+ puts a
// plain bridge in the implicit SDN zone "localnetwork", so a NIC needs
// SDN.Use on it (or on its VLAN).
func (c *call) checkBridge(netRaw string) (response, bool) {
	var bridge, tag, trunks string
	for _, m := range bridgeTagRe.FindAllStringSubmatch(netRaw, -1) {
		switch m[1] {
		case "bridge":
			bridge = m[2]
		case "tag":
			tag = m[2]
		case "trunks":
			trunks = m[2]
		}
	}
	if bridge == "" {
		return response{}, true
	}
	zone := "/sdn/zones/localnetwork/" + bridge
	if tag != "" {
		if resp, ok := c.tok.check(zone+"/"+tag, "SDN.Use"); !ok {
			return resp, ok
		}
	}
	for _, t := range strings.Split(trunks, ";") {
		if t != "" {
			if resp, ok := c.tok.check(zone+"/"+t, "SDN.Use"); !ok {
				return resp, ok
			}
		}
	}
	if tag == "" && trunks == "" {
		return c.tok.check(zone, "SDN.Use")
	}
	return response{}, true
}
