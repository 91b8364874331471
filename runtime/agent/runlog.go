package agent

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

const (
	// logFlushEvery bounds how long a log line waits in memory before it
	// is durable; AppendLog costs an fsync, so lines are batched.
	logFlushEvery = 200 * time.Millisecond
	// logFlushLines flushes at once when this many lines are waiting, so a
	// chatty run is slowed by its own logging rather than filling memory.
	logFlushLines = 256
)

// runLogSink batches one run's log lines into the store.
type runLogSink struct {
	a  *Agent
	lr *liveRun

	flushMu sync.Mutex // one AppendLog at a time, in order
	written atomic.Int64

	mu     sync.Mutex
	buf    []store.LogLine
	timer  *time.Timer // armed while buf holds lines
	closed bool
	// What the run has logged against its limits (limits.go).
	logged, droppedLines, droppedBytes int64
}

func newRunLogSink(a *Agent, lr *liveRun) *runLogSink { return &runLogSink{a: a, lr: lr} }

// add queues a line and arranges for it to be flushed, within the run's
// limits (limits.go).
func (s *runLogSink) add(l store.LogLine) {
	lim := s.a.limits
	l = capLine(l, lim.LogLine)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.a.log.Warn("log line after the run ended dropped", "run", s.lr.id, "msg", l.Msg)
		return
	}
	size := int64(lineSize(l))
	if s.logged+size > lim.Log {
		if s.droppedLines == 0 {
			s.buf = append(s.buf, limitLine(lim.Log))
		}
		s.droppedLines++
		s.droppedBytes += size
		s.mu.Unlock()
		return
	}
	s.logged += size
	s.buf = append(s.buf, l)
	full := len(s.buf) >= logFlushLines
	if !full && s.timer == nil {
		s.timer = time.AfterFunc(logFlushEvery, s.flush)
	}
	s.mu.Unlock()
	if full {
		s.flush()
	}
}

// flush writes the waiting lines in one transaction.
func (s *runLogSink) flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	lines := s.buf
	s.buf = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	if len(lines) == 0 {
		return
	}
	if err := s.a.store.AppendLog(context.Background(), s.lr.id, lines...); err != nil {
		s.a.log.Error("recording run log lines failed", "run", s.lr.id, "lines", len(lines), "err", err)
		return
	}
	s.written.Add(int64(len(lines)))
	s.lr.notify()
}

// writeNow makes the waiting lines and l durable in one transaction,
// before it returns, and reports whether they are: the intent of a
// mutation is written this way, so that nothing is sent that the record
// does not hold.
func (s *runLogSink) writeNow(l store.LogLine) error {
	l = capLine(l, s.a.limits.LogLine)
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	lines := append(s.buf, l)
	s.buf = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	if err := s.a.store.AppendLog(context.Background(), s.lr.id, lines...); err != nil {
		return err
	}
	s.written.Add(int64(len(lines)))
	s.lr.notify()
	return nil
}

// close flushes what is left, with the count of lines the log limit
// dropped; lines added later are dropped.
func (s *runLogSink) close() {
	s.mu.Lock()
	s.closed = true
	if s.droppedLines > 0 {
		s.buf = append(s.buf, droppedLine(s.droppedLines, s.droppedBytes))
	}
	s.mu.Unlock()
	s.flush()
}

// runLogHandler is the slog.Handler of a run's logger: every record goes
// to the agent's handler (if it is enabled there) and, at Info and above
// or whatever the agent logs, to the run's record in the store.
// Attributes the engine adds to tag the agent's log (run, playbook) are
// not repeated in the store, where the run is the record's key.
type runLogHandler struct {
	next   slog.Handler
	sink   *runLogSink
	attrs  []slog.Attr // handler attributes for the store, groups applied
	groups []string
}

var _ slog.Handler = (*runLogHandler)(nil)

func (h *runLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || h.next.Enabled(ctx, level)
}

func (h *runLogHandler) Handle(ctx context.Context, r slog.Record) error {
	r = capRecord(r, h.sink.a.limits.LogLine)
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	attrs := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	attrs = append(attrs, h.attrs...)
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool { own = append(own, a); return true })
	attrs = append(attrs, nest(h.groups, own)...)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.sink.add(store.LogLine{Time: t, Level: r.Level.String(), Msg: r.Message, Attrs: attrsJSON(attrs)})
	return err
}

func (h *runLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	var kept []slog.Attr
	for _, a := range as {
		if len(h.groups) == 0 && (a.Key == "run" || a.Key == "playbook") {
			continue
		}
		kept = append(kept, a)
	}
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), nest(h.groups, kept)...)
	return &c
}

func (h *runLogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.groups = append(append([]string(nil), h.groups...), name)
	return &c
}

// nest puts attrs inside the open groups.
func nest(groups []string, attrs []slog.Attr) []slog.Attr {
	if len(attrs) == 0 {
		return nil
	}
	for i := len(groups) - 1; i >= 0; i-- {
		attrs = []slog.Attr{{Key: groups[i], Value: slog.GroupValue(attrs...)}}
	}
	return attrs
}

// attrsJSON renders attributes as one JSON object, nil for none. Values
// that resolve themselves (slog.LogValuer: secrets redact this way) are
// resolved first; errors become their message; anything JSON cannot
// encode becomes its fmt form.
func attrsJSON(attrs []slog.Attr) json.RawMessage {
	if len(attrs) == 0 {
		return nil
	}
	obj := attrMap(attrs)
	if len(obj) == 0 {
		return nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"attrs": fmt.Sprint(obj)})
	}
	return b
}

func attrMap(attrs []slog.Attr) map[string]any {
	out := make(map[string]any, len(attrs))
	for _, a := range attrs {
		v := a.Value.Resolve()
		if a.Key == "" && v.Kind() == slog.KindGroup {
			for k, x := range attrMap(v.Group()) { // an inline group
				out[k] = x
			}
			continue
		}
		if a.Key == "" {
			continue
		}
		out[a.Key] = attrValue(v)
	}
	return out
}

func attrValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		if f := v.Float64(); math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Sprint(f)
		}
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindGroup:
		return attrMap(v.Group())
	}
	switch x := v.Any().(type) {
	case nil:
		return nil
	case error:
		return x.Error()
	case json.Marshaler:
		if b, err := x.MarshalJSON(); err == nil && json.Valid(b) {
			return json.RawMessage(b)
		}
	case encoding.TextMarshaler:
		if b, err := x.MarshalText(); err == nil {
			return string(b)
		}
	case fmt.Stringer:
		return x.String()
	}
	if b, err := json.Marshal(v.Any()); err == nil {
		return json.RawMessage(b)
	}
	return fmt.Sprint(v.Any())
}
