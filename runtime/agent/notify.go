package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Notifications (Config.Notifier): the agent tells people of
//
//   - a run that ended failed or timed out (not one cancelled by a person
//     or by the agent's stop, nor a refused start): notifyEnded;
//   - a timer tick that did not run on time — caught up after the agent
//     was down, or skipped because the previous run was still going:
//     notifyMissed, from the scheduler;
//   - a playbook's own notify.send: notifier, as builtins.Env.Notify.
//
// Each is queued and returns at once; delivery, retries and the record
// are the notify package's.

// notifyLogTail is how many of a run's last log lines a notification
// carries.
const notifyLogTail = 20

// notifyEnded tells of a run that ended badly.
func (a *Agent) notifyEnded(id, playbook string, res *engine.Result) {
	if a.cfg.Notifier == nil {
		return
	}
	kind := ""
	switch res.Status {
	case runstate.Failed:
		kind = notify.KindRunFailed
	case runstate.TimedOut:
		kind = notify.KindRunTimedOut
	default:
		return
	}
	ev := notify.Event{Kind: kind, Host: a.host(), Playbook: playbook, Run: id, Status: string(res.Status),
		Error: res.Error, ErrorKind: res.Kind}
	if lines, err := a.store.LogTail(context.Background(), id, notifyLogTail); err == nil {
		for _, l := range lines {
			ev.LogTail = append(ev.LogTail, apiLogLine(l).String())
		}
	}
	a.cfg.Notifier.Notify(ev)
}

// notifyMissed is the scheduler's Missed. It runs under the scheduler's
// lock, which Notify (a queue) respects.
func (a *Agent) notifyMissed(job string, scheduled time.Time, why string) {
	if a.cfg.Notifier == nil {
		return
	}
	s := scheduled.UTC()
	a.cfg.Notifier.Notify(notify.Event{Kind: notify.KindScheduleMissed, Host: a.host(), Playbook: job, Scheduled: &s, Message: why})
}

// host is the node name notifications carry.
func (a *Agent) host() string {
	if p := a.cfg.Engine.Env.Proxmox; p != nil {
		return p.Node()
	}
	return ""
}

// runNotifier is the agent as builtins.Env.Notify: a playbook's
// notify.send, tagged with its run and playbook.
type runNotifier struct{ a *Agent }

var _ builtins.Notifier = runNotifier{}

// Notify queues n as a "playbook" event.
func (r runNotifier) Notify(ctx context.Context, n builtins.Notification) (bool, error) {
	nt := r.a.cfg.Notifier
	if !nt.Enabled() {
		return false, nil
	}
	id := engine.RunID(ctx)
	playbook := ""
	if run, err := r.a.store.Get(ctx, id); err == nil {
		playbook = run.Playbook
	} else if id != "" {
		return false, fmt.Errorf("the run %s is not on record: %w", id, err)
	}
	nt.Notify(notify.Event{Kind: notify.KindPlaybook, Host: r.a.host(), Playbook: playbook, Run: id,
		Message: n.Message, Level: n.Level, Fields: n.Fields})
	return true, nil
}

// registerNotifyMetrics exports the notifier's counts:
// felhom_notifications_total{result} (delivered, failed, dropped) and
// felhom_notification_retries_total.
func (m *agentMetrics) registerNotifyMetrics(n *notify.Notifier) {
	for _, result := range []string{"delivered", "failed", "dropped"} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "felhom_notifications_total", Help: "Notifications by outcome on each channel (webhook, mail): delivered, failed after every retry, or dropped on a full queue.",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 {
			st := n.Stats()
			switch result {
			case "delivered":
				return float64(st.Delivered)
			case "failed":
				return float64(st.Failed)
			}
			return float64(st.Dropped)
		}))
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "felhom_notification_retries_total", Help: "Notification delivery attempts that failed and were retried.",
	}, func() float64 { return float64(n.Stats().Retries) }))
}
