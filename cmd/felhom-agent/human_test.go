package main

import (
	"encoding/json"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

func TestHumanStyle(t *testing.T) {
	for d, want := range map[time.Duration]string{
		21778160134 * time.Nanosecond:    "21.8s",
		850 * time.Millisecond:           "850ms",
		0:                                "0s",
		3*time.Minute + 12*time.Second:   "3m12s",
		2*time.Hour + 5*time.Minute + 31: "2h05m",
		-1500 * time.Millisecond:         "-1.5s",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q; want %q", d, got, want)
		}
	}
	for f, want := range map[float64]string{29.38232421875: "29.4", 0.052349: "0.0523", 80: "80", -3.25: "-3.2"} {
		if got := humanFloat(f); got != want {
			t.Errorf("humanFloat(%v) = %q; want %q", f, got, want)
		}
	}
	if got := plural(1, "task"); got != "1 task" {
		t.Errorf("plural(1) = %q", got)
	}
	if got := plural(0, "task"); got != "0 tasks" {
		t.Errorf("plural(0) = %q", got)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := timeText(at, true); got != "2026-01-02 03:04:05 UTC" {
		t.Errorf("timeText(utc) = %q", got)
	}
	l := api.LogLine{Msg: "run finished", Attrs: json.RawMessage(`{"took":"21.778160134s","pct":29.38232421875,"n":3,"s":"x"}`)}
	if got, want := humanAttrs(l), `run finished n=3 pct=29.4 s="x" took=21.8s`; got != want {
		t.Errorf("humanAttrs = %q; want %q", got, want)
	}
}
