package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// Live status lines: while a run waits for Proxmox tasks, `run` and `runs
// follow` on a terminal keep one line per waiting task at the bottom of
// the output, rewritten in place as the task's log and heartbeat records
// arrive (builtins/progress.go names their attributes), with the
// percentage when the task log carries one; every other line scrolls above
// them. Off a terminal, and with --json, the same records are plain lines
// (JSON objects with their attributes), nothing is rewritten.

// isTerminal reports whether w is a terminal that understands cursor
// movement (not TERM=dumb).
func isTerminal(w io.Writer) bool {
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalWidth is w's width in columns, 80 when it cannot be asked.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 80
}

// taskEvent is a record about a waiting task, as the status board reads it.
type taskEvent struct {
	upid     string
	at       time.Time
	text     string // the task's line, or the heartbeat's words
	progress int    // -1: the line carries none
	started  bool   // "task started"
	finished bool   // "task finished"
}

// liveStatus is the status board: an io.Writer for the plain lines (each
// Write is one or more whole lines) that keeps the tasks' lines below them.
// Safe for concurrent use.
type liveStatus struct {
	mu    sync.Mutex
	w     io.Writer
	width int
	order []string // upids, in the order their tasks started
	tasks map[string]*taskLine
	shown int // status lines drawn below the last plain line
}

type taskLine struct {
	what     string
	since    time.Time // the task's first record
	at       time.Time // its latest record
	progress int
	last     string
}

func newLiveStatus(w io.Writer) *liveStatus {
	return &liveStatus{w: w, width: terminalWidth(w), tasks: map[string]*taskLine{}}
}

// Close removes the status lines that are left (a task.wait records no
// "task finished"), before the run's summary is printed.
func (s *liveStatus) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	s.order, s.tasks = nil, map[string]*taskLine{}
}

// Write prints plain lines above the status lines.
func (s *liveStatus) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	n, err := s.w.Write(p)
	s.draw()
	return n, err
}

// Event updates the status lines; it reports false for a record that is
// not about a waiting task (print it as a plain line). A finished task's
// line goes, and its "task finished" record is printed as a plain line.
func (s *liveStatus) Event(ev taskEvent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[ev.upid]
	switch {
	case ev.finished:
		if t != nil {
			s.erase()
			delete(s.tasks, ev.upid)
			s.order = removeString(s.order, ev.upid)
			s.draw()
		}
		return false
	case t == nil:
		if !ev.started && ev.text == "" {
			return false
		}
		t = &taskLine{what: upidWhat(ev.upid), since: ev.at, progress: -1}
		s.tasks[ev.upid] = t
		s.order = append(s.order, ev.upid)
	}
	if ev.at.After(t.at) {
		t.at = ev.at
	}
	if ev.progress >= 0 {
		t.progress = ev.progress
	}
	if !ev.started {
		t.last = ev.text
	}
	s.erase()
	s.draw()
	return !ev.started // "task started" is also a plain line
}

// erase removes the status lines: the cursor goes back up to where the
// first was, and the screen below it is cleared.
func (s *liveStatus) erase() {
	if s.shown > 0 {
		fmt.Fprintf(s.w, "\x1b[%dF\x1b[J", s.shown)
		s.shown = 0
	}
}

func (s *liveStatus) draw() {
	var b strings.Builder
	for _, id := range s.order {
		t := s.tasks[id]
		line := "» " + t.what
		if t.progress >= 0 {
			line += fmt.Sprintf(" %3d%%", t.progress)
		}
		line += " " + humanDuration(max(t.at.Sub(t.since), 0).Truncate(time.Second))
		if t.last != "" {
			line += "  " + strings.TrimSpace(t.last)
		}
		b.WriteString(clipColumns(line, s.width-1))
		b.WriteByte('\n')
	}
	if b.Len() > 0 {
		io.WriteString(s.w, b.String())
		s.shown = len(s.order)
	}
}

// clipColumns cuts s to at most n runes, so a status line never wraps.
func clipColumns(s string, n int) string {
	if n <= 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func removeString(ss []string, s string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// upidWhat names a task by its UPID text for people: "vzdump of 101".
func upidWhat(upid string) string {
	// UPID:node:pid:pstart:starttime:type:id:user:
	f := strings.Split(upid, ":")
	if len(f) < 8 {
		return upid
	}
	if f[6] == "" {
		return f[5]
	}
	return f[5] + " of " + f[6]
}

// recordEvent reads a task event from a run's log record.
func recordEvent(r slog.Record) (taskEvent, bool) {
	ev := taskEvent{progress: -1, at: r.Time}
	var line, waiting bool
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case builtins.AttrUPID:
			ev.upid = a.Value.String()
		case builtins.AttrTaskLine:
			line = true
		case builtins.AttrWaiting:
			waiting = true
		case builtins.AttrProgress:
			ev.progress = int(a.Value.Int64())
		}
		return true
	})
	return finishEvent(ev, r.Message, line, waiting)
}

// lineEvent reads a task event from a followed run's log line.
func lineEvent(l api.LogLine) (taskEvent, bool) {
	ev := taskEvent{progress: -1, at: l.Time}
	var attrs map[string]json.RawMessage
	if len(l.Attrs) == 0 || json.Unmarshal(l.Attrs, &attrs) != nil {
		return ev, false
	}
	if raw, ok := attrs[builtins.AttrUPID]; !ok || json.Unmarshal(raw, &ev.upid) != nil {
		return ev, false
	}
	_, line := attrs[builtins.AttrTaskLine]
	_, waiting := attrs[builtins.AttrWaiting]
	if raw, ok := attrs[builtins.AttrProgress]; ok {
		_ = json.Unmarshal(raw, &ev.progress)
	}
	return finishEvent(ev, l.Msg, line, waiting)
}

func finishEvent(ev taskEvent, msg string, line, waiting bool) (taskEvent, bool) {
	switch {
	case ev.upid == "":
		return ev, false
	case line || waiting:
		ev.text = msg
	case msg == "task started":
		ev.started = true
	case msg == "task finished":
		ev.finished = true
	default:
		return ev, false
	}
	return ev, true
}

// statusHandler is the run's log handler on a terminal: task records
// update the board, every other record is printed by next (whose writer is
// the board) as a plain line.
type statusHandler struct {
	next  slog.Handler
	board *liveStatus
}

func (h statusHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h statusHandler) Handle(ctx context.Context, r slog.Record) error {
	if ev, ok := recordEvent(r); ok && h.board.Event(ev) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h statusHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return statusHandler{next: h.next.WithAttrs(as), board: h.board}
}

func (h statusHandler) WithGroup(name string) slog.Handler {
	return statusHandler{next: h.next.WithGroup(name), board: h.board}
}

// statusLogger is g's logger writing to w: with live status lines when w
// is a terminal and the log is text. close removes what is left of them.
func (g *Globals) statusLogger(w io.Writer) (logger *slog.Logger, close func()) {
	if g.LogFormat == "json" || !isTerminal(w) {
		return g.logger(w), func() {}
	}
	board := newLiveStatus(w)
	return slog.New(statusHandler{next: g.logger(board).Handler(), board: board}), board.Close
}
