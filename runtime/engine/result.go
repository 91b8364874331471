package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Kinds of failure a Result records besides proxmox.Kind's "permission",
// "lock", "not_found", "ambiguous", "task" and "api".
const (
	KindError      = "error"       // any other failure of the playbook
	KindStepBudget = "step_budget" // the run exceeded its step budget
	KindMemory     = "memory"      // the agent's heap passed its limit while the run allocated
	KindResult     = "result"      // the returned value cannot be encoded as JSON
	KindParams     = "params"      // refused: invalid parameters
	KindBusy       = "busy"        // refused: the playbook is already running
	KindInternal   = "internal"    // a builtin panicked (a bug in the agent)
	KindReplay     = "replay"      // a resumed run diverged from its journal (and was undone)
	KindInterrupt  = "interrupted" // the agent stopped while it ran, and it was undone rather than resumed
)

// Result is the record of one run, as the run store keeps it and the CLI
// shows it. Field meanings are fixed by the JSON names.
type Result struct {
	ID       string          `json:"id"`
	Playbook string          `json:"playbook"`
	Version  string          `json:"version"` // of the sources the run executed
	Trigger  string          `json:"trigger"`
	Params   map[string]any  `json:"params"` // secrets redacted; nil when refused before coercion
	Status   runstate.Status `json:"status"`
	// Kind classifies a failure or refusal (see the Kind constants and
	// proxmox.Kind); "" for a run that succeeded, was cancelled or timed
	// out.
	Kind string `json:"kind,omitempty"`
	// Error is one line for people: "playbooks/backup.star:12:9: proxmox.vzdump: ...".
	Error string `json:"error,omitempty"`
	// Backtrace is Starlark's backtrace of the failure, file:line:col per
	// frame, innermost last.
	Backtrace string `json:"backtrace,omitempty"`
	// Output is what the entry function returned, as JSON; null for None.
	Output   json.RawMessage `json:"output,omitempty"`
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Steps    uint64          `json:"steps"` // Starlark execution steps used
	// Undo is what the run's compensations (undo()) did, in the order
	// they ran (newest registration first); empty when none ran.
	Undo []UndoStep `json:"undo,omitempty"`
	// Err is the failure itself, for errors.As on the typed errors it
	// wraps (*proxmox.TaskError, *proxmox.APIError, *ParamError). It is
	// not part of the record, and unlike Error, Backtrace and Output it is
	// not scrubbed of secret parameter values: never print it.
	Err error `json:"-"`
}

// UndoStep is one compensation that ran.
type UndoStep struct {
	Call  string `json:"call"`            // fn(args) (registered at file:line:col)
	Error string `json:"error,omitempty"` // why it failed; "" when it succeeded
}

// Duration is how long the run took.
func (r *Result) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// ResultJSON converts what an entry function returned to the run's
// Output. It follows json.encode (None, bools, ints of any size, finite
// floats, strings, dicts with string keys, lists, tuples, structs as
// objects; object keys sorted) except that durations and times, which
// json.encode spells as objects of their attributes, become the strings
// people read: "1m30s" and RFC 3339. An error names where in the value
// the problem is: `result["guests"][2]: cannot encode function as JSON`.
func ResultJSON(v starlark.Value) (json.RawMessage, error) {
	// Written straight into one buffer: no tree of Go values, no
	// reflection, and the path of an element is spelled only when it is
	// the one that cannot be encoded (a run's result is encoded once per
	// run, so this is on every run's path).
	var w resultWriter
	if err := w.value(v, 0); err != nil {
		return nil, err.withRoot("result")
	}
	return w.buf, nil
}

// maxResultDepth bounds nesting, which also stops a list that contains
// itself.
const maxResultDepth = 64

// resultWriter appends a value's JSON to buf.
type resultWriter struct{ buf []byte }

// resultError is a value that cannot be encoded; path is built from the
// innermost element outwards as the error returns, so success never
// formats one.
type resultError struct {
	segs []string // innermost first: `[2]`, `["guests"]`, `.name`
	msg  string
	err  error // wrapped, when the failure came from Go code
}

func (e *resultError) at(seg string) *resultError {
	e.segs = append(e.segs, seg)
	return e
}

func (e *resultError) withRoot(root string) error {
	var b strings.Builder
	b.WriteString(root)
	for i := len(e.segs) - 1; i >= 0; i-- {
		b.WriteString(e.segs[i])
	}
	if e.err != nil {
		return fmt.Errorf("%s: %s%w", b.String(), e.msg, e.err)
	}
	return fmt.Errorf("%s: %s", b.String(), e.msg)
}

func (w *resultWriter) value(v starlark.Value, depth int) *resultError {
	if depth > maxResultDepth {
		return &resultError{msg: fmt.Sprintf("nested more than %d levels deep (does it contain itself?)", maxResultDepth)}
	}
	switch x := v.(type) {
	case starlark.NoneType:
		w.buf = append(w.buf, "null"...)
	case starlark.Bool:
		w.buf = strconv.AppendBool(w.buf, bool(x))
	case starlark.Int:
		if i, ok := x.Int64(); ok {
			w.buf = strconv.AppendInt(w.buf, i, 10)
		} else {
			w.buf = append(w.buf, x.String()...)
		}
	case starlark.Float:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return &resultError{msg: fmt.Sprintf("cannot encode non-finite float %v", x)}
		}
		w.buf = appendJSONFloat(w.buf, f)
	case starlark.String:
		w.str(string(x))
	case startime.Duration:
		w.str(time.Duration(x).String())
	case startime.Time:
		w.str(time.Time(x).Format(time.RFC3339Nano))
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err == nil {
			var c bytes.Buffer
			if err = json.Compact(&c, b); err == nil {
				w.buf = append(w.buf, c.Bytes()...)
				return nil
			}
		}
		return &resultError{msg: "json: error calling MarshalJSON: ", err: err}
	case starlark.IterableMapping:
		items := x.Items()
		keys := make([]string, len(items))
		for i, item := range items {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return &resultError{msg: fmt.Sprintf("dict has %s key, want string", item[0].Type())}
			}
			keys[i] = k
		}
		order := make([]int, len(items))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
		w.buf = append(w.buf, '{')
		for n, i := range order {
			if n > 0 {
				w.buf = append(w.buf, ',')
			}
			w.str(keys[i])
			w.buf = append(w.buf, ':')
			if err := w.value(items[i][1], depth+1); err != nil {
				return err.at(fmt.Sprintf("[%q]", keys[i]))
			}
		}
		w.buf = append(w.buf, '}')
	case starlark.Iterable:
		iter := x.Iterate()
		defer iter.Done()
		w.buf = append(w.buf, '[')
		var e starlark.Value
		for i := 0; iter.Next(&e); i++ {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			if err := w.value(e, depth+1); err != nil {
				return err.at(fmt.Sprintf("[%d]", i))
			}
		}
		w.buf = append(w.buf, ']')
	case starlark.HasAttrs:
		names := x.AttrNames()
		if !slices.IsSorted(names) {
			names = slices.Sorted(slices.Values(names))
		}
		w.buf = append(w.buf, '{')
		for n, name := range names {
			a, err := x.Attr(name)
			if err != nil {
				return &resultError{segs: []string{"." + name}, err: err}
			}
			if n > 0 {
				w.buf = append(w.buf, ',')
			}
			w.str(name)
			w.buf = append(w.buf, ':')
			if err := w.value(a, depth+1); err != nil {
				return err.at("." + name)
			}
		}
		w.buf = append(w.buf, '}')
	default:
		return &resultError{msg: fmt.Sprintf("cannot encode %s as JSON", v.Type())}
	}
	return nil
}

// str appends s as a JSON string the way encoding/json does with HTML
// escaping off; strings of plain printable ASCII, the usual case, are
// copied as they are.
func (w *resultWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(s) // a string always encodes
			w.buf = append(w.buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
			return
		}
	}
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '"')
}

// appendJSONFloat formats f as encoding/json does (ES6 number
// formatting: %f between 1e-6 and 1e21, else %e with a short exponent).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
