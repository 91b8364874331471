package clip

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var printableTests = []struct{ in, want string }{
	{"plain text: ok", "plain text: ok"},
	{"", ""},
	{"tab\there", `tab\there`},
	{"two\nlines", `two\nlines`},
	{"cr\r", `cr\r`},
	{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
	{"nul\x00", `nul\x00`},
	{"del\x7f", `del\x7f`},
	{"c1\u0085", `c1\u0085`},
	{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
	{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
	{"árvíztűrő °C", "árvíztűrő °C"},
	{"literal \\x1b stays", "literal \\x1b stays"},
}

func TestPrintable(t *testing.T) {
	for _, tt := range printableTests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzPrintable: the result is valid UTF-8 made only of printable runes and
// spaces, and text that is already printable is unchanged.
func FuzzPrintable(f *testing.F) {
	for _, tt := range printableTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Printable(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("Printable(%q) = %q holds %U", s, got, r)
			}
		}
		if isPrintable(s) && got != s {
			t.Fatalf("Printable(%q) = %q; want it unchanged", s, got)
		}
		if !strings.Contains(s, "\\") && isPrintable(s) != (got == s) {
			t.Fatalf("Printable(%q) = %q", s, got)
		}
	})
}
