package notify

import (
	"fmt"
	"strings"
	"time"
)

// Event kinds.
const (
	KindRunFailed      = "run_failed"      // a run ended failed (or cancelled by the agent's own limits)
	KindRunTimedOut    = "run_timed_out"   // a run's deadline passed
	KindScheduleMissed = "schedule_missed" // a timer tick did not run when it should have
	KindPlaybook       = "playbook"        // a playbook's notify.send
)

// Event is one thing to tell, as the webhook's JSON body carries it and
// the mail renders it. Its keys are fixed; absent ones are empty.
type Event struct {
	// ID is unique per event (and the same on every retry and channel),
	// so a receiver can drop a duplicate delivery.
	ID   string    `json:"id"`
	Kind string    `json:"event"`
	Time time.Time `json:"time"`
	Host string    `json:"host,omitempty"` // the agent's node name

	Playbook  string   `json:"playbook"`
	Run       string   `json:"run,omitempty"`
	Status    string   `json:"status,omitempty"`
	Error     string   `json:"error,omitempty"`
	ErrorKind string   `json:"error_kind,omitempty"`
	LogTail   []string `json:"log_tail,omitempty"` // the run's last log lines, oldest first

	// Scheduled is the missed tick (schedule_missed).
	Scheduled *time.Time `json:"scheduled,omitempty"`
	// Message and Level are a playbook's own (playbook); Message also
	// says why a tick was missed.
	Message string            `json:"message,omitempty"`
	Level   string            `json:"level,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Subject is the mail's subject line.
func (e *Event) Subject() string {
	host := ""
	if e.Host != "" {
		host = " on " + e.Host
	}
	switch e.Kind {
	case KindRunFailed, KindRunTimedOut:
		return fmt.Sprintf("[felhom] %s %s%s (run %s)", e.Playbook, e.Status, host, e.Run)
	case KindScheduleMissed:
		return fmt.Sprintf("[felhom] %s missed its schedule%s", e.Playbook, host)
	}
	return fmt.Sprintf("[felhom] %s%s: %s", e.Playbook, host, firstLine(e.Message))
}

// Text is the mail's body.
func (e *Event) Text() string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", v)
		}
	}
	line("event", e.Kind)
	line("host", e.Host)
	line("playbook", e.Playbook)
	line("run", e.Run)
	line("status", e.Status)
	if e.Scheduled != nil {
		line("scheduled", e.Scheduled.Format(time.RFC3339))
	}
	line("time", e.Time.Format(time.RFC3339))
	line("level", e.Level)
	line("message", e.Message)
	for k, v := range e.Fields {
		line(k, v)
	}
	if e.Error != "" {
		kind := ""
		if e.ErrorKind != "" {
			kind = " [" + e.ErrorKind + "]"
		}
		line("error", e.Error+kind)
	}
	if len(e.LogTail) > 0 {
		b.WriteString("\nlog tail:\n")
		for _, l := range e.LogTail {
			b.WriteString("  " + l + "\n")
		}
	}
	if e.Run != "" {
		fmt.Fprintf(&b, "\nfelhom-agent runs show %s\n", e.Run)
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
