package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"longer than ten", 10, "longer tha…"},
		{"ééééé", 3, "é…"}, // é is 2 bytes: cut before the split rune
		{"abc", 0, ""},
		{"", 5, ""},
	}
	for _, tt := range tests {
		if got := String(tt.s, tt.max); got != tt.want {
			t.Errorf("String(%q, %d) = %q; want %q", tt.s, tt.max, got, tt.want)
		}
	}
}

func TestLine(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"one\ntwo", 10, "one"},
		{"a very long first line\nsecond", 8, "a very …"},
		{"ünïcödé", 4, "ünï…"},
		{"fits", 4, "fits"},
	}
	for _, tt := range tests {
		if got := Line(tt.s, tt.max); got != tt.want {
			t.Errorf("Line(%q, %d) = %q; want %q", tt.s, tt.max, got, tt.want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("longer than ten", 10)
	f.Add("ééééé", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		got := String(s, max)
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Errorf("String(%q, %d) = %q: not valid UTF-8", s, max, got)
		}
		if max > 0 && len(got) > max+len(Ellipsis) {
			t.Errorf("String(%q, %d) = %q: longer than max plus the ellipsis", s, max, got)
		}
		if max > 0 && !strings.HasPrefix(s, strings.TrimSuffix(got, Ellipsis)) {
			t.Errorf("String(%q, %d) = %q: not a prefix", s, max, got)
		}
	})
}
