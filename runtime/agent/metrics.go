package agent

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// The agent's metrics live in a registry of its own, never the global one:
// two agents in one process (tests) must not share counters, and nothing
// a library registers globally reaches the agent's /metrics.
//
// Families:
//
//	felhom_runs_total{playbook,status}        runs recorded, by final status
//	felhom_run_duration_seconds{playbook}     how long runs took
//	felhom_runs_in_flight                     runs started and not finished
//	felhom_reload_errors_total                playbook versions refused by a load or reload
//	felhom_playbooks_loaded                   playbooks serving
//	felhom_task_wait_seconds                  time spent waiting for Proxmox tasks
//	felhom_proxmox_requests_total{method,status}  API attempts (status "error": no answer)
//	felhom_proxmox_up                         1 when the last health probe reached the API
//	felhom_playbook_<name>{...}               gauges playbooks publish (monitor.gauge)
//	felhom_playbook_gauges_dropped_total      monitor.gauge calls refused (bad name, label set, cap)
//	felhom_hub_reports_total{result}, felhom_hub_last_report_timestamp_seconds, felhom_hub_jobs_total{outcome}
//	                                          the hub channel (registerHub), when one is configured
//	felhom_run_last_success_timestamp_seconds{playbook}, felhom_run_last_status{playbook,status}
//	                                          how runs last ended (outcomes.go), from the store at start
//
// plus the Go runtime and process collectors.
type agentMetrics struct {
	reg *prometheus.Registry

	runs            *prometheus.CounterVec
	runDuration     *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	pendingOps      prometheus.Gauge
	queued          prometheus.Gauge
	reloadErrors    prometheus.Counter
	playbooksLoaded prometheus.Gauge
	loadErrors      prometheus.Gauge
	taskWait        prometheus.Histogram
	requests        *prometheus.CounterVec
	proxmoxUp       prometheus.Gauge

	gauges   *playbookGauges
	outcomes *outcomeMetrics
}

// DefaultMaxGaugeSeries caps the distinct playbook gauge series (name and
// label values) the agent exports, so a playbook that labels by something
// unbounded cannot grow /metrics without limit.
const DefaultMaxGaugeSeries = 10_000

func newAgentMetrics(maxSeries int, logger *slog.Logger) *agentMetrics {
	reg := prometheus.NewRegistry()
	m := &agentMetrics{
		reg: reg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "felhom_runs_total", Help: "Runs recorded, by playbook and final status.",
		}, []string{"playbook", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "felhom_run_duration_seconds", Help: "How long runs took, from start to their recorded end.",
			Buckets: prometheus.ExponentialBuckets(0.05, 4, 11), // 50ms .. ~14.5h
		}, []string{"playbook"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_runs_in_flight", Help: "Runs started and not finished yet.",
		}),
		pendingOps: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_runs_pending_signature", Help: "Runs parked at a destructive call, waiting for an operator's signature.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_runs_queued", Help: "Runs accepted and waiting for their playbook to be free (runs.queue_max per playbook).",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "felhom_reload_errors_total", Help: "Playbook versions refused by a load or hot reload (the last good version keeps serving).",
		}),
		playbooksLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_playbooks_loaded", Help: "Playbooks serving.",
		}),
		loadErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_playbooks_load_errors", Help: "Playbook files whose latest version does not load (a last good version may serve in their place).",
		}),
		taskWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "felhom_task_wait_seconds", Help: "Time runs spent waiting for Proxmox tasks to stop.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 15), // 250ms .. ~68m
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "felhom_proxmox_requests_total", Help: "Proxmox API request attempts, retries included, by method and HTTP status (\"error\" when no answer arrived).",
		}, []string{"method", "status"}),
		proxmoxUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "felhom_proxmox_up", Help: "1 when the last health probe reached the Proxmox API, else 0.",
		}),
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "felhom_playbook_gauges_dropped_total", Help: "monitor.gauge calls refused: an invalid name or label, a label set that differs from the gauge's first, or the series cap.",
	})
	reg.MustRegister(m.runs, m.runDuration, m.inFlight, m.pendingOps, m.queued, m.reloadErrors, m.playbooksLoaded, m.loadErrors,
		m.taskWait, m.requests, m.proxmoxUp, dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.gauges = newPlaybookGauges(reg, maxSeries, dropped, logger)
	m.outcomes = newOutcomeMetrics(reg)
	return m
}

// jobsHelp is felhom_hub_jobs_total's help text.
const jobsHelp = "Jobs from the hub: operator-signed jobs accepted, plan jobs planned, or either refused."

// registerHub exports the hub channel's counters:
//
//	felhom_hub_reports_total{result}               reports the hub accepted ("accepted") or that failed ("failed")
//	felhom_hub_last_report_timestamp_seconds       when the hub last accepted a report (0: never)
//	felhom_hub_jobs_total{outcome}                 jobs from the hub: signed jobs accepted, plan jobs planned, either refused
func (m *agentMetrics) registerHub(stats func() channel.Stats) {
	counter := func(name, help string, labels prometheus.Labels, v func(channel.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v(stats())) })
	}
	m.reg.MustRegister(
		counter("felhom_hub_reports_total", "Host reports the hub accepted, or attempts that failed.", prometheus.Labels{"result": "accepted"},
			func(s channel.Stats) uint64 { return s.Reports }),
		counter("felhom_hub_reports_total", "Host reports the hub accepted, or attempts that failed.", prometheus.Labels{"result": "failed"},
			func(s channel.Stats) uint64 { return s.Failures }),
		counter("felhom_hub_jobs_total", jobsHelp, prometheus.Labels{"outcome": channel.JobAccepted},
			func(s channel.Stats) uint64 { return s.JobsAccepted }),
		counter("felhom_hub_jobs_total", jobsHelp, prometheus.Labels{"outcome": channel.JobRefused},
			func(s channel.Stats) uint64 { return s.JobsRefused }),
		counter("felhom_hub_jobs_total", jobsHelp, prometheus.Labels{"outcome": channel.JobPlanned},
			func(s channel.Stats) uint64 { return s.JobsPlanned }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "felhom_hub_last_report_timestamp_seconds", Help: "When the hub last accepted a host report (Unix time; 0: never)."},
			func() float64 {
				if t := stats().LastReport; !t.IsZero() {
					return float64(t.UnixNano()) / 1e9
				}
				return 0
			}),
	)
}

// metricsHandler serves the agent's registry as Prometheus text.
func (a *Agent) metricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{Registry: a.metrics.reg})
}

// runFinished counts a recorded run.
func (m *agentMetrics) runFinished(playbook, status string, took time.Duration) {
	m.runs.WithLabelValues(playbook, status).Inc()
	m.runDuration.WithLabelValues(playbook).Observe(took.Seconds())
	m.outcomes.ended(playbook, runstate.Status(status), time.Now())
}

// observer is the metrics part of a run's proxmox.Observer; the health
// probe and task followers use it alone.
type metricsObserver struct{ m *agentMetrics }

var _ proxmox.Observer = metricsObserver{}

func (o metricsObserver) Request(info proxmox.RequestInfo) {
	status := "error"
	if info.Status != 0 {
		status = strconv.Itoa(info.Status)
	}
	o.m.requests.WithLabelValues(info.Method, status).Inc()
}

func (o metricsObserver) TaskStarted(proxmox.UPID) {}

func (o metricsObserver) TaskWaited(_ proxmox.UPID, took time.Duration, _ proxmox.TaskStatus, _ error) {
	o.m.taskWait.Observe(took.Seconds())
}

// playbookGauges is the builtins.GaugeSink of every run: each gauge name
// becomes the GaugeVec felhom_playbook_NAME, created on first use with
// that call's label names. Later calls must use the same label names;
// calls that do not, or that would add a series past the cap, are dropped
// and counted, and the first drop of each name is logged.
type playbookGauges struct {
	reg     prometheus.Registerer
	max     int
	dropped prometheus.Counter
	log     *slog.Logger

	last builtins.LastGauges // what monitor.gauge_value reads back

	mu     sync.Mutex
	vecs   map[string]*gaugeFamily
	series int
	warned map[string]bool // names whose refusal was logged ("" for invalid names)
}

type gaugeFamily struct {
	vec    *prometheus.GaugeVec // nil: registration failed, the name is unusable
	labels []string             // sorted label names
	seen   map[string]bool      // label value tuples exported
}

var _ builtins.GaugeSink = (*playbookGauges)(nil)

// metricName is what gauge and label names may look like; monitor.gauge
// checks the same, but the sink does not rely on its callers.
var metricName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,99}$`)

// maxLabelValue bounds one label value in bytes.
const maxLabelValue = 256

func newPlaybookGauges(reg prometheus.Registerer, max int, dropped prometheus.Counter, logger *slog.Logger) *playbookGauges {
	if max <= 0 {
		max = DefaultMaxGaugeSeries
	}
	return &playbookGauges{reg: reg, max: max, dropped: dropped, log: logger,
		vecs: map[string]*gaugeFamily{}, warned: map[string]bool{}}
}

// SetGauge sets felhom_playbook_NAME{labels} to value.
func (g *playbookGauges) SetGauge(name string, labels map[string]string, value float64) {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	slices.Sort(names)
	if err := checkGauge(name, names, labels); err != nil {
		g.drop(name, err)
		return
	}
	values := make([]string, len(names))
	for i, k := range names {
		values[i] = labels[k]
	}

	g.mu.Lock()
	fam := g.vecs[name]
	if fam == nil {
		fam = &gaugeFamily{labels: names, seen: map[string]bool{}}
		vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "felhom_playbook_" + name,
			Help: "Set by playbooks with monitor.gauge(\"" + name + "\", ...).",
		}, names)
		if err := g.reg.Register(vec); err != nil {
			g.vecs[name] = fam // remember the failure: never try again
			g.mu.Unlock()
			g.drop(name, fmt.Errorf("cannot register: %w", err))
			return
		}
		fam.vec = vec
		g.vecs[name] = fam
	}
	if fam.vec == nil {
		g.mu.Unlock()
		g.drop(name, fmt.Errorf("the gauge could not be registered"))
		return
	}
	if !slices.Equal(fam.labels, names) {
		g.mu.Unlock()
		g.drop(name, fmt.Errorf("label names %v differ from the gauge's first use %v", names, fam.labels))
		return
	}
	key := strings.Join(values, "\x00")
	if !fam.seen[key] {
		if g.series >= g.max {
			g.mu.Unlock()
			g.drop(name, fmt.Errorf("the cap of %d gauge series is reached", g.max))
			return
		}
		fam.seen[key] = true
		g.series++
	}
	g.mu.Unlock()
	fam.vec.WithLabelValues(values...).Set(value)
	g.last.SetGauge(name, labels, value)
}

// Gauge returns the value last exported for name{labels}.
func (g *playbookGauges) Gauge(name string, labels map[string]string) (float64, bool) {
	return g.last.Gauge(name, labels)
}

// checkGauge validates a gauge's name and labels.
func checkGauge(name string, names []string, labels map[string]string) error {
	if !metricName.MatchString(name) {
		return fmt.Errorf("name is not [a-z_][a-z0-9_]* of at most 100 characters")
	}
	for _, k := range names {
		if !metricName.MatchString(k) || strings.HasPrefix(k, "__") {
			return fmt.Errorf("label name %q is not [a-z_][a-z0-9_]* (and must not start with __)", k)
		}
		if v := labels[k]; len(v) > maxLabelValue || !utf8.ValidString(v) {
			return fmt.Errorf("label %s: value is not UTF-8 of at most %d bytes", k, maxLabelValue)
		}
	}
	return nil
}

// drop counts a refused gauge and logs the first refusal of each name.
func (g *playbookGauges) drop(name string, err error) {
	g.dropped.Inc()
	g.mu.Lock()
	key := name
	if !metricName.MatchString(name) {
		key = "" // invalid names share one warning: they may be anything
	}
	first := !g.warned[key]
	g.warned[key] = true
	g.mu.Unlock()
	if !first {
		return
	}
	if key == "" {
		g.log.Warn("playbook gauge refused (further refusals of invalid names are only counted)", "err", err)
		return
	}
	g.log.Warn("playbook gauge refused (further refusals of this gauge are only counted)", "gauge", name, "err", err)
}
