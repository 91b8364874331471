package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// TestReferenceGoldenMan: deploy/felhom-agent.1 is what `felhom-agent man`
// prints (go test -run ReferenceGolden -update rewrites it, as it does the
// builtins' reference), and it names every command and every flag the
// command line has.
func TestReferenceGoldenMan(t *testing.T) {
	var cli CLI
	p, err := newParser(&cli, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := renderMan(&buf, p.Model); err != nil {
		t.Fatal(err)
	}
	const file = "../../deploy/felhom-agent.1"
	if *update {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -run ReferenceGolden -update creates it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("felhom-agent man differs from %s (go test -run ReferenceGolden -update rewrites it)", file)
	}
	page := buf.String()
	_ = kong.Visit(p.Model, func(n kong.Visitable, next kong.Next) error {
		switch n := n.(type) {
		case *kong.Node:
			if !n.Hidden && n.Leaf() && n.Type == kong.CommandNode && !strings.Contains(page, ".SS \""+roffText(n.Path())) {
				t.Errorf("the page has no section for command %q", n.Path())
			}
		case *kong.Flag:
			if !n.Hidden && n.Name != "help" && !strings.Contains(page, roffText(n.Name)+`\fR`) {
				t.Errorf("the page does not name flag --%s", n.Name)
			}
		}
		return next(nil)
	})
	// groff, where installed, reads it without a warning.
	if groff, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command(groff, "-man", "-ww", "-z")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff -man -ww: %v\n%s", err, out)
		}
	}
}

func TestRoffText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"--state-dir", `\-\-state\-dir`},
		{`a\b`, `a\eb`},
		{".hidden\n'quote\nplain", "\\&.hidden\n\\&'quote\nplain"},
	} {
		if got := roffText(tt.in); got != tt.want {
			t.Errorf("roffText(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
