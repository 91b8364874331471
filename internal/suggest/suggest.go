// Package suggest answers "did you mean ...?" for a name that was not
// found: the known names closest to it by edit distance, as go.starlark.net
// and git suggest a misspelt name.
package suggest

import (
	"slices"
	"strings"
)

// Nearest returns the candidates within a small edit distance of name —
// at most a third of the longer's length, at least 1 — closest first
// (ties in candidate order), and also any candidate that name is a prefix
// of. It returns nil when nothing is close.
func Nearest(name string, candidates []string) []string {
	type scored struct {
		s string
		d int
	}
	var out []scored
	seen := map[string]bool{}
	for _, c := range candidates {
		if seen[c] || c == name {
			continue
		}
		seen[c] = true
		d := distance(strings.ToLower(name), strings.ToLower(c))
		limit := max(1, max(len(name), len(c))/3)
		if d <= limit || (len(name) >= 2 && strings.HasPrefix(c, name)) {
			out = append(out, scored{c, d})
		}
	}
	slices.SortStableFunc(out, func(a, b scored) int { return a.d - b.d })
	names := make([]string, len(out))
	for i, s := range out {
		names[i] = s.s
	}
	if len(names) == 0 {
		return nil
	}
	return names
}

// distance is the Levenshtein distance between a and b, by runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
