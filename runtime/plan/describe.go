package plan

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// describe says what a mutating request does, in the words an operator
// uses: "vzdump 101 → usb-backup (snapshot, zstd)".
func describe(m mutation) string {
	p := strings.Split(strings.Trim(m.path, "/"), "/")
	get := m.params.Get
	// nodes/{node}/...
	if len(p) < 3 || p[0] != "nodes" {
		return generic(m)
	}
	rest := p[2:]
	switch {
	case m.method == "POST" && len(rest) == 1 && rest[0] == "vzdump":
		target := get("vmid")
		if get("all") == "1" {
			target = "every guest"
		}
		var opts []string
		opts = append(opts, orDefault(get("mode"), "snapshot"))
		if c := get("compress"); c != "" {
			opts = append(opts, c)
		}
		if get("protected") == "1" {
			opts = append(opts, "protected")
		}
		if pr := get("prune-backups"); pr != "" {
			opts = append(opts, "prune "+pr)
		}
		return fmt.Sprintf("vzdump %s → %s (%s)", strings.ReplaceAll(target, ",", ", "), orDefault(get("storage"), "local"), strings.Join(opts, ", "))
	case m.method == "DELETE" && len(rest) >= 4 && rest[0] == "storage" && rest[2] == "content":
		return "delete " + strings.Join(rest[3:], "/") // a volid holds slashes
	case m.method == "DELETE" && len(rest) == 2 && rest[0] == "tasks":
		return "stop task " + rest[1]
	case m.method == "POST" && len(rest) == 1 && (rest[0] == "lxc" || rest[0] == "qemu"):
		kind := map[string]string{"lxc": "container", "qemu": "VM"}[rest[0]]
		from := get("ostemplate")
		if rest[0] == "qemu" {
			from = get("archive")
		}
		verb := "create"
		if get("restore") == "1" || rest[0] == "qemu" && from != "" {
			verb = "restore"
		}
		s := fmt.Sprintf("%s %s %s", verb, kind, get("vmid"))
		if from != "" {
			s += " from " + from
		}
		if st := get("storage"); st != "" {
			s += " → " + st
		}
		if get("force") == "1" {
			s += " (replacing it)"
		}
		return s
	}
	if len(rest) < 2 || (rest[0] != "lxc" && rest[0] != "qemu") {
		return generic(m)
	}
	vmid, sub := rest[1], rest[2:]
	switch {
	case len(sub) == 0 && m.method == "DELETE":
		s := "destroy " + vmid
		if get("purge") == "1" {
			s += " (purge)"
		}
		return s
	case len(sub) == 1 && sub[0] == "config":
		return "set config of " + vmid + ": " + configChange(m.params)
	case len(sub) == 2 && sub[0] == "status":
		return sub[1] + " " + vmid
	case len(sub) == 1 && sub[0] == "snapshot" && m.method == "POST":
		return fmt.Sprintf("snapshot %s %q", vmid, get("snapname"))
	case len(sub) == 3 && sub[0] == "snapshot" && sub[2] == "rollback":
		return fmt.Sprintf("rollback %s to %q", vmid, sub[1])
	case len(sub) == 2 && sub[0] == "snapshot" && m.method == "DELETE":
		return fmt.Sprintf("delete snapshot %q of %s", sub[1], vmid)
	}
	return generic(m)
}

// secretParam reports whether a parameter's value must not be shown.
func secretParam(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.Contains(k, "token") || k == "ssh-public-keys"
}

func configChange(params url.Values) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		switch k {
		case "delete":
			parts = append(parts, "delete "+params.Get(k))
		case "digest":
		default:
			v := params.Get(k)
			if secretParam(k) {
				v = "<redacted>"
			}
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}

func generic(m mutation) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m.params)) {
		v := m.params.Get(k)
		if secretParam(k) {
			v = "<redacted>"
		}
		parts = append(parts, k+"="+v)
	}
	s := m.method + " " + m.path
	if len(parts) > 0 {
		s += " " + strings.Join(parts, " ")
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// hostState is what the diff compares: guests, their snapshots, archives
// and free space.
type hostState struct {
	guests   map[int]pvesim.GuestView
	volumes  map[string]proxmox.Volume // backups, by volid
	storages []proxmox.Storage
}

func snapshotState(sim *pvesim.Sim) hostState {
	s := hostState{guests: map[int]pvesim.GuestView{}, volumes: map[string]proxmox.Volume{}, storages: sim.Storages()}
	for _, g := range sim.Guests() {
		s.guests[g.VMID] = g
	}
	for _, st := range s.storages {
		for _, v := range sim.Volumes(st.Storage) {
			if v.Content == "backup" {
				s.volumes[v.VolID] = v
			}
		}
	}
	return s
}

// diff lists what changed between two states, guests first.
func diff(a, b hostState) []string {
	var out []string
	ids := slices.Sorted(maps.Keys(a.guests))
	for id := range b.guests {
		if _, ok := a.guests[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		ga, inA := a.guests[id]
		gb, inB := b.guests[id]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("+ guest %d (%s %q, %s)", id, gb.Type, gb.Name, gb.Status))
			continue
		case !inB:
			out = append(out, fmt.Sprintf("- guest %d (%s %q)", id, ga.Type, ga.Name))
			continue
		}
		if ga.Status != gb.Status {
			out = append(out, fmt.Sprintf("guest %d: %s → %s", id, ga.Status, gb.Status))
		}
		if ga.Lock != gb.Lock {
			out = append(out, fmt.Sprintf("guest %d: lock %q → %q", id, ga.Lock, gb.Lock))
		}
		names := func(g pvesim.GuestView) []string {
			var ns []string
			for _, s := range g.Snapshots {
				ns = append(ns, s.Name)
			}
			return ns
		}
		na, nb := names(ga), names(gb)
		for _, n := range nb {
			if !slices.Contains(na, n) {
				out = append(out, fmt.Sprintf("+ snapshot %d@%s", id, n))
			}
		}
		for _, n := range na {
			if !slices.Contains(nb, n) {
				out = append(out, fmt.Sprintf("- snapshot %d@%s", id, n))
			}
		}
		if changed := changedKeys(ga.Config, gb.Config); len(changed) > 0 {
			out = append(out, fmt.Sprintf("guest %d: config %s changed", id, strings.Join(changed, ", ")))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.volumes)) {
		if _, ok := a.volumes[id]; !ok {
			out = append(out, fmt.Sprintf("+ %s (%s)", id, bytesIEC(b.volumes[id].Size)))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(a.volumes)) {
		if _, ok := b.volumes[id]; !ok {
			out = append(out, fmt.Sprintf("- %s (%s)", id, bytesIEC(a.volumes[id].Size)))
		}
	}
	for _, sa := range a.storages {
		for _, sb := range b.storages {
			if sa.Storage == sb.Storage && sa.Avail != sb.Avail {
				delta := int64(sb.Avail) - int64(sa.Avail)
				sign := "+"
				if delta < 0 {
					sign, delta = "−", -delta
				}
				out = append(out, fmt.Sprintf("%s: %s free → %s (%s%s)", sa.Storage, bytesIEC(sa.Avail), bytesIEC(sb.Avail), sign, bytesIEC(uint64(delta))))
			}
		}
	}
	return out
}

// changedKeys are the config keys whose values differ, snapshots' parent
// pointer and the lock aside (reported on their own).
func changedKeys(a, b map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if k != "parent" && k != "lock" && a[k] != b[k] {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok && k != "parent" && k != "lock" {
			out = append(out, k)
		}
	}
	return out
}

// bytesIEC is n bytes for people: "933 MiB", "1.8 TiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 5 {
		v /= unit
		u++
	}
	suffix := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}[u]
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

// WriteText prints the report for people.
// Gated is how many of r's steps need an operator's signature.
func (r *Report) Gated() int {
	n := 0
	for _, s := range r.Steps {
		if s.Gated != "" {
			n++
		}
	}
	return n
}

func (r *Report) WriteText(w interface{ Write([]byte) (int, error) }) error {
	var b strings.Builder
	fmt.Fprintf(&b, "plan of %s — nothing was changed on the host\n\n", r.Playbook)
	if len(r.Steps) == 0 {
		b.WriteString("it would change nothing\n")
	}
	for i, s := range r.Steps {
		fmt.Fprintf(&b, "%3d. %s", i+1, s.What)
		if s.Outcome != "" && s.Outcome != "OK" {
			fmt.Fprintf(&b, "  [%s]", s.Outcome)
		}
		if s.Gated != "" {
			fmt.Fprintf(&b, "  [needs an operator's signature: %s]", s.Gated)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "\nresult: %s", strings.ToUpper(r.Status))
	if r.Error != "" {
		fmt.Fprintf(&b, " — %s", r.Error)
	}
	b.WriteByte('\n')
	if n := r.Gated(); n > 0 {
		fmt.Fprintf(&b, "  the result if signed: %d step(s) need an operator's signature, and a run without one is refused at the first of them, and stops there unless the playbook catches the refusal (felhom-agent pending, sign, approve)\n", n)
	}
	if len(r.Result) > 0 {
		fmt.Fprintf(&b, "  returns %s\n", r.Result)
	}
	if len(r.Changes) > 0 {
		b.WriteString("\nchanges:\n")
		for _, c := range r.Changes {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	if len(r.Assumptions) > 0 {
		b.WriteString("\nassumed:\n")
		for _, a := range r.Assumptions {
			fmt.Fprintf(&b, "  - %s\n", a)
		}
	}
	_, err := w.Write([]byte(b.String()))
	return err
}
