// Package clip shortens text for people: refusals that must stay
// readable, log lines that quote what a client sent, table cells. It is
// the one place that decides how text is cut (at a rune boundary, with an
// ellipsis), for every part of the agent.
package clip

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks where text was cut.
const Ellipsis = "…"

// String returns s if it is at most max bytes long, and otherwise its
// first max bytes or fewer — cut at a rune boundary, so the result is
// valid UTF-8 when s is — followed by [Ellipsis]. max <= 0 returns "".
func String(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + Ellipsis
}

// Line returns the first line of s, clipped to max runes (the ellipsis
// counting as one), for one-line displays such as table cells.
func Line(s string, max int) string {
	s, _, _ = strings.Cut(s, "\n")
	if max <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + Ellipsis
}
