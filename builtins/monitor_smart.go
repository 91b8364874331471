package builtins

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

const smartMonitorDoc = "Reads the SMART health of every disk Proxmox lists: a list of struct(device, model, " +
	"health (\"PASSED\", \"FAILED\", \"OK\", \"UNKNOWN\"), passed, temperature (°C, 0 unknown), reallocated " +
	"(reallocated sectors, or NVMe media errors), source, error). With privileged operations it runs smartctl " +
	"(source \"smartctl\"), else it asks the API (source \"api\"). A disk that cannot be read is listed with " +
	"health \"UNKNOWN\" and the reason in error; the monitor fails only when the disk list cannot be read."

// smartMonitor lists disks through the API, then reads each one with
// smartctl when the host operations are enabled (richer and exact), or
// with the API's SMART endpoint otherwise.
type smartMonitor struct{}

// DiskHealth is one disk's SMART reading, as monitor.smart() lists it.
type DiskHealth struct {
	Device, Model string
	// Health is "PASSED", "FAILED", "OK" or "UNKNOWN" (unreadable; Error
	// says why).
	Health string
	Passed bool
	// Temperature is °C, 0 when unknown.
	Temperature int
	// Reallocated counts reallocated sectors, or NVMe media errors.
	Reallocated int64
	// Source is "smartctl" or "api".
	Source string
	Error  string
}

func (r DiskHealth) value() starlark.Value {
	return newStruct(starlark.StringDict{
		"device":      starlark.String(r.Device),
		"model":       starlark.String(r.Model),
		"health":      starlark.String(r.Health),
		"passed":      starlark.Bool(r.Passed),
		"temperature": starlark.MakeInt(r.Temperature),
		"reallocated": starlark.MakeInt64(r.Reallocated),
		"source":      starlark.String(r.Source),
		"error":       starlark.String(r.Error),
	})
}

// smartReading is every disk's row.
type smartReading []DiskHealth

func (rs smartReading) value() starlark.Value { return listOf(rs, DiskHealth.value) }

func (smartMonitor) read(ctx context.Context, env *Env) (reading, error) {
	if env.Proxmox == nil {
		return nil, errNoProxmox
	}
	disks, err := env.Proxmox.Disks(ctx)
	if err != nil {
		return nil, fmt.Errorf("list disks: %w", err)
	}
	out := make(smartReading, 0, len(disks))
	for _, d := range disks {
		var r DiskHealth
		if env.Host != nil {
			r = smartFromHost(ctx, env.Host, d)
		} else {
			r = smartFromAPI(ctx, env.Proxmox, d)
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		out = append(out, r)
	}
	return out, nil
}

func smartFromHost(ctx context.Context, host HostOps, d proxmox.Disk) DiskHealth {
	r := DiskHealth{Device: d.DevPath, Model: d.Model, Source: "smartctl", Health: "UNKNOWN"}
	rep, err := host.SMART(ctx, d.DevPath)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if rep.Model != "" {
		r.Model = rep.Model
	}
	r.Passed, r.Temperature, r.Reallocated = rep.Passed, rep.Temperature, rep.Reallocated
	r.Health = "FAILED"
	if rep.Passed {
		r.Health = "PASSED"
	}
	return r
}

func smartFromAPI(ctx context.Context, api guestReader, d proxmox.Disk) DiskHealth {
	r := DiskHealth{Device: d.DevPath, Model: d.Model, Source: "api", Health: "UNKNOWN"}
	data, err := api.DiskSMART(ctx, d.DevPath)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if data.Health != "" {
		r.Health = data.Health
	}
	r.Passed = healthPassed(data.Health)
	switch data.Type {
	case "ata":
		r.Temperature, r.Reallocated = smartATA(data.Attributes)
	case "text":
		r.Temperature, r.Reallocated = smartText(data.Text)
	}
	return r
}

// ATA attribute ids (smartmontools drivedb): 5 Reallocated_Sector_Ct,
// 194 Temperature_Celsius, 190 Airflow_Temperature_Cel (the fallback some
// drives report instead of 194).
const (
	ataReallocated = 5
	ataTemperature = 194
	ataAirflowTemp = 190
)

// smartATA reads temperature and reallocated sectors from the attribute
// table; raw values look like "34", "34 (Min/Max 20/45)" or "0".
func smartATA(attrs []proxmox.SMARTAttribute) (temperature int, reallocated int64) {
	airflow := 0
	for _, a := range attrs {
		n, ok := leadingInt(a.Raw)
		if !ok {
			continue
		}
		switch {
		case a.ID == ataReallocated:
			reallocated = n
		case a.ID == ataTemperature || a.Name == "Temperature_Celsius":
			temperature = int(n)
		case a.ID == ataAirflowTemp:
			airflow = int(n)
		}
	}
	if temperature == 0 {
		temperature = airflow
	}
	return temperature, reallocated
}

// smartText reads the health section smartctl prints for NVMe and SAS
// disks, which PVE passes through as text:
//
//	Temperature:                        34 Celsius            (NVMe)
//	Media and Data Integrity Errors:    0                     (NVMe)
//	Current Drive Temperature:     30 C                       (SAS)
//	Elements in grown defect list: 0                          (SAS)
func smartText(text string) (temperature int, reallocated int64) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, ok := leadingInt(strings.ReplaceAll(strings.TrimSpace(val), ",", ""))
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "Temperature", "Current Drive Temperature":
			temperature = int(n)
		case "Media and Data Integrity Errors", "Elements in grown defect list":
			reallocated = n
		}
	}
	return temperature, reallocated
}

// leadingInt parses the decimal digits s starts with (after spaces); it
// reports false when there are none or they overflow int64.
func leadingInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
