package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatGolden(t *testing.T) {
	ins, err := filepath.Glob("../../testdata/golden/fmt/*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Format(src, filepath.Base(in))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(in, ".in")+".out", got)
			again, err := Format(got, filepath.Base(in))
			if err != nil || string(again) != string(got) {
				t.Errorf("Format is not idempotent: %v\n%s", err, again)
			}
		})
	}
}

func TestFormatErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"syntax", "def run(ctx)\n    pass\n", "x.star:2:1: got newline, want ':'"},
		{"while", "def run(ctx):\n    n = 0\n    while n < 3:\n        n += 1\n", "x.star:3:5: cannot format: the formatter (buildifier) does not support while loops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Format([]byte(tt.src), "x.star")
			var d Diagnostic
			if !errors.As(err, &d) || err.Error() != tt.want {
				t.Errorf("Format() error = %v; want Diagnostic %q", err, tt.want)
			}
		})
	}
}
