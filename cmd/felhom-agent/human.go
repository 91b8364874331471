package main

import (
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// One style for numbers people read, whichever command prints them:
//
//   - durations round to what a person compares: 850ms, 21.8s, 3m12s,
//     2h05m (humanDuration);
//   - fractional numbers keep one decimal, or three significant digits
//     below 1: 29.4, 0.0523 (humanFloat);
//   - counts agree with their noun: 1 task, 3 tasks (plural);
//   - times carry their zone: 2026-01-02 03:00:00 CET, or UTC with --utc
//     (timeText).
//
// JSON output never rounds: durations are seconds as numbers, under keys
// that say so (duration_seconds), and times are RFC 3339.

// humanDuration rounds d for people.
func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = d.Round(time.Millisecond).String()
	case d < time.Minute:
		s = strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
		s = strconv.Itoa(int(d/time.Minute)) + "m" + strconv.Itoa(int(d%time.Minute/time.Second)) + "s"
	default:
		d = d.Round(time.Minute)
		m := int(d % time.Hour / time.Minute)
		s = strconv.Itoa(int(d/time.Hour)) + "h" + string(rune('0'+m/10)) + string(rune('0'+m%10)) + "m"
	}
	if neg {
		return "-" + s
	}
	return s
}

// humanFloat rounds f for people: one decimal from 1 up, three
// significant digits below; integers stay integers.
func humanFloat(f float64) string {
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return strconv.FormatFloat(f, 'g', -1, 64)
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case math.Abs(f) >= 1:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'g', 3, 64)
}

// timeText is t as people read it, with its zone: local time, or UTC.
func timeText(t time.Time, utc bool) string {
	if utc {
		t = t.UTC()
	} else {
		t = t.Local()
	}
	return t.Format("2006-01-02 15:04:05 MST")
}

// clockText is a log line's time of day, with its zone.
func clockText(t time.Time, utc bool) string {
	if utc {
		t = t.UTC()
	} else {
		t = t.Local()
	}
	return t.Format("15:04:05 MST")
}

// humanAttrs renders a stored log line's message and attributes for
// people: "msg k=v k2=v2", keys sorted; durations and fractional numbers
// rounded, strings unquoted when they need no quotes.
func humanAttrs(l api.LogLine) string {
	var b strings.Builder
	b.WriteString(l.Msg)
	var attrs map[string]json.RawMessage
	if len(l.Attrs) == 0 || json.Unmarshal(l.Attrs, &attrs) != nil {
		return b.String()
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(humanJSON(attrs[k]))
	}
	return b.String()
}

// humanJSON renders one attribute value: a number rounded, a string that
// is a Go duration rounded, other values as their JSON text.
func humanJSON(raw json.RawMessage) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return string(raw)
	}
	switch v := v.(type) {
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return v.String()
		}
		if f, err := v.Float64(); err == nil {
			return humanFloat(f)
		}
	case string:
		if d, err := time.ParseDuration(v); err == nil && strings.ContainsAny(v, "smhµn") {
			return humanDuration(d)
		}
	}
	return string(raw)
}

// humanReplaceAttr is slog's ReplaceAttr for text logs people read: it
// rounds durations and fractional numbers the same way.
func humanReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, humanDuration(a.Value.Duration()))
	case slog.KindFloat64:
		return slog.String(a.Key, humanFloat(a.Value.Float64()))
	}
	return a
}

// jsonReplaceAttr is slog's ReplaceAttr for JSON logs: a duration is its
// seconds as a number (slog's default is nanoseconds).
func jsonReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}
