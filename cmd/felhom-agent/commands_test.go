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
				"testdata/cli/mixed_test.star:5:14: guests: 6 != 0", "1 passed, 1 failed"}},
		{"test: the clock, add_snapshot, add_archive, keyword did-you-means", []string{"test", "../../runtime/playtest/testdata/clock_test.star"}, exitOK,
			[]string{"--- PASS: ../../runtime/playtest/testdata/clock_test.star: test_advance_moves_the_host_and_the_playbooks_clock", "test_add_archive_is_named_and_dated_by_the_clock", "test_keywords_have_a_did_you_mean", "7 passed, 0 failed"}},
		{"test: a retention test over weeks", []string{"--playbooks", "../../playbooks", "test", "--run", "retention_over", "../../playbooks/backup_test.star"}, exitOK,
			[]string{"test_retention_over_four_weeks_of_nightly_runs", "1 passed, 0 failed"}},
		{"test filters by name", []string{"test", "--run", "passes", "testdata/cli/mixed_test.star"}, exitOK, []string{"1 passed, 0 failed"}},
		{"check the shipped playbooks", []string{"--playbooks", "../../playbooks", "check"}, exitOK, []string{"9 playbooks, 3 modules and 11 test files OK"}},
		{"check broken playbooks", []string{"check", "../../testdata/check/syntax_error.star"}, exitFailed, []string{"syntax_error.star:"}},
		{"check knows the builtins", []string{"check", "testdata/typos/typos.star"}, exitFailed, []string{
			"testdata/typos/typos.star:5:21: module proxmox has no .guets field or method (did you mean .guests?)\n",
			"testdata/typos/typos.star:7:25: proxmox.vzdump: unexpected keyword argument \"storge\" (did you mean storage?)\n",
			"testdata/typos/typos.star:9:35: a guest (from proxmox.guests()) has no field hostname; its fields are vmid, name, status,",
			"testdata/typos/typos.star:10:19: proxmox.guest: for parameter \"vmid\": got string, want int\n",
			"testdata/typos/typos.star:11:22: ctx.params has no parameter storag (did you mean .storage?): playbook \"typos\" declares storage\n",
		}},
		{"check knows the test modules", []string{"check", "testdata/typos/typos_test.star"}, exitFailed, []string{
			"testdata/typos/typos_test.star:4:8: module sim has no .add_gest field or method (did you mean .add_guest?)\n",
			"testdata/typos/typos_test.star:5:29: sim.fail_task: unexpected keyword argument \"mesage\" (did you mean message?)\n",
			"testdata/typos/typos_test.star:7:35: assert.eq: unexpected keyword argument \"mssg\" (did you mean msg?)\n",
		}},
		{"fmt lists an unformatted file", []string{"fmt", unformatted}, exitOK, []string{unformatted}},
		{"fmt -w rewrites it", []string{"fmt", "-w", unformatted}, exitOK, nil},
		{"fmt then lists nothing", []string{"fmt", unformatted}, exitOK, nil},
		{"doc renders every module", []string{"doc"}, exitOK, []string{"proxmox.vzdump(", "task.wait(", "host.mount_usb(", "monitor.all(", "param.enum(", "sim.now()", "sim.advance(duration)", "sim.add_snapshot(", "sim.add_archive("}},
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

// TestCheckCorpus is the false-positive sweep through the command: every
// shipped playbook, module and test file, and the playbooks and tests kept
// as test data that are meant to work, check clean.
func TestCheckCorpus(t *testing.T) {
	for _, args := range [][]string{
		{"--playbooks", "../../playbooks", "check"},
		{"--playbooks", "testdata/cli", "check"},
		{"--playbooks", "testdata/bench", "check"},
		{"--playbooks", "e2e/testdata/limits", "check"},
		{"--playbooks", "e2e/testdata/privileged", "check"},
		{"--playbooks", "e2e/testdata/serve", "check"},
		{"check", "../../runtime/playtest/testdata/hello.star", "../../runtime/playtest/testdata/sample_test.star",
			"../../runtime/playtest/testdata/clock.star", "../../runtime/playtest/testdata/clock_test.star"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitOK {
			t.Errorf("%q = %d:\n%s%s", args, code, stdout.String(), stderr.String())
		}
	}
}

// TestCheckDirectory: `check DIR`, `test DIR` and `fmt DIR` see the files
// the registry serves — editors' lock and swap files skipped, modules in
// subdirectories checked — so a broken lib/ file is reported and an
// editor's .#ok.star is not.
func TestCheckDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"ok.star":         "def run(ctx):\n    return 1\n\nplaybook(name = \"ok\", run = run)\n",
		".#ok.star":       "an editor's lock file, not Starlark (\n",
		".ok.star.swp":    "swap (\n",
		"lib/broken.star": "def f(:\n",
		"lib/.#x.star":    "lock (\n",
		"ok_test.star":    "def test_ok():\n    assert.eq(run_playbook(\"ok.star\").status, \"succeeded\")\n",
		".#ok_test.star":  "lock (\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", dir}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("check DIR = %d; want %d (lib/broken.star)\n%s%s", code, exitFailed, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, filepath.Join(dir, "lib", "broken.star")+":1:") || strings.Contains(out, ".#") || strings.Contains(out, ".swp") {
		t.Errorf("check DIR printed:\n%s\nwant lib/broken.star reported and no editor file", out)
	}

	stdout.Reset()
	if code := run([]string{"check", filepath.Join(dir, "ok.star")}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "1 playbook, 0 modules and 0 test files OK") {
		t.Errorf("check ok.star = %d:\n%s", code, stdout.String())
	}

	stdout.Reset()
	if code := run([]string{"test", dir}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "1 passed, 0 failed") {
		t.Errorf("test DIR = %d:\n%s%s", code, stdout.String(), stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	run([]string{"fmt", dir}, &stdout, &stderr)
	if strings.Contains(stdout.String()+stderr.String(), ".#") {
		t.Errorf("fmt DIR looked at an editor's file:\n%s%s", stdout.String(), stderr.String())
	}
}
