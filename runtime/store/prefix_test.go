package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestIDsWithPrefix(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := create(t, s, "backup", t0)
	b := create(t, s, "backup", t0)
	c := create(t, s, "backup", t0.Add(time.Hour))
	for _, tt := range []struct {
		prefix string
		limit  int
		want   []string
	}{
		{a.ID, 5, []string{a.ID}},
		{a.ID[:len("r-20261123T193000-")], 5, sorted(a.ID, b.ID)},
		{"r-2026", 5, sorted(a.ID, b.ID, c.ID)},
		{"r-2026", 2, sorted(a.ID, b.ID, c.ID)[:2]},
		{c.ID[:len(c.ID)-3], 5, []string{c.ID}},
		{"r-1999", 5, nil},
		{"", 5, nil},
		{"%", 5, nil}, // not a LIKE pattern
	} {
		got, err := s.IDsWithPrefix(ctx, tt.prefix, tt.limit)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("IDsWithPrefix(%q, %d) = %q, %v; want %q", tt.prefix, tt.limit, got, err, tt.want)
		}
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
