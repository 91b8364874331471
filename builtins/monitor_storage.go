package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

const storageMonitorDoc = "Reads this node's storages: a list of struct(storage, type, active, enabled, " +
	"used, total, avail (bytes), used_percent (float, 0 when the size is unknown))."

// storageMonitor reads GET /nodes/{node}/storage.
type storageMonitor struct{}

// storageReading is this node's storages.
type storageReading []proxmox.Storage

func (storageMonitor) read(ctx context.Context, env *Env) (reading, error) {
	if env.Proxmox == nil {
		return nil, errNoProxmox
	}
	ss, err := env.Proxmox.NodeStorages(ctx)
	if err != nil {
		return nil, fmt.Errorf("node storages: %w", err)
	}
	return storageReading(ss), nil
}

func (r storageReading) value() starlark.Value {
	return listOf(r, func(s proxmox.Storage) starlark.Value {
		return newStruct(starlark.StringDict{
			"storage":      starlark.String(s.Storage),
			"type":         starlark.String(s.Type),
			"active":       starlark.Bool(s.Active),
			"enabled":      starlark.Bool(s.Enabled),
			"used":         starlark.MakeUint64(s.Used),
			"total":        starlark.MakeUint64(s.Total),
			"avail":        starlark.MakeUint64(s.Avail),
			"used_percent": starlark.Float(s.UsedPercent()),
		})
	})
}
