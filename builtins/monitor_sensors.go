package builtins

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"
)

const sensorsMonitorDoc = "Reads the host's temperature sensors: a list of struct(chip, adapter, label, celsius, " +
	"high, crit), high and crit 0 when the chip reports none. Needs privileged operations (lm-sensors runs as root); " +
	"fails naming that when they are disabled."

// sensorsMonitor reads `sensors -j` through the fenced host operations.
type sensorsMonitor struct{}

func (sensorsMonitor) collect(ctx context.Context, env *Env) (starlark.Value, error) {
	if env.Host == nil {
		return nil, errHostDisabled
	}
	rs, err := env.Host.Sensors(ctx)
	if err != nil {
		return nil, fmt.Errorf("sensors: %w", err)
	}
	return listOf(rs, sensorValue), nil
}
