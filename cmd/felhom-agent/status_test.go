package main

import (
	"bytes"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// screen plays output on a terminal that knows what liveStatus sends —
// text, newlines, CSI n F (to the start of the line n up) and CSI J (clear
// to the end of the screen) — and returns the lines on it.
func screen(t *testing.T, out string) []string {
	t.Helper()
	lines := []string{""}
	row := 0
	csi := regexp.MustCompile(`^\x1b\[(\d*)([A-Za-z])`)
	for len(out) > 0 {
		if m := csi.FindStringSubmatch(out); m != nil {
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "F":
				row -= n
				if row < 0 {
					t.Fatalf("cursor moved above the first line")
				}
			case "J":
				lines = lines[:row+1]
				lines[row] = ""
			default:
				t.Fatalf("unexpected escape %q", m[0])
			}
			out = out[len(m[0]):]
			continue
		}
		c, size := utf8.DecodeRuneInString(out)
		out = out[size:]
		if c == '\n' {
			row++
			if row == len(lines) {
				lines = append(lines, "")
			}
			continue
		}
		lines[row] += string(c)
	}
	return lines[:len(lines)-1] // the cursor's empty line
}

const upid101 = "UPID:demo-felhom:0000A1B2:00C3D4E5:692D0001:vzdump:101:felhom-agent@pve!agent:"
const upid102 = "UPID:demo-felhom:0000A1B3:00C3D4E6:692D0002:vzsnapshot:102:felhom-agent@pve!agent:"

// TestLiveStatus drives the run's log handler with a run's records: each
// waiting task keeps one line at the bottom, rewritten with its latest
// line, percentage and time; other lines scroll above; a finished task's
// line goes.
func TestLiveStatus(t *testing.T) {
	var buf bytes.Buffer
	board := newLiveStatus(&buf)
	board.width = 60
	logger := slog.New(statusHandler{next: slog.New(slog.NewTextHandler(board, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})).Handler(), board: board})
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	log := func(at time.Duration, msg string, attrs ...any) {
		r := slog.NewRecord(t0.Add(at), slog.LevelInfo, msg, 0)
		r.Add(attrs...)
		if err := logger.Handler().Handle(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	step := func(want ...string) {
		t.Helper()
		if got := screen(t, buf.String()); !slices.Equal(got, want) {
			t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	log(0, "task started", "builtin", "proxmox.vzdump", builtins.AttrUPID, upid101)
	step(`level=INFO msg="task started" builtin=proxmox.vzdump upid=`+upid101,
		"» vzdump of 101 0s")
	log(2*time.Second, "INFO: starting new backup job: vzdump 101 --storage usb-backup", builtins.AttrUPID, upid101, builtins.AttrTaskLine, 1)
	log(3*time.Second, "task started", "builtin", "proxmox.snapshot", builtins.AttrUPID, upid102)
	log(65*time.Second, "INFO:  42% (13.4 GiB of 32.0 GiB) in 1m 3s, read: 221.2 MiB/s, write: 60.0 MiB/s",
		builtins.AttrUPID, upid101, builtins.AttrTaskLine, 9, builtins.AttrProgress, 42)
	log(66*time.Second, "an unrelated line")
	step(`level=INFO msg="task started" builtin=proxmox.vzdump upid=`+upid101,
		`level=INFO msg="task started" builtin=proxmox.snapshot upid=`+upid102,
		`level=INFO msg="an unrelated line"`,
		"» vzdump of 101  42% 1m5s  INFO:  42% (13.4 GiB of 32.0 Gi…",
		"» vzsnapshot of 102 0s")
	log(70*time.Second, "waiting for vzsnapshot of 102: 1m7s", builtins.AttrUPID, upid102, builtins.AttrWaiting, 67)
	log(71*time.Second, "task finished", "builtin", "proxmox.vzdump", builtins.AttrUPID, upid101, "exitstatus", "OK")
	step(`level=INFO msg="task started" builtin=proxmox.vzdump upid=`+upid101,
		`level=INFO msg="task started" builtin=proxmox.snapshot upid=`+upid102,
		`level=INFO msg="an unrelated line"`,
		`level=INFO msg="task finished" builtin=proxmox.vzdump upid=`+upid101+` exitstatus=OK`,
		"» vzsnapshot of 102 1m7s  waiting for vzsnapshot of 102: 1…")
	board.Close()
	step(`level=INFO msg="task started" builtin=proxmox.vzdump upid=`+upid101,
		`level=INFO msg="task started" builtin=proxmox.snapshot upid=`+upid102,
		`level=INFO msg="an unrelated line"`,
		`level=INFO msg="task finished" builtin=proxmox.vzdump upid=`+upid101+` exitstatus=OK`)
}

// TestLineEvent reads the same events from a followed run's log lines.
func TestLineEvent(t *testing.T) {
	tests := []struct {
		msg, attrs string
		want       taskEvent
		ok         bool
	}{
		{"INFO:  42% (1 of 2) in 1s", `{"upid":"` + upid101 + `","task_line":9,"progress":42}`, taskEvent{upid: upid101, text: "INFO:  42% (1 of 2) in 1s", progress: 42}, true},
		{"waiting for vzdump of 101: 10s", `{"upid":"` + upid101 + `","waiting":10}`, taskEvent{upid: upid101, text: "waiting for vzdump of 101: 10s", progress: -1}, true},
		{"task started", `{"builtin":"proxmox.vzdump","upid":"` + upid101 + `"}`, taskEvent{upid: upid101, started: true, progress: -1}, true},
		{"task finished", `{"upid":"` + upid101 + `","exitstatus":"OK"}`, taskEvent{upid: upid101, finished: true, progress: -1}, true},
		{"backed up", `{"upid":"` + upid101 + `"}`, taskEvent{}, false},
		{"INFO: x", `{"task_line":3}`, taskEvent{}, false},
		{"no attrs", ``, taskEvent{}, false},
	}
	for _, tc := range tests {
		got, ok := lineEvent(api.LogLine{Msg: tc.msg, Attrs: []byte(tc.attrs)})
		got.at = time.Time{}
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("lineEvent(%q, %s) = %+v, %v; want %+v, %v", tc.msg, tc.attrs, got, ok, tc.want, tc.ok)
		}
	}
}
