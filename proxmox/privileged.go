package proxmox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// PrivilegedConfig configures [Privileged]. The zero value is the default:
// mounts below /mnt/felhom, commands run directly (the agent is root).
//
// The JSON keys are the agent configuration's keys below "privileged".
type PrivilegedConfig struct {
	// MountPrefix is the only directory below which MountUSBByUUID mounts.
	// It must be absolute, clean and not "/"; "" means "/mnt/felhom". It
	// should be owned by root and writable by nobody else, because mount
	// follows symbolic links in its target. The sudoers file in deploy/
	// names /mnt/felhom; a different prefix needs that file changed too.
	MountPrefix string `json:"mount_prefix,omitempty"`
	// BootstrapRoot is the only directory whose VMID subdirectories
	// AttachReadOnly attaches to guests: the agent's state directory's
	// "guests"; "" means DefaultBootstrapRoot. deploy/sudoers names the
	// default; a different one needs that file changed too.
	BootstrapRoot string `json:"bootstrap_root,omitempty"`
	// Sudo runs each command as "sudo -n PROGRAM ...", for an agent that
	// runs as the unprivileged user felhom-agent with deploy/sudoers
	// installed. False runs the programs directly (the agent is root).
	Sudo bool `json:"sudo,omitempty"`
}

// DefaultMountPrefix is where USB disks are mounted when
// PrivilegedConfig.MountPrefix is empty.
const DefaultMountPrefix = "/mnt/felhom"

// DefaultBootstrapRoot is PrivilegedConfig.BootstrapRoot's default: the
// default state directory's guests directory.
const DefaultBootstrapRoot = "/var/lib/felhom-agent/guests"

// BootstrapMountPath is where a container sees its bootstrap directory
// (the guest API's bootstrap file), the one guest path AttachReadOnly
// mounts at.
const BootstrapMountPath = "/etc/felhom-bootstrap"

// Validate reports every problem in c, each naming its configuration key.
func (c *PrivilegedConfig) Validate() error {
	if c.MountPrefix != "" {
		if err := checkMountPrefix(c.MountPrefix); err != nil {
			return fmt.Errorf("privileged.mount_prefix: %w", err)
		}
	}
	if c.BootstrapRoot != "" {
		if err := checkMountPrefix(c.BootstrapRoot); err != nil {
			return fmt.Errorf("privileged.bootstrap_root: %w", err)
		}
	}
	return nil
}

// Privileged runs the few root-only operations the Proxmox VE API cannot
// do, each as one fixed command line through a [Runner]. Every argument is
// validated before the runner is called: a refused argument returns an
// [*ArgError] naming the operation and field, and nothing runs. Privileged
// never makes an HTTP call and holds no API token.
//
// The command lines, fixed apart from the validated values:
//
//	pct create VMID TEMPLATE --hostname H --cores N --memory M --rootfs STORAGE:GiB
//	    --net0 name=eth0,bridge=B,ip=dhcp --features keyctl=1,nesting=1 --unprivileged 1|0
//	mount -o nodev,nosuid,noexec UUID=<uuid> TARGET
//	smartctl --json -a DEVICE
//	sensors -j
//	pct set VMID --mpN BOOTSTRAP_ROOT/VMID,mp=/etc/felhom-bootstrap,ro=1,shared=1
//
// deploy/sudoers allows exactly these shapes for the felhom-agent user.
// A Privileged is safe for concurrent use if its Runner is.
type Privileged struct {
	prefix      string
	bootstrap   string
	run         Runner
	requireGate bool
}

// RequireGate makes every later changing command (create_golden,
// mount_usb) whose context carries no [RootGate] fail with [ErrNoGate],
// nothing run. Call it before the Privileged is shared.
func (p *Privileged) RequireGate() { p.requireGate = true }

// gate asks the context's gate before a fenced command that changes the
// host (pct create, mount) runs: its [RootGate] with op (the safety gate,
// which asks the run store in turn), or else its [MutationGate] as the
// Client asks it before an API mutation, with method "EXEC" and the
// validated command line as the path (the run store writes the intent).
// A refusal runs nothing and is returned wrapping [ErrNotSent] and the
// gate's error; without a gate it fails closed when one is required.
// Reads (smartctl, sensors) are not gated.
func (p *Privileged) gate(ctx context.Context, op RootOp) error {
	var err error
	switch g := observerFrom(ctx).(type) {
	case RootGate:
		err = g.BeforeRoot(ctx, op)
	case MutationGate:
		err = g.BeforeMutation(ctx, Mutation{Method: "EXEC", Path: strings.Join(op.Argv, " ")})
	default:
		if p.requireGate {
			err = ErrNoGate
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w: %w", op.Op, op.Argv[0], ErrNotSent, err)
	}
	return nil
}

// NewPrivileged returns a Privileged that runs commands through r. A nil r
// means an [*ExecRunner] with the default program paths and cfg.Sudo.
func NewPrivileged(cfg PrivilegedConfig, r Runner) (*Privileged, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MountPrefix == "" {
		cfg.MountPrefix = DefaultMountPrefix
	}
	if cfg.BootstrapRoot == "" {
		cfg.BootstrapRoot = DefaultBootstrapRoot
	}
	if r == nil {
		r = &ExecRunner{Sudo: cfg.Sudo}
	}
	return &Privileged{prefix: cfg.MountPrefix, bootstrap: cfg.BootstrapRoot, run: r}, nil
}

// MountPrefix returns the directory below which MountUSBByUUID mounts.
func (p *Privileged) MountPrefix() string { return p.prefix }

// AttachReadOnly bind-mounts hostDir into container vmid read-only, as
// mount point mpSLOT at guestPath: the guest API's bootstrap directory.
// hostDir must be exactly BOOTSTRAP_ROOT/VMID (no symbolic link on the
// way), guestPath must be BootstrapMountPath and slot 0..255. The file
// inside holds the guest's token; the token is never an argument.
//
// The mount point is marked shared=1: pve-container migrates a container
// with a local bind mount only when it is (src/PVE/LXC/Migrate.pm
// prepare: "cannot migrate local bind mount point"). shared=1 grants
// nothing; it tells PVE the path exists on every node, which the agent
// of every node makes true (runtime/agent, docs/guest-api.md). Running
// it again on a mount point attached without shared=1 re-marks it.
//
// Why not the API: PVE lets only root@pam set a mount point that is a
// host path ("only root can set 'mpN' config for non-volume"
// in pve-container src/PVE/LXC/Config.pm check_ct_modify_config_perm),
// and an API token, even one of root@pam, is refused.
func (p *Privileged) AttachReadOnly(ctx context.Context, vmid, slot int, hostDir, guestPath string) error {
	argv, err := attachArgv(p.bootstrap, vmid, slot, hostDir, guestPath)
	if err != nil {
		return err
	}
	if err := checkNoSymlinks(opAttachRO, p.bootstrap, hostDir); err != nil {
		return err
	}
	if err := p.gate(ctx, RootOp{Op: opAttachRO, VMID: vmid, Argv: argv}); err != nil {
		return err
	}
	if _, err := p.run.Run(ctx, argv); err != nil {
		return fmt.Errorf("%s: pct set %d --mp%d: %w", opAttachRO, vmid, slot, err)
	}
	return nil
}

func attachArgv(root string, vmid, slot int, hostDir, guestPath string) ([]string, error) {
	var errs []error
	errs = append(errs, checkVMID(opAttachRO, vmid))
	if slot < 0 || slot > 255 {
		errs = append(errs, &ArgError{opAttachRO, "slot", strconv.Itoa(slot), "is not in 0..255 (mp0..mp255)"})
	}
	if want := root + "/" + strconv.Itoa(vmid); hostDir != want {
		errs = append(errs, &ArgError{opAttachRO, "host_dir", hostDir, "is not " + want})
	}
	if guestPath != BootstrapMountPath {
		errs = append(errs, &ArgError{opAttachRO, "guest_path", guestPath, "is not " + BootstrapMountPath})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return []string{"pct", "set", strconv.Itoa(vmid), "--mp" + strconv.Itoa(slot), hostDir + ",mp=" + guestPath + ",ro=1,shared=1"}, nil
}

// Defaults and bounds of GoldenSpec's sizes; the bounds are PVE's
// (cores 1..8192, memory at least 16 MiB) or generous sanity limits.
const (
	defaultRootFSGB = 8
	defaultCores    = 1
	defaultMemoryMB = 512
	defaultBridge   = "vmbr0"
	maxRootFSGB     = 65536
	maxCores        = 8192
	minMemoryMB     = 16
	maxMemoryMB     = 16 << 20
)

// CreateGoldenLXC creates the container spec describes with the keyctl and
// nesting features (needed for Docker inside an unprivileged container).
// Zero sizes take GoldenSpec's documented defaults; the OS type is
// detected by pct from the template. It returns when pct has exited.
//
// Why not the API: PVE lets only root@pam itself change feature flags other
// than nesting ("changing feature flags (except nesting) is only allowed
// for root@pam"); an API token, even one of root@pam, is refused.
func (p *Privileged) CreateGoldenLXC(ctx context.Context, spec GoldenSpec) error {
	argv, err := goldenArgv(spec)
	if err != nil {
		return err
	}
	if err := p.gate(ctx, RootOp{Op: opCreateGolden, VMID: spec.VMID, Argv: argv}); err != nil {
		return err
	}
	if _, err := p.run.Run(ctx, argv); err != nil {
		return fmt.Errorf("%s: pct create %d: %w", opCreateGolden, spec.VMID, err)
	}
	return nil
}

// goldenArgv validates spec, applies its defaults and returns pct's argv.
func goldenArgv(s GoldenSpec) ([]string, error) {
	const op = opCreateGolden
	if s.RootFSGB == 0 {
		s.RootFSGB = defaultRootFSGB
	}
	if s.Cores == 0 {
		s.Cores = defaultCores
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = defaultMemoryMB
	}
	if s.Bridge == "" {
		s.Bridge = defaultBridge
	}
	if err := errors.Join(
		checkVMID(op, s.VMID),
		checkTemplate(op, s.Template),
		checkHostname(op, s.Hostname),
		checkStorage(op, "storage", s.Storage),
		checkRange(op, "rootfs_gb", s.RootFSGB, 1, maxRootFSGB),
		checkRange(op, "cores", s.Cores, 1, maxCores),
		checkRange(op, "memory_mb", s.MemoryMB, minMemoryMB, maxMemoryMB),
		checkBridge(op, s.Bridge),
	); err != nil {
		return nil, err
	}
	unpriv := "0"
	if s.Unprivileged {
		unpriv = "1"
	}
	return []string{
		"pct", "create", strconv.Itoa(s.VMID), s.Template,
		"--hostname", s.Hostname,
		"--cores", strconv.Itoa(s.Cores),
		"--memory", strconv.Itoa(s.MemoryMB),
		"--rootfs", s.Storage + ":" + strconv.Itoa(s.RootFSGB),
		"--net0", "name=eth0,bridge=" + s.Bridge + ",ip=dhcp",
		"--features", "keyctl=1,nesting=1",
		"--unprivileged", unpriv,
	}, nil
}

// MountUSBByUUID mounts the filesystem with the given UUID at target, with
// nodev,nosuid,noexec, and returns the mount path. target must be an
// existing directory given as a clean absolute path strictly below the
// mount prefix, each component of [a-zA-Z0-9._-].
//
// Why not the API: PVE's API has no call that mounts an arbitrary block
// device; it only mounts storages it defines.
func (p *Privileged) MountUSBByUUID(ctx context.Context, uuid, target string) (string, error) {
	argv, err := mountArgv(p.prefix, uuid, target)
	if err != nil {
		return "", err
	}
	if err := checkNoSymlinks(opMountUSB, p.prefix, target); err != nil {
		return "", err
	}
	if err := p.gate(ctx, RootOp{Op: opMountUSB, Argv: argv}); err != nil {
		return "", err
	}
	if _, err := p.run.Run(ctx, argv); err != nil {
		return "", fmt.Errorf("%s: mount UUID=%s on %s: %w", opMountUSB, uuid, target, err)
	}
	return target, nil
}

func mountArgv(prefix, uuid, target string) ([]string, error) {
	if err := errors.Join(checkUUID(opMountUSB, uuid), checkMountTarget(opMountUSB, prefix, target)); err != nil {
		return nil, err
	}
	return []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=" + uuid, target}, nil
}

// smartctl's exit status bits that mean no report was produced: 1 the
// command line did not parse, 2 the device could not be opened.
const smartFatalBits = 1 | 2

// SMART returns the SMART summary of a whole disk. smartctl's exit status
// is a bitmask (see SMARTReport.ExitStatus): bits 1 and 2 mean there is no
// report and are an error; any other bits (a failing disk, logged errors)
// come back in ExitStatus with the report and no error.
//
// Why not the API: PVE's disks/smart answers NVMe disks with smartctl's
// text output only, reports no temperature or power-on time as values and
// hides smartctl's status bits; smartctl's JSON has all of them.
func (p *Privileged) SMART(ctx context.Context, device string) (SMARTReport, error) {
	if err := checkDevice(opSMART, device); err != nil {
		return SMARTReport{}, err
	}
	argv := []string{"smartctl", "--json", "-a", device}
	out, err := p.run.Run(ctx, argv)
	status := 0
	if ee, ok := errors.AsType[*ExitError](err); ok {
		status = ee.Code
		if status < 0 || status&smartFatalBits != 0 {
			if msg := smartMessages(out); msg != "" {
				return SMARTReport{}, fmt.Errorf("%s: %s: %s: %w", opSMART, device, msg, err)
			}
			return SMARTReport{}, fmt.Errorf("%s: %s: %w", opSMART, device, err)
		}
	} else if err != nil {
		return SMARTReport{}, fmt.Errorf("%s: %s: %w", opSMART, device, err)
	}
	r, err := ParseSMART(out)
	if err != nil {
		return SMARTReport{}, fmt.Errorf("%s: %s: %w", opSMART, device, err)
	}
	if r.Device == "" {
		r.Device = device
	}
	r.ExitStatus = status
	return r, nil
}

// smartJSON is the part of smartctl 7.x's JSON output SMART reads.
type smartJSON struct {
	Smartctl struct {
		Messages []struct {
			String   string `json:"string"`
			Severity string `json:"severity"`
		} `json:"messages"`
	} `json:"smartctl"`
	Device struct {
		Name string `json:"name"`
	} `json:"device"`
	ModelName    string `json:"model_name"`
	SerialNumber string `json:"serial_number"`
	SmartStatus  *struct {
		Passed bool `json:"passed"`
	} `json:"smart_status"`
	Temperature struct {
		Current int `json:"current"`
	} `json:"temperature"`
	PowerOnTime struct {
		Hours int64 `json:"hours"`
	} `json:"power_on_time"`
	ATASmartAttributes struct {
		Table []struct {
			ID  int `json:"id"`
			Raw struct {
				Value int64 `json:"value"`
			} `json:"raw"`
		} `json:"table"`
	} `json:"ata_smart_attributes"`
	NVMeLog *struct {
		MediaErrors int64 `json:"media_errors"`
	} `json:"nvme_smart_health_information_log"`
}

// ataReallocatedSectors is the ATA attribute Reallocated_Sector_Ct.
const ataReallocatedSectors = 5

// ParseSMART reads the output of `smartctl --json -a DEVICE` (smartctl 7.x)
// into a report. ExitStatus is left 0: it is not part of the output.
// Fields the output lacks stay zero; Passed is false when smartctl could
// not read the health status.
func ParseSMART(out []byte) (SMARTReport, error) {
	var j smartJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return SMARTReport{}, fmt.Errorf("smartctl output is not smartctl JSON: %w", err)
	}
	r := SMARTReport{
		Device:       j.Device.Name,
		Model:        j.ModelName,
		Serial:       j.SerialNumber,
		Temperature:  j.Temperature.Current,
		PowerOnHours: j.PowerOnTime.Hours,
	}
	if j.SmartStatus != nil {
		r.Passed = j.SmartStatus.Passed
	}
	for _, a := range j.ATASmartAttributes.Table {
		if a.ID == ataReallocatedSectors {
			r.Reallocated = a.Raw.Value
		}
	}
	if j.NVMeLog != nil {
		r.Reallocated = j.NVMeLog.MediaErrors
	}
	return r, nil
}

// smartMessages returns smartctl's own error messages from its JSON, which
// explain a fatal exit better than its (empty) standard error.
func smartMessages(out []byte) string {
	var j smartJSON
	if json.Unmarshal(out, &j) != nil {
		return ""
	}
	var msgs []string
	for _, m := range j.Smartctl.Messages {
		if s := strings.TrimSpace(m.String); s != "" {
			msgs = append(msgs, s)
		}
	}
	return strings.Join(msgs, "; ")
}

// Sensors returns every temperature input lm-sensors reports, sorted by
// chip, then label, then input name.
//
// Why not the API: PVE has no endpoint for hardware sensors.
func (p *Privileged) Sensors(ctx context.Context) ([]SensorReading, error) {
	out, err := p.run.Run(ctx, []string{"sensors", "-j"})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opSensors, err)
	}
	rs, err := ParseSensors(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opSensors, err)
	}
	return rs, nil
}

var tempInputPattern = regexp.MustCompile(`^temp([0-9]+)_input$`)

// ParseSensors reads the output of `sensors -j`: an object of chips, each
// an "Adapter" string and features, each feature an object of subfeature
// values. Only tempN_input subfeatures become readings, with tempN_max and
// tempN_crit of the same feature as High and Crit. Values that are not
// numbers (some drivers report errors in their place) are skipped.
func ParseSensors(out []byte) ([]SensorReading, error) {
	var chips map[string]map[string]json.RawMessage
	if err := json.Unmarshal(out, &chips); err != nil {
		return nil, fmt.Errorf("sensors output is not lm-sensors JSON: %w", err)
	}
	type keyed struct {
		r   SensorReading
		idx int
	}
	var all []keyed
	for chip, features := range chips {
		var adapter string
		if raw, ok := features["Adapter"]; ok {
			_ = json.Unmarshal(raw, &adapter) // a non-string adapter is left empty
		}
		for label, raw := range features {
			if label == "Adapter" {
				continue
			}
			var sub map[string]json.RawMessage
			if json.Unmarshal(raw, &sub) != nil {
				continue
			}
			for name, v := range sub {
				m := tempInputPattern.FindStringSubmatch(name)
				if m == nil {
					continue
				}
				in, ok := number(v)
				if !ok {
					continue
				}
				high, _ := number(sub["temp"+m[1]+"_max"])
				crit, _ := number(sub["temp"+m[1]+"_crit"])
				idx, _ := strconv.Atoi(m[1])
				all = append(all, keyed{SensorReading{chip, adapter, label, in, high, crit}, idx})
			}
		}
	}
	slices.SortFunc(all, func(a, b keyed) int {
		if c := strings.Compare(a.r.Chip, b.r.Chip); c != 0 {
			return c
		}
		if c := strings.Compare(a.r.Label, b.r.Label); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	rs := make([]SensorReading, len(all))
	for i, k := range all {
		rs[i] = k.r
	}
	return rs, nil
}

// number decodes a JSON number; anything else (absent, null, a string)
// reports false.
func number(raw json.RawMessage) (float64, bool) {
	var f float64
	if len(raw) == 0 || raw[0] == 'n' || json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}
