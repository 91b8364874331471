package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Loud failures, for Prometheus: two families that make the usual alerts
// one rule each, kept apart from the felhom_playbook_* names that
// playbooks' own gauges own.
//
//	felhom_run_last_success_timestamp_seconds{playbook}  when its latest succeeded run ended
//	felhom_run_last_status{playbook,status}              1 for the status its latest run ended with, 0 for the others
//
// ("no successful backup for 26 h": time() - felhom_run_last_success_timestamp_seconds{playbook="backup"} > 26*3600;
// deploy/felhom-agent.rules.yml has it and its friends). They are set
// from the run store at start, so a restart does not forget them, and on
// every recorded end after that.
type outcomeMetrics struct {
	lastSuccess *prometheus.GaugeVec
	lastStatus  *prometheus.GaugeVec
}

func newOutcomeMetrics(reg prometheus.Registerer) *outcomeMetrics {
	m := &outcomeMetrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "felhom_run_last_success_timestamp_seconds",
			Help: "When the playbook's latest succeeded run ended (unix seconds); absent if none is on record.",
		}, []string{"playbook"}),
		lastStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "felhom_run_last_status",
			Help: "1 for the final status the playbook's latest run ended with, 0 for the other final statuses.",
		}, []string{"playbook", "status"}),
	}
	reg.MustRegister(m.lastSuccess, m.lastStatus)
	return m
}

// ended records that a run of playbook ended with status at at.
func (m *outcomeMetrics) ended(playbook string, status runstate.Status, at time.Time) {
	for _, in := range runstate.All() {
		if !in.Final {
			continue
		}
		v := 0.0
		if in.Status == status {
			v = 1
		}
		m.lastStatus.WithLabelValues(playbook, string(in.Status)).Set(v)
	}
	if status == runstate.Succeeded {
		m.lastSuccess.WithLabelValues(playbook).Set(float64(at.UnixNano()) / 1e9)
	}
}

// loadOutcomes sets the outcome metrics from the run store (lifecycle step
// 4, after recovery has ended what a previous process left running).
func (a *Agent) loadOutcomes() {
	outs, err := a.store.Outcomes(context.Background())
	if err != nil {
		a.log.Error("reading the runs' last outcomes failed; felhom_run_last_* start empty", "err", err)
		return
	}
	for _, o := range outs {
		a.metrics.outcomes.ended(o.Playbook, o.Status, o.Ended)
		if !o.LastSuccess.IsZero() && o.Status != runstate.Succeeded {
			a.metrics.outcomes.lastSuccess.WithLabelValues(o.Playbook).Set(float64(o.LastSuccess.UnixNano()) / 1e9)
		}
	}
}
