package builtins

import (
	"context"
	"log/slog"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
)

// LogTable is the log module: structured lines in the run's log, which
// the runtime tags with the run id and playbook name and keeps with the
// run's record.
//
// log works at load time too (a file may report what it declares); those
// lines go to the load logger ([SetLoadLogger]) or, without one, to
// slog.Default().
var LogTable = &Table{
	Effect: Reads,
	Name:   "log",
	Doc:    "Structured lines in the run's log. Every function takes a message and any number of keyword attributes (vmid = 101, took = t.duration); attribute values keep their type where the log has one (string, int, float, bool, duration, time) and are shown with str() otherwise.",
	Funcs: []Func{
		{Name: "debug", Journal: Pure, Sig: "debug(msg, **attrs)", Doc: "Writes msg at debug level; hidden unless the agent logs at debug level.", Fn: logAt(slog.LevelDebug)},
		{Name: "info", Journal: Pure, Sig: "info(msg, **attrs)", Doc: "Writes msg at info level.", Fn: logAt(slog.LevelInfo)},
		{Name: "warn", Journal: Pure, Sig: "warn(msg, **attrs)", Doc: "Writes msg at warning level: something an operator should look at, though the run goes on.", Fn: logAt(slog.LevelWarn)},
		{Name: "error", Journal: Pure, Sig: "error(msg, **attrs)", Doc: "Writes msg at error level. It does not stop the run; use fail() for that.", Fn: logAt(slog.LevelError)},
	},
}

// SetLoadLogger sets the logger that log.* writes to on a thread that is
// loading a file (a thread without an Env).
func SetLoadLogger(thread *starlark.Thread, l *slog.Logger) { thread.SetLocal(loadLoggerKey, l) }

const loadLoggerKey = "felhom.loadlogger"

// loggerOf returns where log lines of thread go, and the context to log
// them with.
func loggerOf(thread *starlark.Thread) (context.Context, *slog.Logger) {
	if env := EnvOf(thread); env != nil && env.Logger != nil {
		return env.Context, env.Logger
	}
	if l, ok := thread.Local(loadLoggerKey).(*slog.Logger); ok && l != nil {
		return context.Background(), l
	}
	return context.Background(), slog.Default()
}

func logAt(level slog.Level) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		// **attrs are free-form, so only the positional part goes through
		// the unpacker; the keyword names are already identifiers.
		var msg string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, nil, 1, &msg); err != nil {
			return nil, err
		}
		if env := EnvOf(thread); env != nil && env.Journal != nil && env.Journal.Replaying() {
			return starlark.None, nil // written when the run first got here
		}
		attrs := make([]slog.Attr, 0, len(kwargs))
		for _, kv := range kwargs {
			attrs = append(attrs, slog.Any(string(kv[0].(starlark.String)), logValue(kv[1])))
		}
		ctx, logger := loggerOf(thread)
		if ctx == nil {
			ctx = context.Background()
		}
		logger.LogAttrs(ctx, level, msg, attrs...)
		return starlark.None, nil
	}
}

// logValue converts an attribute to the Go value slog handlers render
// natively, falling back to Starlark's str() for composite values.
func logValue(v starlark.Value) any {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.String:
		return string(x)
	case starlark.Bool:
		return bool(x)
	case starlark.Int:
		if n, ok := x.Int64(); ok {
			return n
		}
		return x.String()
	case starlark.Float:
		return float64(x)
	case startime.Duration:
		return time.Duration(x)
	case startime.Time:
		return time.Time(x)
	}
	return v.String()
}
