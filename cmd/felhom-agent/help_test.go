package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestHelpOwnFlagsFirst: a command's help lists its own flags, then the
// global ones under their own heading.
func TestHelpOwnFlagsFirst(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"run", "--help"}, &out, &bytes.Buffer{}); code != exitOK {
		t.Fatal(code)
	}
	h := out.String()
	own, global := strings.Index(h, "--param=NAME=VALUE"), strings.Index(h, "Global flags")
	if own < 0 || global < 0 || own > global || strings.Index(h, "--proxmox-endpoint") < global {
		t.Errorf("run --help: own flags at %d, global heading at %d:\n%s", own, global, h)
	}
}

// TestCompletionInProcess: with COMP_LINE set (as bash, zsh and fish set
// it for a `complete -C` command), the CLI prints completions of commands,
// flags and enums and exits 0 without running anything.
func TestCompletionInProcess(t *testing.T) {
	for line, want := range map[string][]string{
		"felhom-agent ru":               {"run", "runs"},
		"felhom-agent runs sh":          {"show"},
		"felhom-agent run --s":          {"--sim"},
		"felhom-agent --log-level ":     {"debug", "info", "warn", "error"},
		"felhom-agent completion ":      {"bash", "zsh", "fish"},
		"felhom-agent playbooks show x": nil, // no agent: nothing, quickly
	} {
		t.Setenv("COMP_LINE", line)
		var out bytes.Buffer
		if code := run(nil, &out, &bytes.Buffer{}); code != exitOK {
			t.Errorf("COMP_LINE=%q: exit %d", line, code)
		}
		got := strings.Fields(out.String())
		for _, w := range want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
				t.Errorf("COMP_LINE=%q completes %q; want %q among them", line, got, w)
			}
		}
	}
	os.Unsetenv("COMP_LINE")
	var out bytes.Buffer
	if code := run([]string{"completion", "fish"}, &out, &bytes.Buffer{}); code != exitOK || !strings.Contains(out.String(), "complete -f -c felhom-agent") {
		t.Errorf("completion fish = %d %q", code, out.String())
	}
}
