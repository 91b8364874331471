package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

const sensorsMonitorDoc = "Reads the host's temperature sensors: a list of struct(chip, adapter, label, celsius, " +
	"high, crit), high and crit 0 when the chip reports none. Needs privileged operations (lm-sensors runs as root); " +
	"fails naming that when they are disabled."

// sensorsMonitor reads `sensors -j` through the fenced host operations.
type sensorsMonitor struct{}

// sensorsReading is every temperature the host reports.
type sensorsReading []proxmox.SensorReading

func (sensorsMonitor) read(ctx context.Context, env *Env) (reading, error) {
	if env.Host == nil {
		return nil, errHostDisabled
	}
	rs, err := env.Host.Sensors(ctx)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	return sensorsReading(rs), nil
}

func (r sensorsReading) value() starlark.Value { return listOf(r, sensorValue) }
