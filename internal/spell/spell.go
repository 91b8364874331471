// Package spell suggests the name that was probably meant: the "did you
// mean .guests?" of check's diagnostics and of the test modules' keyword
// errors. It is go.starlark.net's internal/spell (which the interpreter
// uses for its own attribute and keyword errors) made importable, with the
// same metric, so a suggestion at check time reads like the one the run
// would give.
package spell

import (
	"strings"
	"unicode"
)

// Nearest returns the candidate nearest to x by Levenshtein distance,
// ignoring case and underscores, or "" when none is within half of x's
// length (more typos than that is a different word). Ties go to the
// earlier candidate.
func Nearest(x string, candidates []string) string {
	fold := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	x = fold(x)
	var best string
	bestD := (len(x) + 1) / 2
	for _, c := range candidates {
		if d := distance(x, fold(c), bestD); d < bestD {
			bestD, best = d, c
		}
	}
	return best
}

// distance is the Levenshtein edit distance of x and y; once it exceeds
// limit it may return any value above limit.
func distance(x, y string, limit int) int {
	if len(x) > len(y) {
		x, y = y, x
	}
	if d := len(y) - len(x); d > limit {
		return d
	}
	row := make([]int, len(y)+1)
	for i := range row {
		row[i] = i
	}
	for i := 1; i <= len(x); i++ {
		prev := row[0]
		row[0] = i
		best := i
		for j := 1; j <= len(y); j++ {
			sub := prev
			if x[i-1] != y[j-1] {
				sub++
			}
			prev = row[j]
			row[j] = min(sub, row[j-1]+1, row[j]+1)
			best = min(best, row[j])
		}
		if best > limit {
			return best
		}
	}
	return row[len(y)]
}
