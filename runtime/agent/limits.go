package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// Limits on what a run writes into the run store, so that one playbook
// cannot fill the disk or make list answers and the agent's memory grow
// with what it logs or returns:
//
//   - a log line longer than LogLine bytes (message and attributes) is cut,
//     with a marker saying how much was left out;
//   - once a run has logged Log bytes, one line says so and the rest of its
//     log is not recorded (a last line counts what was dropped); the intent
//     lines written before each mutation are always recorded;
//   - a result larger than Result bytes is not recorded and the run fails
//     with kind "limit": a cut JSON value would be a wrong one.

// RunLimits bounds what one run writes. Zero fields mean the defaults.
type RunLimits struct {
	// LogLine is the most bytes of one log line (message plus attributes)
	// recorded (runs.log_line_max_kib); 0 means DefaultLogLineMax.
	LogLine int
	// Log is the most bytes of log recorded per run (runs.log_max_mib); 0
	// means DefaultLogMax.
	Log int64
	// Result is the most bytes of a run's result (runs.result_max_kib); 0
	// means DefaultResultMax.
	Result int
}

// The defaults of RunLimits.
const (
	DefaultLogLineMax = 8 << 10
	DefaultLogMax     = 16 << 20
	DefaultResultMax  = 1 << 20
)

// KindLimit is the error kind of a run whose result exceeded its limit.
const KindLimit = "limit"

func (l RunLimits) withDefaults() RunLimits {
	if l.LogLine <= 0 {
		l.LogLine = DefaultLogLineMax
	}
	if l.Log <= 0 {
		l.Log = DefaultLogMax
	}
	if l.Result <= 0 {
		l.Result = DefaultResultMax
	}
	return l
}

// lineSize is what a line costs the store.
func lineSize(l store.LogLine) int { return len(l.Msg) + len(l.Attrs) }

// capLine cuts l to max bytes: the message first keeps what fits, then the
// attributes, which are replaced whole (cut JSON is not JSON) by a note of
// their size.
func capLine(l store.LogLine, limit int) store.LogLine {
	if lineSize(l) <= limit {
		return l
	}
	if len(l.Attrs) > limit/2 {
		note, _ := json.Marshal(map[string]string{
			"truncated": fmt.Sprintf("attributes of %d bytes left out (runs.log_line_max_kib)", len(l.Attrs))})
		l.Attrs = note
	}
	if room := limit - len(l.Attrs); len(l.Msg) > room {
		l.Msg = cutString(l.Msg, max(room, 0))
	}
	return l
}

// limitLine is the line recorded when a run reaches its log limit.
func limitLine(limit int64) store.LogLine {
	return store.LogLine{Level: slog.LevelWarn.String(), Msg: "log limit reached: the rest of this run's log is not recorded",
		Attrs: attrsJSON([]slog.Attr{slog.Int64("runs_log_max_bytes", limit)})}
}

// droppedLine counts the lines a run logged past its limit.
func droppedLine(lines, bytes int64) store.LogLine {
	return store.LogLine{Level: slog.LevelWarn.String(), Msg: "log lines not recorded (runs.log_max_mib)",
		Attrs: attrsJSON([]slog.Attr{slog.Int64("lines", lines), slog.Int64("bytes", bytes)})}
}

// capRecord cuts a record's message and string attributes to limit bytes
// each, before it reaches the agent's own log as well as the store: a
// playbook logging megabytes must not flood the journal either.
func capRecord(r slog.Record, limit int) slog.Record {
	over := len(r.Message) > limit
	r.Attrs(func(a slog.Attr) bool {
		over = over || (a.Value.Kind() == slog.KindString && len(a.Value.String()) > limit)
		return !over
	})
	if !over {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, cutString(r.Message, limit), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() == slog.KindString {
			a.Value = slog.StringValue(cutString(a.Value.String(), limit))
		}
		out.AddAttrs(a)
		return true
	})
	return out
}

// cutString cuts s to limit bytes at a rune boundary, with a marker.
func cutString(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s … [cut: %d more bytes (runs.log_line_max_kib)]", s[:cut], len(s)-cut)
}
