package main

import (
	"io"
	"os"
	"strings"
)

// Colour, as the tools operators know do it: on when standard output is a
// terminal, off when it is not (a pipe, a file), off whenever NO_COLOR is
// set to anything (no-color.org), and off for TERM=dumb. Only status words
// and log levels are coloured; the text is the same either way.

// colorFor decides whether output to w gets colour.
func colorFor(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

// paint colours a run status word (any case) when g's output has colour.
func paint(g *Globals, status string) string {
	if !g.color {
		return status
	}
	var c string
	switch strings.ToLower(status) {
	case "succeeded":
		c = ansiGreen
	case "failed", "timed_out", "refused":
		c = ansiRed
	case "cancelled", "interrupted":
		c = ansiYellow
	case "queued", "running":
		c = ansiCyan
	default:
		return status
	}
	return c + status + ansiReset
}

// paintLevel colours a log level (possibly padded) when g's output has
// colour.
func paintLevel(g *Globals, level string) string {
	if !g.color {
		return level
	}
	switch strings.TrimSpace(level) {
	case "ERROR":
		return ansiRed + level + ansiReset
	case "WARN":
		return ansiYellow + level + ansiReset
	case "DEBUG":
		return ansiDim + level + ansiReset
	}
	return level
}
