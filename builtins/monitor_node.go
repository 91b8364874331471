package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

const nodeMonitorDoc = "Reads the node's load: struct(cpu (percent 0..100), cpus, load1, load5, load15, " +
	"mem_used, mem_total, mem_percent, rootfs_used, rootfs_total, rootfs_percent, swap_percent, uptime (duration)). " +
	"Sizes are bytes; percentages are floats."

// nodeMonitor reads GET /nodes/{node}/status.
type nodeMonitor struct{}

// nodeReading is the node's status as PVE reports it.
type nodeReading struct{ proxmox.NodeStatus }

func (nodeMonitor) read(ctx context.Context, env *Env) (reading, error) {
	if env.Proxmox == nil {
		return nil, errNoProxmox
	}
	s, err := env.Proxmox.NodeStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("node status: %w", err)
	}
	return nodeReading{s}, nil
}

func (r nodeReading) value() starlark.Value {
	s := r.NodeStatus
	return newStruct(starlark.StringDict{
		"cpu":            starlark.Float(s.CPU * 100), // PVE sends a 0..1 fraction
		"cpus":           starlark.MakeInt(s.CPUs),
		"load1":          starlark.Float(s.LoadAvg[0]),
		"load5":          starlark.Float(s.LoadAvg[1]),
		"load15":         starlark.Float(s.LoadAvg[2]),
		"mem_used":       starlark.MakeUint64(s.Memory.Used),
		"mem_total":      starlark.MakeUint64(s.Memory.Total),
		"mem_percent":    starlark.Float(s.Memory.Percent()),
		"rootfs_used":    starlark.MakeUint64(s.RootFS.Used),
		"rootfs_total":   starlark.MakeUint64(s.RootFS.Total),
		"rootfs_percent": starlark.Float(s.RootFS.Percent()),
		"swap_percent":   starlark.Float(s.Swap.Percent()),
		"uptime":         secondsValue(s.Uptime),
	})
}
