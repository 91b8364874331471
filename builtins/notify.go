package builtins

import (
	"context"
	"fmt"
	"log/slog"

	"go.starlark.net/starlark"
)

// NotifyTable is the notify module: a playbook's own message to the
// people who watch this host, through the channels the agent is
// configured with (notify.webhook.url, notify.smtp.*) — the same ones that
// report failed runs and missed schedules.
//
// notify.send is a side effect outside Proxmox, so it goes through
// [Env.Notify], a small interface: the durable-runs work will journal it
// there, so that a run replayed after a crash does not send a
// notification it already sent. Until then nothing replays runs.
var NotifyTable = &Table{
	Effect: Reads,
	Name:   "notify",
	Doc:    "A playbook's own notification to the people who watch this host, through the agent's configured channels (a signed webhook, mail); delivery is retried in the background and never blocks the run.",
	Funcs: []Func{
		{
			Name: "send", Journal: Once,
			Sig: `send(message, level="info", **fields)`,
			Doc: `Queues message (with the run id, the playbook and each field as text) on every configured channel and returns True; returns False, and logs a warning, when the agent has no channel configured (as under felhom-agent run). level is "info", "warning" or "critical". It does not wait for delivery.`,
			Fn:  notifySend,
		},
	},
}

// Notifier sends a playbook's notifications (notify.send). Notify must
// not block on delivery; it returns false when no channel is configured.
// ctx is the run's context, which carries its id (the engine's RunID).
//
// The interface is the seam for durable runs: a journaling Notifier
// records each send and answers a replayed one from the journal instead
// of sending it again.
type Notifier interface {
	Notify(ctx context.Context, n Notification) (sent bool, err error)
}

// Notification is one notify.send.
type Notification struct {
	Message string
	Level   string            // info, warning or critical
	Fields  map[string]string // the keyword fields, as str() shows them
}

func notifySend(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	// **fields are free-form: the declared keywords go through the
	// unpacker, the rest become fields.
	var known, fields []starlark.Tuple
	for _, kv := range kwargs {
		if k := string(kv[0].(starlark.String)); k == "message" || k == "level" {
			known = append(known, kv)
		} else {
			fields = append(fields, kv)
		}
	}
	var msg string
	level := "info"
	if err := starlark.UnpackArgs(b.Name(), args, known, "message", &msg, "level?", &level); err != nil {
		return nil, err
	}
	switch level {
	case "info", "warning", "critical":
	default:
		return nil, fmt.Errorf(`%s: level %q is not "info", "warning" or "critical"`, b.Name(), level)
	}
	n := Notification{Message: msg, Level: level, Fields: map[string]string{}}
	for _, kv := range fields {
		v := kv[1]
		if s, ok := v.(starlark.String); ok {
			n.Fields[string(kv[0].(starlark.String))] = string(s)
		} else {
			n.Fields[string(kv[0].(starlark.String))] = v.String()
		}
	}
	if env.Notify == nil {
		env.Logger.LogAttrs(env.Context, slog.LevelWarn, "notify.send: no notification channel is configured; not sent", slog.String("message", msg))
		return starlark.False, nil
	}
	sent, err := env.Notify.Notify(env.Context, n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if !sent {
		env.Logger.LogAttrs(env.Context, slog.LevelWarn, "notify.send: no notification channel is configured; not sent", slog.String("message", msg))
	}
	return starlark.Bool(sent), nil
}
