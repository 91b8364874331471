package suggest

import (
	"slices"
	"testing"
)

func TestNearest(t *testing.T) {
	names := []string{"backup", "tagged-backup", "restore", "selftest", "monitor", "provision"}
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"bakup", []string{"backup"}},
		{"tagged-bakup", []string{"tagged-backup"}},
		{"restor", []string{"restore"}},
		{"res", []string{"restore"}}, // a prefix
		{"zzz", nil},
		{"backup", nil}, // itself is not a suggestion
		{"Monitor", []string{"monitor"}},
	} {
		if got := Nearest(tt.name, names); !slices.Equal(got, tt.want) {
			t.Errorf("Nearest(%q) = %q; want %q", tt.name, got, tt.want)
		}
	}
}
