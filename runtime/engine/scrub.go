package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
)

// A scrubber replaces a run's secret parameter values with [Redacted] in
// everything the run writes: every log record (message and attributes,
// through scrubHandler), its error and backtrace (a fail() message
// included) and its result. The run record's parameters are redacted by
// Params.Record; the scrubber covers what the playbook does with the value.
//
// It matches each secret exactly as given and in its JSON-escaped form.
// What it cannot see is a transformed secret — upper-cased, encoded,
// sliced — which a playbook must not log; it is documented at
// param.secret.
//
// A nil *scrubber scrubs nothing (a run without secrets).
type scrubber struct {
	r *strings.Replacer
}

// newScrubber returns a scrubber for secrets, or nil when there are none.
func newScrubber(secrets []string) *scrubber {
	var pairs []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			pairs = append(pairs, s, Redacted)
		}
	}
	for _, s := range secrets {
		add(s)
		b, _ := json.Marshal(s)
		add(string(b[1 : len(b)-1])) // as it sits inside a JSON string
	}
	if len(pairs) == 0 {
		return nil
	}
	// strings.Replacer tries the pairs in argument order at each position:
	// longer first, so a secret that contains another is replaced whole.
	sortLongestFirst(pairs)
	return &scrubber{r: strings.NewReplacer(pairs...)}
}

func sortLongestFirst(pairs []string) {
	for i := 2; i < len(pairs); i += 2 {
		for j := i; j >= 2 && len(pairs[j]) > len(pairs[j-2]); j -= 2 {
			pairs[j], pairs[j-2] = pairs[j-2], pairs[j]
		}
	}
}

// ScrubJSON returns the JSON document raw with the values of p's secret
// parameters replaced by [Redacted] inside its strings, keys and numbers,
// as a run's result is scrubbed: for what is built from a run of these
// parameters outside the run — a plan sent to the hub.
func (p *Params) ScrubJSON(raw json.RawMessage) json.RawMessage {
	return newScrubber(p.Secrets()).JSON(raw)
}

// String returns s with every secret replaced.
func (sc *scrubber) String(s string) string {
	if sc == nil {
		return s
	}
	return sc.r.Replace(s)
}

// JSON returns the JSON document raw with every secret replaced inside its
// strings and object keys, and any number whose text holds a secret turned
// into the string [Redacted], so the result stays valid JSON.
func (sc *scrubber) JSON(raw json.RawMessage) json.RawMessage {
	if sc == nil || len(raw) == 0 {
		return raw
	}
	// Decoded, not searched as text: JSON may spell a secret with \u
	// escapes.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		b, _ := json.Marshal(sc.String(string(raw)))
		return b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sc.walk(v)); err != nil {
		b, _ := json.Marshal(Redacted)
		return b
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func (sc *scrubber) walk(v any) any {
	switch x := v.(type) {
	case string:
		return sc.String(x)
	case json.Number:
		if s := sc.String(x.String()); s != x.String() {
			return s
		}
		return x
	case []any:
		for i := range x {
			x[i] = sc.walk(x[i])
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[sc.String(k)] = sc.walk(e)
		}
		return out
	}
	return v
}

// scrubHandler is a slog.Handler that scrubs each record before passing it
// on: the message, and every attribute value — strings, groups, errors and
// other values by their text (a value whose text holds a secret becomes
// its scrubbed text).
type scrubHandler struct {
	next slog.Handler
	sc   *scrubber
}

// scrubLogger wraps l so that nothing it writes holds a secret; l itself
// when sc is nil.
func scrubLogger(l *slog.Logger, sc *scrubber) *slog.Logger {
	if sc == nil {
		return l
	}
	return slog.New(&scrubHandler{next: l.Handler(), sc: sc})
}

func (h *scrubHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.sc.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *scrubHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &scrubHandler{next: h.next.WithAttrs(clean), sc: h.sc}
}

func (h *scrubHandler) WithGroup(name string) slog.Handler {
	return &scrubHandler{next: h.next.WithGroup(h.sc.String(name)), sc: h.sc}
}

func (h *scrubHandler) attr(a slog.Attr) slog.Attr {
	a.Key = h.sc.String(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(h.sc.String(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = h.attr(g)
		}
		a.Value = slog.GroupValue(clean...)
	case slog.KindAny:
		text := fmt.Sprint(v.Any())
		if s := h.sc.String(text); s != text {
			a.Value = slog.StringValue(s)
		} else {
			a.Value = v
		}
	default: // numbers, bools, times, durations
		text := v.String()
		if s := h.sc.String(text); s != text {
			a.Value = slog.StringValue(s)
		} else {
			a.Value = v
		}
	}
	return a
}
