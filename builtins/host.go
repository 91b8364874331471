package builtins

import (
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// HostTable is the `host` module: the fenced root operations the Proxmox
// API cannot do, run by the agent's Privileged runner with every argument
// validated before anything executes.
//
// They exist only when the configuration enables privileged operations.
// Otherwise every function except enabled() fails with
// "host.NAME: privileged operations are disabled (set privileged.enabled
// in the configuration)"; a playbook that can do without them branches on
// host.enabled().
var HostTable = &Table{
	Name:  "host",
	Waits: true,
	Doc: "Fenced root operations on the Proxmox host (golden template " +
		"creation, USB mounts, SMART, sensors). Available only when the " +
		"configuration enables privileged operations; host.enabled() tells.",
	Funcs: []Func{
		{Name: "enabled", Effect: Reads, Journal: Replayed, Sig: "enabled()", Fn: hostEnabled,
			Doc: "Returns whether privileged operations are enabled for this run. Never fails; while a file loads it returns False, since nothing may act then."},
		{Name: "create_golden", Effect: Gated, Destructive: "when the vmid is taken (it would replace a guest the run did not create)", Journal: Once, Sig: "create_golden(vmid, template, hostname, storage=\"local-lvm\", rootfs_gb=8, cores=1, memory=512, bridge=\"vmbr0\", unprivileged=True)", Fn: hostCreateGolden,
			Doc: "Creates container vmid from OS template (a vztmpl volid) with keyctl=1 — which the API refuses to a token — via `pct create`, with the given hostname, root disk storage and size in GiB, cores, memory in MiB and bridge. Takes the agent's lock on vmid. Returns None; fails if the guest exists or an argument is invalid."},
		{Name: "mount_usb", Effect: Benign, Journal: Once, Sig: "mount_usb(uuid, target)", Fn: hostMountUSB,
			Doc: "Mounts the filesystem with UUID uuid at target (which must be under the configured mount prefix), nodev,nosuid,noexec. Returns the mounted path."},
		{Name: "smart", Effect: Reads, Journal: Replayed, Sig: "smart(device)", Fn: hostSmart, Returns: smartReport,
			Doc: "Runs smartctl on device (e.g. \"/dev/sda\"). Returns struct(device, model, serial, passed, temperature (°C, 0 unknown), power_on_hours, reallocated, exit_status (smartctl's status bits))."},
		{Name: "sensors", Effect: Reads, Journal: Replayed, Sig: "sensors()", Fn: hostSensors, Returns: ListOf(sensorShape),
			Doc: "Reads lm-sensors temperatures. Returns a list of struct(chip, adapter, label, celsius, high, crit); high and crit are 0 when the chip reports none."},
	},
}

// errHostDisabled is the cause of every host.* failure when the
// configuration does not enable privileged operations.
var errHostDisabled = errors.New("privileged operations are disabled (set privileged.enabled in the configuration)")

// hostError names b in err, unless the error already starts with that
// name: proxmox.Privileged names its operations after these builtins
// ("host.smart: /dev/sda: ..."), and the name should appear once.
func hostError(b *starlark.Builtin, err error) error {
	if strings.HasPrefix(err.Error(), b.Name()+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", b.Name(), err)
}

// hostEnv is how host builtins start: the run's Env and its HostOps.
func hostEnv(thread *starlark.Thread, b *starlark.Builtin) (*Env, HostOps, error) {
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, nil, err
	}
	if env.Host == nil {
		return nil, nil, fmt.Errorf("%s: %w", b.Name(), errHostDisabled)
	}
	return env, env.Host, nil
}

func hostEnabled(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	env := EnvOf(thread)
	return starlark.Bool(env != nil && env.Host != nil), nil
}

func hostCreateGolden(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var vmid VMID
	spec := proxmox.GoldenSpec{Storage: "local-lvm", RootFSGB: 8, Cores: 1, MemoryMB: 512, Bridge: "vmbr0", Unprivileged: true}
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"vmid", &vmid, "template", &spec.Template, "hostname", &spec.Hostname,
		"storage?", &spec.Storage, "rootfs_gb?", &spec.RootFSGB, "cores?", &spec.Cores,
		"memory?", &spec.MemoryMB, "bridge?", &spec.Bridge, "unprivileged?", &spec.Unprivileged); err != nil {
		return nil, err
	}
	spec.VMID = int(vmid)
	for _, p := range []struct {
		name string
		v    int
	}{{"rootfs_gb", spec.RootFSGB}, {"cores", spec.Cores}, {"memory", spec.MemoryMB}} {
		if p.v <= 0 {
			return nil, fmt.Errorf("%s: %s must be positive, got %d", b.Name(), p.name, p.v)
		}
	}
	for _, p := range []struct{ name, v string }{
		{"template", spec.Template}, {"hostname", spec.Hostname}, {"storage", spec.Storage}, {"bridge", spec.Bridge},
	} {
		if err := nonEmpty(b, p.name, p.v); err != nil {
			return nil, err
		}
	}
	env, host, err := hostEnv(thread, b)
	if err != nil {
		return nil, err
	}
	unlock, err := lockGuests(env.Context, env.Locks, []int{spec.VMID})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	defer unlock()
	if err := host.CreateGoldenLXC(env.Context, spec); err != nil {
		return nil, hostError(b, err)
	}
	env.Logger.Info("golden container created", "builtin", b.Name(), "vmid", spec.VMID)
	return starlark.None, nil
}

func hostMountUSB(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var uuid, target string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "uuid", &uuid, "target", &target); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "uuid", uuid); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "target", target); err != nil {
		return nil, err
	}
	env, host, err := hostEnv(thread, b)
	if err != nil {
		return nil, err
	}
	path, err := host.MountUSBByUUID(env.Context, uuid, target)
	if err != nil {
		return nil, hostError(b, err)
	}
	return starlark.String(path), nil
}

func hostSmart(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var device string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "device", &device); err != nil {
		return nil, err
	}
	if err := nonEmpty(b, "device", device); err != nil {
		return nil, err
	}
	env, host, err := hostEnv(thread, b)
	if err != nil {
		return nil, err
	}
	r, err := host.SMART(env.Context, device)
	if err != nil {
		return nil, hostError(b, err)
	}
	return smartReportValue(r), nil
}

func hostSensors(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	env, host, err := hostEnv(thread, b)
	if err != nil {
		return nil, err
	}
	rs, err := host.Sensors(env.Context)
	if err != nil {
		return nil, hostError(b, err)
	}
	return listOf(rs, sensorValue), nil
}
