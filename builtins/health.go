package builtins

import (
	"context"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Health is one reading of every monitor, typed for Go callers: the
// daemon's host report reads exactly what monitor.all() gives playbooks,
// through the same monitors (see [MonitorTable]). A monitor that failed
// has its field nil and its reason in Errors, keyed by the monitor's name;
// one not read because the agent runs without privileged operations (a
// choice of the configuration, not a failure) has its reason in Skipped.
type Health struct {
	Node    *proxmox.NodeStatus
	Storage []proxmox.Storage
	Disks   []DiskHealth
	Sensors []proxmox.SensorReading
	Tunnel  *TunnelHealth
	Errors  map[string]string
	Skipped map[string]string
	Took    map[string]time.Duration
}

// ReadHealth reads every monitor concurrently with its defaults, as
// monitor.all() does. env needs Context-free fields only: ctx bounds the
// reads, env.Logger (required) hears of failures, env.Gauges (optional)
// gets the monitor_* gauges.
func ReadHealth(ctx context.Context, env *Env) Health {
	h := Health{Errors: map[string]string{}, Skipped: map[string]string{}, Took: map[string]time.Duration{}}
	for i, r := range readAll(ctx, env) {
		name := monitors[i].name
		h.Took[name] = r.took
		if r.err != nil {
			into := h.Errors
			if r.skipped() {
				into = h.Skipped
			}
			into[name] = r.message(name)
			continue
		}
		switch v := r.r.(type) {
		case nodeReading:
			h.Node = &v.NodeStatus
		case storageReading:
			h.Storage = v
		case smartReading:
			h.Disks = v
		case sensorsReading:
			h.Sensors = v
		case TunnelHealth:
			h.Tunnel = &v
		}
	}
	return h
}
