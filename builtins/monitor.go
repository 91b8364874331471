package builtins

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"go.starlark.net/starlark"
)

// MonitorTable is the `monitor` module: read-only health readings of the
// host, shaped for a playbook to compare against its thresholds, and
// monitor.gauge to publish what it concludes as a metric.
//
// Each monitor lives in its own file (monitor_node.go, ...) behind the
// [monitor] interface and is listed once in [monitors]; the module's
// functions and monitor.all() are built from that list, so adding a
// monitor is one file and one line. Every reading records its duration
// and success: in the run log, as the gauges monitor_duration_seconds and
// monitor_success{monitor=NAME} when a gauge sink is configured, and in
// monitor.all()'s result — except a monitor skipped for want of privileged
// operations, which sets neither gauge and is logged at debug level.
var MonitorTable = &Table{
	Effect: Reads,
	Name:   "monitor",
	Waits:  true,
	Doc: "Read-only host health: node load and memory, storage usage, disk " +
		"SMART, temperatures and the hub tunnel, each as structs to compare " +
		"against thresholds; all() reads every monitor at once; gauge() " +
		"publishes a metric.",
	Funcs: append(monitorFuncs(),
		Func{Name: "all", Journal: Replayed, Sig: "all()", Fn: monitorAll, Returns: monitorAllShape,
			Doc: "Reads every monitor concurrently with its defaults and returns struct(node, storage, smart, sensors, tunnel, errors, skipped, took): each monitor's reading (None when it failed or was skipped), errors a dict monitor → message of the ones that failed (one failure never stops the others), skipped a dict monitor → reason of the ones not read because the agent runs without privileged operations (sensors needs them: not a failure), took a dict monitor → duration. Fails only when the run is cancelled."},
		Func{Name: "gauge_value", Journal: Replayed, Sig: "gauge_value(name, labels={})", Fn: monitorGaugeValue,
			Doc: "Returns the value last published with gauge(name, ..., labels) in this agent process (a float), or None — for comparing a reading with the previous run's, e.g. a growing count."},
		Func{Name: "gauge", Journal: Once, Sig: "gauge(name, value, labels={})", Fn: monitorGauge,
			Doc: "Publishes value (int or float) as gauge name with labels (dict of name → str or int) on the agent's metrics endpoint, which prefixes the name. Names and label names match [a-z_][a-z0-9_]*; label names must not start with \"__\". Returns None; without a metrics sink it does nothing."},
	),
}

// monitor reads one aspect of the host's health. read must honour ctx and
// may be called concurrently with other monitors. Its reading is typed,
// so that Go callers ([ReadHealth], for the hub report) and playbooks (its
// value()) read the same thing.
type monitor interface {
	read(ctx context.Context, env *Env) (reading, error)
}

// reading is one monitor's typed result; value is what playbooks see (a
// struct or a list of structs).
type reading interface {
	value() starlark.Value
}

// monitorDef is one row of the monitor table: the module function
// monitor.NAME and the reading monitor.all() takes.
type monitorDef struct {
	name string
	sig  string
	doc  string
	// shape is what the function returns, for check (shape.go).
	shape *Shape
	// configure unpacks the function's arguments into the monitor to run;
	// monitor.all() calls it with no arguments to get the defaults.
	configure func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (monitor, error)
}

// monitors is every monitor, in the order the reference and all() list
// them. An explicit table rather than init() registration: the set is
// known at compile time and readable in one place.
var monitors = []monitorDef{
	{name: "node", sig: "node()", doc: nodeMonitorDoc, shape: monitorNodeShape, configure: withoutArgs(nodeMonitor{})},
	{name: "storage", sig: "storage()", doc: storageMonitorDoc, shape: monitorStorageShape, configure: withoutArgs(storageMonitor{})},
	{name: "smart", sig: "smart()", doc: smartMonitorDoc, shape: monitorSmartShape, configure: withoutArgs(smartMonitor{})},
	{name: "sensors", sig: "sensors()", doc: sensorsMonitorDoc, shape: monitorSensorsShape, configure: withoutArgs(sensorsMonitor{})},
	{name: "tunnel", sig: "tunnel(timeout=\"3s\")", doc: tunnelMonitorDoc, shape: monitorTunnelShape, configure: configureTunnel},
}

// withoutArgs configures a monitor that takes no arguments.
func withoutArgs(m monitor) func(*starlark.Builtin, starlark.Tuple, []starlark.Tuple) (monitor, error) {
	return func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (monitor, error) {
		return m, starlark.UnpackArgs(b.Name(), args, kwargs)
	}
}

func monitorFuncs() []Func {
	fs := make([]Func, 0, len(monitors)+2)
	for _, d := range monitors {
		fs = append(fs, Func{Name: d.name, Journal: Replayed, Sig: d.sig, Doc: d.doc, Returns: d.shape, Fn: monitorBuiltin(d)})
	}
	return fs
}

// monitorBuiltin is the module function of one monitor.
func monitorBuiltin(d monitorDef) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		m, err := d.configure(b, args, kwargs)
		if err != nil {
			return nil, err
		}
		env, err := RunEnv(thread, b)
		if err != nil {
			return nil, err
		}
		r, _, err := runMonitor(env.Context, env, d.name, m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		return r.value(), nil
	}
}

// runMonitor reads m and records how long it took and whether it worked.
func runMonitor(ctx context.Context, env *Env, name string, m monitor) (reading, time.Duration, error) {
	start := time.Now()
	r, err := m.read(ctx, env)
	took := time.Since(start)
	logger := env.Logger.With("monitor", name)
	success := 1.0
	switch {
	case isSkipped(err):
		// Not read, by the configuration's choice: no failure to alert
		// on, and no success to report either.
		logger.Debug("monitor skipped", "reason", err)
		return r, took, err
	case err != nil:
		success = 0
		logger.Warn("monitor failed", "took", took, "err", err)
	default:
		logger.Debug("monitor read", "took", took)
	}
	if env.Gauges != nil {
		labels := map[string]string{"monitor": name}
		env.Gauges.SetGauge("monitor_duration_seconds", labels, took.Seconds())
		env.Gauges.SetGauge("monitor_success", labels, success)
	}
	return r, took, err
}

func monitorAll(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := noArgs(b, args, kwargs); err != nil {
		return nil, err
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	results := readAll(env.Context, env)
	if err := env.Context.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), context.Cause(env.Context))
	}
	fields := make(starlark.StringDict, len(monitors)+3)
	errs, skipped := starlark.NewDict(0), starlark.NewDict(0)
	took := starlark.NewDict(len(monitors))
	for i, d := range monitors {
		r := results[i]
		_ = took.SetKey(starlark.String(d.name), durationValue(r.took))
		if r.err != nil {
			fields[d.name] = starlark.None
			into := errs
			if r.skipped() {
				into = skipped
			}
			_ = into.SetKey(starlark.String(d.name), starlark.String(r.message(d.name)))
			continue
		}
		fields[d.name] = r.r.value()
	}
	fields["errors"] = errs
	fields["skipped"] = skipped
	fields["took"] = took
	return newStruct(fields), nil
}

// monitorResult is one monitor's outcome in readAll.
type monitorResult struct {
	r    reading
	took time.Duration
	err  error
}

// skipped reports whether the monitor was not read (see isSkipped).
func (r monitorResult) skipped() bool { return isSkipped(r.err) }

// isSkipped reports whether a monitor's error says it was not read because
// the agent runs without privileged operations: a choice of the
// configuration, which its gauges, monitor.all(), the hub's report and the
// guest API tell apart from a failure.
func isSkipped(err error) bool { return errors.Is(err, errHostDisabled) }

// message is how a failed or skipped monitor's reason reads: named after
// its module function.
func (r monitorResult) message(name string) string {
	return fmt.Sprintf("monitor.%s: %v", name, r.err)
}

// readAll reads every monitor concurrently with its defaults, in the
// order of [monitors]; one failure never stops the others.
func readAll(ctx context.Context, env *Env) []monitorResult {
	results := make([]monitorResult, len(monitors))
	var wg sync.WaitGroup
	for i, d := range monitors {
		wg.Go(func() {
			m, err := d.configure(starlark.NewBuiltin("monitor."+d.name, nil), nil, nil)
			if err != nil { // a default that does not unpack is a bug in the table
				results[i] = monitorResult{err: err}
				return
			}
			r, took, err := runMonitor(ctx, env, d.name, m)
			results[i] = monitorResult{r, took, err}
		})
	}
	wg.Wait()
	return results
}

// metricNamePattern is what gauge and label names must look like: a safe
// subset of Prometheus's names (no colons, lower case).
var metricNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func monitorGauge(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name   string
		value  starlark.Value
		labels = new(starlark.Dict)
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "value", &value, "labels?", &labels); err != nil {
		return nil, err
	}
	if !metricNamePattern.MatchString(name) {
		return nil, fmt.Errorf("%s: name %q: want [a-z_][a-z0-9_]*", b.Name(), name)
	}
	f, err := gaugeValue(value)
	if err != nil {
		return nil, fmt.Errorf("%s: value: %w", b.Name(), err)
	}
	ls, err := gaugeLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("%s: labels: %w", b.Name(), err)
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if env.Gauges != nil {
		env.Gauges.SetGauge(name, ls, f)
	}
	return starlark.None, nil
}

func monitorGaugeValue(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name   string
		labels = new(starlark.Dict)
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &name, "labels?", &labels); err != nil {
		return nil, err
	}
	if !metricNamePattern.MatchString(name) {
		return nil, fmt.Errorf("%s: name %q: want [a-z_][a-z0-9_]*", b.Name(), name)
	}
	ls, err := gaugeLabels(labels)
	if err != nil {
		return nil, fmt.Errorf("%s: labels: %w", b.Name(), err)
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if env.Gauges == nil {
		return starlark.None, nil
	}
	if v, ok := env.Gauges.Gauge(name, ls); ok {
		return starlark.Float(v), nil
	}
	return starlark.None, nil
}

func gaugeValue(v starlark.Value) (float64, error) {
	switch v := v.(type) {
	case starlark.Int, starlark.Float:
		f, _ := starlark.AsFloat(v)
		return f, nil
	}
	return 0, fmt.Errorf("got %s, want int or float", v.Type())
}

// gaugeLabels checks and converts a label dict; Prometheus reserves names
// starting with "__".
func gaugeLabels(d *starlark.Dict) (map[string]string, error) {
	out := make(map[string]string, d.Len())
	for _, kv := range d.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return nil, fmt.Errorf("label name %s is %s, want string", kv[0], kv[0].Type())
		}
		if !metricNamePattern.MatchString(k) || len(k) > 1 && k[:2] == "__" {
			return nil, fmt.Errorf("label name %q: want [a-z_][a-z0-9_]*, not starting with __", k)
		}
		switch v := kv[1].(type) {
		case starlark.String:
			out[k] = string(v)
		case starlark.Int:
			n, ok := v.Int64()
			if !ok {
				return nil, fmt.Errorf("label %s: %s is out of range", k, v)
			}
			out[k] = strconv.FormatInt(n, 10)
		default:
			return nil, fmt.Errorf("label %s: got %s, want str or int", k, v.Type())
		}
	}
	return out, nil
}
