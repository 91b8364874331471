package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommands drives the offline commands through run(), checking exit
// codes and what they print.
func TestCommands(t *testing.T) {
	unformatted := filepath.Join(t.TempDir(), "unformatted.star")
	src, err := os.ReadFile("testdata/cli/unformatted.star")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unformatted, src, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
	}{
		{"test reports each test and a summary", []string{"test", "testdata/cli/mixed_test.star"}, exitFailed,
			[]string{"--- PASS: testdata/cli/mixed_test.star: test_passes", "--- FAIL: testdata/cli/mixed_test.star: test_fails",
				"testdata/cli/mixed_test.star:5:14: guests: 4 != 0", "1 passed, 1 failed"}},
		{"test filters by name", []string{"test", "--run", "passes", "testdata/cli/mixed_test.star"}, exitOK, []string{"1 passed, 0 failed"}},
		{"check the shipped playbooks", []string{"--playbooks", "../../playbooks", "check"}, exitOK, []string{"6 playbook file(s) OK"}},
		{"check broken playbooks", []string{"check", "../../testdata/check/syntax_error.star"}, exitFailed, []string{"syntax_error.star:"}},
		{"fmt lists an unformatted file", []string{"fmt", unformatted}, exitOK, []string{unformatted}},
		{"fmt -w rewrites it", []string{"fmt", "-w", unformatted}, exitOK, nil},
		{"fmt then lists nothing", []string{"fmt", unformatted}, exitOK, nil},
		{"doc renders every module", []string{"doc"}, exitOK, []string{"proxmox.vzdump(", "task.wait(", "host.mount_usb(", "monitor.all(", "param.enum("}},
		{"unknown command", []string{"frobnicate"}, exitUsage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("run(%q) = %d; want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, stdout.String(), stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
			if len(tt.stdout) == 0 && tt.code == exitOK && strings.Contains(tt.name, "nothing") && stdout.Len() > 0 {
				t.Errorf("stdout = %q; want nothing", stdout.String())
			}
		})
	}
}
