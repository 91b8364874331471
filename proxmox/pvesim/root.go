package pvesim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// RootRunner answers the fenced root commands of proxmox.Privileged on the
// simulated host, with output shaped like the real tools: `pct create`,
// `mount`, `smartctl --json -a` (smartctl 7.x) and `sensors -j`
// (lm-sensors). It records every argv. A leading "sudo" (with its -n) and
// the directory of the program are ignored, so both the direct and the
// sudo runner shapes work.
//
// RootRunner implements proxmox.Runner; get it from Sim.RootRunner.
//
// In a cluster world a runner is one node's (NodeRootRunner): what it
// runs acts on that node, as the commands do run as root on the host the
// agent is on — `pct create` makes the container there, `pct set` finds
// only that node's containers.
type RootRunner struct {
	sim  *Sim
	node string // "" the first node
	// calls is guarded by sim.mu; a node's runner keeps its own.
	calls [][]string
}

var _ proxmox.Runner = (*RootRunner)(nil)

// RootRunner returns the runner of the simulated host's root commands.
// Every call returns the same runner.
func (s *Sim) RootRunner() *RootRunner {
	s.init()
	return s.runner
}

// NodeRootRunner returns the root-command runner of node name of a
// cluster world (see [Sim.NodeNames]), or an error for a node the world
// does not have. Every call for one node returns the same runner.
func (s *Sim) NodeRootRunner(name string) (*RootRunner, error) {
	s.init()
	var r *RootRunner
	err := s.with(func(st *state) error {
		if st.nodeByName(name) == nil {
			return fmt.Errorf("pvesim: NodeRootRunner: no node %q (the nodes are %v)", name, s.nodeNamesLocked(st))
		}
		if name == st.node.name {
			r = s.runner
			return nil
		}
		if s.nodeRunners == nil {
			s.nodeRunners = map[string]*RootRunner{}
		}
		if r = s.nodeRunners[name]; r == nil {
			r = &RootRunner{sim: s, node: name}
			s.nodeRunners[name] = r
		}
		return nil
	})
	return r, err
}

// Calls returns every argv the runner was given, oldest first.
func (r *RootRunner) Calls() [][]string {
	var out [][]string
	_ = r.sim.with(func(*state) error {
		for _, c := range r.calls {
			out = append(out, slices.Clone(c))
		}
		return nil
	})
	return out
}

// Run implements proxmox.Runner.
func (r *RootRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pvesim: %s not run: %w", strings.Join(argv, " "), err)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("pvesim: RootRunner: empty argv")
	}
	var out []byte
	var err error
	_ = r.sim.with(func(st *state) error {
		if r.node != "" {
			if n := st.nodeByName(r.node); n != nil && n != st.current() {
				st.as(n, func() { out, err = r.run(st, argv) })
				return nil
			}
		}
		out, err = r.run(st, argv)
		return nil
	})
	return out, err
}

// run answers argv on the node st is handling.
func (r *RootRunner) run(st *state, argv []string) (out []byte, err error) {
	{
		r.calls = append(r.calls, slices.Clone(argv))
		args := argv
		if path.Base(args[0]) == "sudo" {
			args = args[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "-") {
				args = args[1:]
			}
		}
		if len(args) == 0 {
			return nil, exitError(argv, 1, "usage: sudo -h | -K | -k | -V\n")
		}
		switch path.Base(args[0]) {
		case "pct":
			out, err = st.pct(argv, args[1:])
		case "mount":
			out, err = st.mount(argv, args[1:])
		case "smartctl":
			out, err = st.smartctl(argv, args[1:])
		case "sensors":
			out, err = st.sensorsJSON(argv, args[1:])
		default:
			out, err = nil, fmt.Errorf("pvesim: RootRunner: %q is not a simulated command: exec: %q: executable file not found in $PATH", args[0], args[0])
		}
	}
	return out, err
}

func exitError(argv []string, code int, stderr string) error {
	return &proxmox.ExitError{Argv: slices.Clone(argv), Code: code, Stderr: stderr}
}

// --- pct create -----------------------------------------------------------

const pctUsage = "pct create <vmid> <ostemplate> [OPTIONS]\n"

// pct runs `pct create VMID OSTEMPLATE --key value ...` as root@pam: the
// API's create checks without the token limits (keyctl is allowed),
// synchronously, recorded as a finished vzcreate task.
func (st *state) pct(argv, args []string) ([]byte, error) {
	if len(args) > 0 && args[0] == "set" {
		return st.pctSet(argv, args[1:])
	}
	if len(args) == 0 || args[0] != "create" {
		return nil, exitError(argv, 255, "ERROR: unknown command 'pct "+strings.Join(args, " ")+"'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n")
	}
	args = args[1:]
	if len(args) < 2 {
		return nil, exitError(argv, 255, "400 not enough arguments\n"+pctUsage)
	}
	params := map[string][]string{"vmid": {args[0]}, "ostemplate": {args[1]}, "node": {st.current().name}}
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		key, ok := strings.CutPrefix(rest[i], "--")
		if !ok {
			key, ok = strings.CutPrefix(rest[i], "-")
		}
		if !ok || key == "" {
			return nil, exitError(argv, 255, fmt.Sprintf("400 too many arguments\n%s", pctUsage))
		}
		if k, v, inline := strings.Cut(key, "="); inline {
			params[k] = append(params[k], v)
			continue
		}
		if i+1 >= len(rest) {
			return nil, exitError(argv, 255, fmt.Sprintf("400 Parameter verification failed.\n%s: missing value\n%s", key, pctUsage))
		}
		params[key] = append(params[key], rest[i+1])
		i++
	}
	ep := loadSchema()["POST /nodes/{node}/lxc"]
	if errs := ep.validate(params); errs != nil {
		var b strings.Builder
		b.WriteString("400 Parameter verification failed.\n")
		for _, k := range slices.Sorted(maps.Keys(errs)) {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.TrimSuffix(errs[k], "\n"))
		}
		b.WriteString(pctUsage)
		return nil, exitError(argv, 255, b.String())
	}
	get := func(k string) string {
		if v := params[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	vmid, _ := strconv.Atoi(get("vmid"))
	if g, exists := st.guests[vmid]; exists && (get("restore") != "1" || g.isQemu()) {
		return nil, exitError(argv, 255, fmt.Sprintf("%s %d already exists on node '%s'\n", g.label(), vmid, g.node))
	}
	tmpl := get("ostemplate")
	sid, name, _ := strings.Cut(tmpl, ":")
	s, okStorage := st.storages[sid]
	if !okStorage {
		return nil, exitError(argv, 255, fmt.Sprintf("storage '%s' does not exist\n", sid))
	}
	if vtype, _, _, err := s.parseVolname(name); err != nil || vtype != "vztmpl" {
		return nil, exitError(argv, 255, fmt.Sprintf("unable to use volume %s - content type needs to be 'vztmpl'\n", tmpl))
	}
	storageID := get("storage")
	if storageID == "" {
		storageID = "local"
	}
	target := storageID
	if rootfs := get("rootfs"); rootfs != "" {
		if m := newDiskRe.FindStringSubmatch(rootfs); m != nil {
			target = m[1]
		}
	}
	if t, ok := st.storages[target]; !ok || !t.supports("rootdir") {
		return nil, exitError(argv, 255, fmt.Sprintf("400 Parameter verification failed.\nstorage: storage '%s' does not support container directories\n%s", target, pctUsage))
	}
	set := map[string]string{}
	for k, v := range params {
		if !createOnlyParams[k] {
			set[k] = v[0]
		}
	}
	unpriv := get("unprivileged") != "0"
	st.guests[vmid] = &guest{node: st.current().name, kind: kindLXC, vmid: vmid, conf: map[string]string{"lock": "create"}, snapshots: map[string]*snapshot{}}
	cr := &creation{st: st, vmid: vmid, archive: tmpl, storage: storageID, set: set,
		start: get("start") == "1", unpriv: unpriv, unprivGiven: true}
	t := st.startTask("root@pam", taskSpec{typ: "vzcreate", id: vmidString(vmid), vmid: vmid, cleanup: cr.abort, work: cr.run})
	st.finish(t)
	st.advance() // pct's --start runs in the foreground too
	if t.exit != "OK" {
		return []byte(strings.Join(t.lines[:len(t.lines)-1], "\n") + "\n"), exitError(argv, 255, t.exit+"\n")
	}
	return []byte(strings.Join(t.lines[:len(t.lines)-1], "\n") + "\n"), nil
}

// pctSet runs `pct set VMID --mpN VALUE` as root@pam: the one use the
// agent makes of it, a mount point that may be a host path (which only
// root@pam may set: pve-container src/PVE/LXC/Config.pm,
// check_ct_modify_config_perm). Other options are not modelled and fail
// loudly.
func (st *state) pctSet(argv, args []string) ([]byte, error) {
	if len(args) == 0 {
		return nil, exitError(argv, 255, "400 not enough arguments\npct set <vmid> [OPTIONS]\n")
	}
	vmid, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, exitError(argv, 255, fmt.Sprintf("400 Parameter verification failed.\nvmid: type check ('integer') failed - got '%s'\n", args[0]))
	}
	g, ok := st.lookup(kindLXC, vmid)
	if !ok {
		return nil, exitError(argv, 255, fmt.Sprintf("Configuration file '%s' does not exist\n", st.configPathOf(kindLXC, vmid)))
	}
	set := map[string]string{}
	for rest := args[1:]; len(rest) > 0; rest = rest[2:] {
		key, ok := strings.CutPrefix(rest[0], "--")
		if !ok || len(rest) < 2 {
			return nil, exitError(argv, 255, "400 too many arguments\npct set <vmid> [OPTIONS]\n")
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(key, "mp")); !strings.HasPrefix(key, "mp") || err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("pvesim: pct set --%s is not simulated (only --mpN is)", key)
		}
		if !strings.Contains(rest[1], "mp=") {
			return nil, exitError(argv, 255, fmt.Sprintf("400 Parameter verification failed.\n%s: format error\nmp: property is missing and it is not optional\n", key))
		}
		set[key] = rest[1]
	}
	if err := checkLock(g); err != nil {
		return nil, exitError(argv, 255, err.Error()+"\n")
	}
	for k, v := range set {
		g.conf[k] = v
	}
	return nil, nil
}

// --- mount ------------------------------------------------------------------

// mount answers `mount -o OPTIONS UUID=<uuid> TARGET` like util-linux.
func (st *state) mount(argv, args []string) ([]byte, error) {
	var opts, source, target string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-o" && i+1 < len(args):
			opts = args[i+1]
			i++
		case source == "":
			source = args[i]
		case target == "":
			target = args[i]
		default:
			return nil, exitError(argv, 1, "mount: bad usage\nTry 'mount --help' for more information.\n")
		}
	}
	_ = opts
	if source == "" || target == "" {
		return nil, exitError(argv, 1, "mount: bad usage\nTry 'mount --help' for more information.\n")
	}
	uuid, ok := strings.CutPrefix(source, "UUID=")
	dev, known := st.usbParts[uuid]
	if !ok || !known {
		return nil, exitError(argv, 32, fmt.Sprintf("mount: %s: can't find %s.\n", target, source))
	}
	if cur, mounted := st.mounts[target]; mounted && cur == uuid {
		return nil, exitError(argv, 32, fmt.Sprintf("mount: %s: %s already mounted on %s.\n", target, dev, target))
	}
	st.mounts[target] = uuid
	return nil, nil
}

// Unmount marks target as not mounted (as if `umount TARGET` ran).
func (s *Sim) Unmount(target string) error {
	return s.with(func(st *state) error {
		if _, ok := st.mounts[target]; !ok {
			return fmt.Errorf("pvesim: Unmount: %s: not mounted", target)
		}
		delete(st.mounts, target)
		return nil
	})
}

// MountedAt reports the filesystem UUID mounted at target.
func (s *Sim) MountedAt(target string) (uuid string, ok bool) {
	_ = s.with(func(st *state) error { uuid, ok = st.mounts[target]; return nil })
	return uuid, ok
}

// --- smartctl -----------------------------------------------------------------

// smartctl answers `smartctl --json -a DEVICE` with smartctl 7.3's JSON.
// The exit status has smartctl's bits: 2 when the device cannot be
// opened, 8 when SMART says the disk is failing, 16 when a prefail
// attribute is at its threshold.
func (st *state) smartctl(argv, args []string) ([]byte, error) {
	dev := ""
	jsonOut, all := false, false
	for _, a := range args {
		switch {
		case a == "--json" || a == "-j" || strings.HasPrefix(a, "--json="):
			jsonOut = true
		case a == "-a" || a == "--all" || a == "-x":
			all = true
		case !strings.HasPrefix(a, "-"):
			dev = a
		}
	}
	if !jsonOut || !all || dev == "" {
		return nil, exitError(argv, 1, "=======> INVALID ARGUMENT TO -j/-a: the simulator answers only `smartctl --json -a DEVICE`\n")
	}
	head := map[string]any{
		"json_format_version": []int{1, 0},
		"smartctl": map[string]any{
			"version": []int{7, 3}, "svn_revision": "5338", "platform_info": "x86_64-linux-" + kernel,
			"build_info": "(local build)", "argv": append([]string{"smartctl"}, args...),
		},
	}
	d := st.disk(dev)
	if d == nil {
		head["smartctl"].(map[string]any)["messages"] = []any{map[string]any{
			"string": fmt.Sprintf("Smartctl open device: %s failed: No such device", dev), "severity": "error",
		}}
		head["smartctl"].(map[string]any)["exit_status"] = 2
		return marshalIndent(head), exitError(argv, 2, "")
	}
	exit := 0
	table := []any{}
	for _, a := range d.smartAttributes() {
		if a.failed() != "-" {
			exit |= 16
		}
		table = append(table, map[string]any{
			"id": a.ID, "name": a.Name, "value": a.Value, "worst": a.Worst, "thresh": a.Thresh,
			"when_failed": map[bool]string{true: "now", false: ""}[a.failed() != "-"],
			"flags":       map[string]any{"string": a.Flags + " ", "prefailure": strings.HasPrefix(a.Flags, "P")},
			"raw":         map[string]any{"value": a.Raw, "string": strconv.Itoa(a.Raw)},
		})
	}
	if !d.passed {
		exit |= 8
	}
	info := map[string]any{"name": dev, "info_name": dev + " [SAT]", "type": "sat", "protocol": "ATA"}
	if d.typ == "usb" {
		info = map[string]any{"name": dev, "info_name": dev + " [USB JMicron]", "type": "usbjmicron", "protocol": "ATA"}
	}
	head["smartctl"].(map[string]any)["exit_status"] = exit
	head["device"] = info
	head["model_name"] = d.model
	head["serial_number"] = d.serial
	head["firmware_version"] = d.firmware
	head["wwn"] = map[string]any{"naa": 5, "oui": 9528, "id": 0x8f4123456a}
	head["user_capacity"] = map[string]any{"blocks": d.size / 512, "bytes": d.size}
	head["logical_block_size"] = 512
	head["rotation_rate"] = d.rpm
	head["smart_support"] = map[string]any{"available": true, "enabled": true}
	head["smart_status"] = map[string]any{"passed": d.passed}
	head["ata_smart_attributes"] = map[string]any{"revision": 1, "table": table}
	head["power_on_time"] = map[string]any{"hours": d.powerOnHours}
	head["power_cycle_count"] = d.powerCycles
	head["temperature"] = map[string]any{"current": d.temperature}
	out := marshalIndent(head)
	if exit != 0 {
		return out, exitError(argv, exit, "")
	}
	return out, nil
}

func marshalIndent(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return buf.Bytes()
}

// --- sensors ---------------------------------------------------------------

type sensorChip struct {
	name, adapter string
	readings      []*sensorReading
}

type sensorReading struct {
	label            string
	n                int // the N of tempN_input
	input, max, crit float64
}

func defaultSensors() []*sensorChip {
	return []*sensorChip{
		{name: "coretemp-isa-0000", adapter: "ISA adapter", readings: []*sensorReading{
			{label: "Package id 0", n: 1, input: 45, max: 80, crit: 100},
			{label: "Core 0", n: 2, input: 43, max: 80, crit: 100},
			{label: "Core 1", n: 3, input: 44, max: 80, crit: 100},
		}},
		{name: "nvme-pci-0100", adapter: "PCI adapter", readings: []*sensorReading{
			{label: "Composite", n: 1, input: 38.85, max: 81.85, crit: 84.85},
		}},
	}
}

// sensorsJSON answers `sensors -j` with lm-sensors' JSON.
func (st *state) sensorsJSON(argv, args []string) ([]byte, error) {
	if !slices.Contains(args, "-j") {
		return nil, exitError(argv, 1, "the simulator answers only `sensors -j`\n")
	}
	out := map[string]any{}
	for _, chip := range st.sensors {
		m := map[string]any{"Adapter": chip.adapter}
		for _, r := range chip.readings {
			p := fmt.Sprintf("temp%d_", r.n)
			v := map[string]any{p + "input": r.input}
			if r.max != 0 {
				v[p+"max"] = r.max
			}
			if r.crit != 0 {
				v[p+"crit"] = r.crit
				v[p+"crit_alarm"] = 0.0
			}
			m[r.label] = v
		}
		out[chip.name] = m
	}
	return marshalIndent(out), nil
}

// SetTemperature sets the reading labelled label ("Package id 0",
// "Composite", "Core 0", ...) of `sensors -j` to celsius.
func (s *Sim) SetTemperature(label string, celsius float64) error {
	return s.with(func(st *state) error {
		for _, chip := range st.sensors {
			for _, r := range chip.readings {
				if r.label == label {
					r.input = celsius
					return nil
				}
			}
		}
		return fmt.Errorf("pvesim: SetTemperature: no sensor labelled %q", label)
	})
}
