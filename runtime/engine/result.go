package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
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
	x, err := jsonValue(v, "result", 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// maxResultDepth bounds nesting, which also stops a list that contains
// itself.
const maxResultDepth = 64

func jsonValue(v starlark.Value, path string, depth int) (any, error) {
	if depth > maxResultDepth {
		return nil, fmt.Errorf("%s: nested more than %d levels deep (does it contain itself?)", path, maxResultDepth)
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.Bool:
		return bool(x), nil
	case starlark.Int:
		return json.Number(x.String()), nil
	case starlark.Float:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%s: cannot encode non-finite float %v", path, x)
		}
		return f, nil
	case starlark.String:
		return string(x), nil
	case startime.Duration:
		return time.Duration(x).String(), nil
	case startime.Time:
		return time.Time(x).Format(time.RFC3339Nano), nil
	case json.Marshaler:
		return x, nil
	case starlark.IterableMapping:
		out := map[string]any{}
		for _, item := range x.Items() {
			k, ok := starlark.AsString(item[0])
			if !ok {
				return nil, fmt.Errorf("%s: dict has %s key, want string", path, item[0].Type())
			}
			e, err := jsonValue(item[1], fmt.Sprintf("%s[%q]", path, k), depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = e
		}
		return out, nil
	case starlark.Iterable:
		out := []any{}
		iter := x.Iterate()
		defer iter.Done()
		var e starlark.Value
		for i := 0; iter.Next(&e); i++ {
			ev, err := jsonValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
		}
		return out, nil
	case starlark.HasAttrs:
		out := map[string]any{}
		for _, name := range x.AttrNames() {
			a, err := x.Attr(name)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", path, name, err)
			}
			e, err := jsonValue(a, path+"."+name, depth+1)
			if err != nil {
				return nil, err
			}
			out[name] = e
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: cannot encode %s as JSON", path, v.Type())
}
