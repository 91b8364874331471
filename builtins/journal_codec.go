package builtins

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// The journal's encoding of builtin outcomes: a JSON document that gives
// back the same Starlark value — its type included (a tuple stays a
// tuple, a struct a struct, a time a time) — or the same typed error, so
// that catch() and the run record classify a replayed error exactly as
// the live one (proxmox.Kind, permission, lock, task log tail).

// outcome is one call's journaled outcome.
type outcome struct {
	V json.RawMessage `json:"v,omitempty"` // the value (see encodeValue)
	E *journaledError `json:"e,omitempty"` // or the error
}

// journaledError is a builtin's error with what classifies it.
type journaledError struct {
	Msg       string              `json:"msg"`
	Ambiguous bool                `json:"ambiguous,omitempty"`
	NotSent   bool                `json:"not_sent,omitempty"`
	API       *journaledAPI       `json:"api,omitempty"`
	Task      *journaledTask      `json:"task,omitempty"`
	Perm      *proxmox.Permission `json:"perm,omitempty"`
}

type journaledAPI struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Status  int               `json:"status"`
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors,omitempty"`
}

type journaledTask struct {
	UPID       string   `json:"upid"`
	ExitStatus string   `json:"exitstatus"`
	LogTail    []string `json:"log,omitempty"`
}

// replayedError is an error answered from the journal: its text as it
// was, wrapping the typed errors it carried.
type replayedError struct {
	msg   string
	cause error
}

func (e *replayedError) Error() string { return e.msg }
func (e *replayedError) Unwrap() error { return e.cause }

// EncodeOutcome encodes what a builtin returned for the journal.
func EncodeOutcome(v starlark.Value, err error) ([]byte, error) {
	var o outcome
	if err != nil {
		o.E = encodeError(err)
	} else {
		if v == nil {
			v = starlark.None
		}
		raw, err := encodeValue(v)
		if err != nil {
			return nil, err
		}
		o.V = raw
	}
	return json.Marshal(o)
}

// DecodeOutcome gives back what EncodeOutcome encoded: the value, or the
// error (as the builtin's error).
func DecodeOutcome(b []byte) (starlark.Value, error) {
	var o outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("journal entry cannot be read: %w", err)
	}
	if o.E != nil {
		return nil, o.E.decode()
	}
	if len(o.V) == 0 {
		return nil, errors.New("journal entry has neither a value nor an error")
	}
	return decodeValue(o.V)
}

// EncodeArgs is the canonical encoding of a call's arguments, for their
// digest. A value the encoding does not carry (a function) is encoded by
// its type and name, which is enough to tell two calls apart.
func EncodeArgs(args starlark.Tuple, kwargs []starlark.Tuple) []byte {
	var b strings.Builder
	for _, a := range args {
		writeArg(&b, a)
		b.WriteByte(',')
	}
	for _, kv := range kwargs {
		b.WriteString(string(kv[0].(starlark.String)))
		b.WriteByte('=')
		writeArg(&b, kv[1])
		b.WriteByte(',')
	}
	return []byte(b.String())
}

func writeArg(b *strings.Builder, v starlark.Value) {
	raw, err := encodeValue(v)
	if err != nil {
		fmt.Fprintf(b, "<%s %s>", v.Type(), v.String())
		return
	}
	b.Write(raw)
}

func encodeError(err error) *journaledError {
	je := &journaledError{Msg: err.Error(), Ambiguous: proxmox.IsAmbiguous(err), NotSent: errors.Is(err, proxmox.ErrNotSent)}
	if ee, ok := errors.AsType[*starlark.EvalError](err); ok {
		je.Msg = ee.Msg
	}
	if ae, ok := errors.AsType[*proxmox.APIError](err); ok {
		je.API = &journaledAPI{Method: ae.Method, Path: ae.Path, Status: ae.Status, Message: ae.Message, Errors: ae.Errors}
		je.Perm = ae.Permission
	}
	if te, ok := errors.AsType[*proxmox.TaskError](err); ok {
		je.Task = &journaledTask{ExitStatus: te.ExitStatus, LogTail: te.LogTail}
		if !te.UPID.IsZero() {
			je.Task.UPID = te.UPID.String()
		}
		if je.Perm == nil {
			je.Perm = te.Permission
		}
	}
	return je
}

func (je *journaledError) decode() error {
	var causes []error
	if je.API != nil {
		ae := &proxmox.APIError{Method: je.API.Method, Path: je.API.Path, Status: je.API.Status, Message: je.API.Message, Errors: je.API.Errors}
		ae.Permission = je.Perm
		causes = append(causes, ae)
	}
	if je.Task != nil {
		te := &proxmox.TaskError{ExitStatus: je.Task.ExitStatus, LogTail: je.Task.LogTail}
		if je.Task.UPID != "" {
			te.UPID, _ = proxmox.ParseUPID(je.Task.UPID)
		}
		if je.API == nil {
			te.Permission = je.Perm
		}
		causes = append(causes, te)
	}
	if je.Ambiguous {
		causes = append(causes, proxmox.ErrAmbiguous)
	}
	if je.NotSent {
		causes = append(causes, proxmox.ErrNotSent)
	}
	return &replayedError{msg: je.Msg, cause: errors.Join(causes...)}
}

// Values are encoded as a JSON array whose first element names the type:
// ["N"] None, ["b", bool], ["i", "decimal"], ["f", float], ["s", str],
// ["y", base64] bytes, ["l", [...]] list, ["t", [...]] tuple,
// ["d", [[k, v], ...]] dict, ["S", [[name, v], ...]] struct, ["K", {...}]
// task (taskJournal),
// ["T", RFC 3339] time, ["D", nanoseconds] duration.

func encodeValue(v starlark.Value) (json.RawMessage, error) {
	var x any
	switch v := v.(type) {
	case starlark.NoneType:
		x = []any{"N"}
	case starlark.Bool:
		x = []any{"b", bool(v)}
	case starlark.Int:
		x = []any{"i", v.String()}
	case starlark.Float:
		x = []any{"f", float64(v)}
	case starlark.String:
		x = []any{"s", string(v)}
	case starlark.Bytes:
		x = []any{"y", base64.StdEncoding.EncodeToString([]byte(v))}
	case *starlark.List:
		elems, err := encodeElems(v.Len(), v.Index)
		if err != nil {
			return nil, err
		}
		x = []any{"l", elems}
	case starlark.Tuple:
		elems, err := encodeElems(v.Len(), v.Index)
		if err != nil {
			return nil, err
		}
		x = []any{"t", elems}
	case *starlark.Dict:
		items := v.Items()
		pairs := make([]any, len(items))
		for i, kv := range items {
			k, err := encodeValue(kv[0])
			if err != nil {
				return nil, err
			}
			val, err := encodeValue(kv[1])
			if err != nil {
				return nil, err
			}
			pairs[i] = []json.RawMessage{k, val}
		}
		x = []any{"d", pairs}
	case *starlarkstruct.Struct:
		names := v.AttrNames()
		fields := make([]any, len(names))
		for i, n := range names {
			fv, _ := v.Attr(n)
			val, err := encodeValue(fv)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", n, err)
			}
			fields[i] = []any{n, val}
		}
		x = []any{"S", fields}
	case *taskValue:
		j, err := v.journal()
		if err != nil {
			return nil, err
		}
		x = []any{"K", j}
	case startime.Time:
		x = []any{"T", time.Time(v).Format(time.RFC3339Nano)}
	case startime.Duration:
		x = []any{"D", int64(v)}
	default:
		return nil, fmt.Errorf("a %s cannot be journaled", v.Type())
	}
	return json.Marshal(x)
}

func encodeElems(n int, at func(int) starlark.Value) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, n)
	for i := range n {
		raw, err := encodeValue(at(i))
		if err != nil {
			return nil, err
		}
		out[i] = raw
	}
	return out, nil
}

func decodeValue(raw json.RawMessage) (starlark.Value, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) == 0 {
		return nil, fmt.Errorf("journal value %.40s is not a tagged value", raw)
	}
	var tag string
	if err := json.Unmarshal(parts[0], &tag); err != nil {
		return nil, fmt.Errorf("journal value %.40s has no tag", raw)
	}
	if tag == "N" {
		return starlark.None, nil
	}
	if len(parts) != 2 {
		return nil, fmt.Errorf("journal value %.40s: want [tag, value]", raw)
	}
	body := parts[1]
	switch tag {
	case "b":
		var b bool
		err := json.Unmarshal(body, &b)
		return starlark.Bool(b), err
	case "i":
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, err
		}
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("journal int %q", s)
		}
		return starlark.MakeBigInt(n), nil
	case "f":
		var f float64
		err := json.Unmarshal(body, &f)
		return starlark.Float(f), err
	case "s":
		var s string
		err := json.Unmarshal(body, &s)
		return starlark.String(s), err
	case "y":
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		return starlark.Bytes(b), err
	case "l", "t":
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, err
		}
		vs := make([]starlark.Value, len(elems))
		for i, e := range elems {
			v, err := decodeValue(e)
			if err != nil {
				return nil, err
			}
			vs[i] = v
		}
		if tag == "t" {
			return starlark.Tuple(vs), nil
		}
		return starlark.NewList(vs), nil
	case "d":
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(body, &pairs); err != nil {
			return nil, err
		}
		d := starlark.NewDict(len(pairs))
		for _, p := range pairs {
			k, err := decodeValue(p[0])
			if err != nil {
				return nil, err
			}
			v, err := decodeValue(p[1])
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(k, v); err != nil {
				return nil, err
			}
		}
		return d, nil
	case "S":
		var fields [][2]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, err
		}
		sd := make(starlark.StringDict, len(fields))
		for _, f := range fields {
			var name string
			if err := json.Unmarshal(f[0], &name); err != nil {
				return nil, err
			}
			v, err := decodeValue(f[1])
			if err != nil {
				return nil, err
			}
			sd[name] = v
		}
		return newStruct(sd), nil
	case "K":
		return taskFromJournal(body)
	case "T":
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return startime.Time(t), err
	case "D":
		var n int64
		err := json.Unmarshal(body, &n)
		return startime.Duration(n), err
	}
	return nil, fmt.Errorf("journal value has unknown tag %q", tag)
}
