package main

import (
	"io"
	"log/slog"
)

// logger builds the process's logger from --log-level and --log-format.
// Secrets redact themselves at their types (proxmox.TokenSecret,
// hub.Keys), so nothing here filters.
func (g *Globals) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(g.LogLevel)) // kong's enum already checked it
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: humanReplaceAttr}
	if g.LogFormat == "json" {
		opts.ReplaceAttr = jsonReplaceAttr
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
