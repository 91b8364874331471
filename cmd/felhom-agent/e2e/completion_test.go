package e2e

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestShellCompletion: each shell CI installs (bash, zsh, fish; a missing
// one skips) loads `felhom-agent completion SHELL` and completes with it.
// fish completes for real (complete -C); bash and zsh register the binary
// as a `complete -C` command, which each then calls with COMP_LINE and
// COMP_POINT set — as here — so the answers are checked the same way,
// including playbook names and run ids from a serving agent.
func TestShellCompletion(t *testing.T) {
	a := startAgent(t, agentOpts{args: []string{"--sim"}})
	run := a.startRun(t, "selftest", nil)
	a.waitRun(t, run.ID, 60*time.Second, "to finish", finished)

	script := func(shell string) string {
		r := runCmd(t, 30*time.Second, nil, "completion", shell)
		if r.Code != 0 {
			t.Fatalf("completion %s: exit %d: %s", shell, r.Code, r.Stderr)
		}
		return r.Stdout
	}
	// The binary as bash and zsh call it: COMP_LINE is the line so far.
	asShellCalls := func(line string) string {
		cmd := exec.Command(agentBin)
		cmd.Env = cleanEnv("COMP_LINE="+line, "COMP_POINT="+strconv.Itoa(len(line)))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("completing %q: %v", line, err)
		}
		return string(out)
	}
	want := map[string][]string{
		"felhom-agent ru": {"run", "runs"},
		"felhom-agent runs show --socket=" + a.socket + " ":      {run.ID},
		"felhom-agent trigger --socket=" + a.socket + " sel":     {"selftest"},
		"felhom-agent playbooks show --socket " + a.socket + " ": {"selftest", "hold"},
	}
	lines := slices.Sorted(maps.Keys(want))
	check := func(shell, line, got string) {
		for _, w := range want[line] {
			if !strings.Contains("\n"+got+"\n", "\n"+w+"\n") {
				t.Errorf("%s completes %q to %q; want %q among them", shell, line, got, w)
			}
		}
	}

	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			path, err := exec.LookPath(shell)
			if err != nil {
				skip(t, "%s is not installed (CI installs it: .ci/run)", shell)
			}
			dir := t.TempDir()
			file := filepath.Join(dir, "completion."+shell)
			if err := os.WriteFile(file, []byte(script(shell)), 0o644); err != nil {
				t.Fatal(err)
			}
			var probe string
			switch shell {
			case "bash":
				probe = `source ` + file + ` && complete -p felhom-agent`
			case "zsh":
				probe = `autoload -U compinit && compinit -u -d ` + filepath.Join(dir, "zcompdump") +
					` && source ` + file + ` && print -r -- ${_comps[felhom-agent]}`
			case "fish":
				var b strings.Builder
				b.WriteString("source " + file)
				for _, line := range lines {
					b.WriteString("; echo '@@'; complete -C '" + line + "'")
				}
				probe = b.String()
			}
			cmd := exec.Command(path, "-c", probe)
			cmd.Env = cleanEnv("HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", shell, err, out)
			}
			if shell == "fish" {
				parts := strings.Split(string(out), "@@\n")[1:]
				for i, line := range lines { // the probe's order
					got := ""
					if i < len(parts) {
						got = strings.TrimSpace(parts[i])
					}
					// fish prints "candidate\tdescription"
					var names []string
					for _, l := range strings.Split(got, "\n") {
						n, _, _ := strings.Cut(l, "\t")
						names = append(names, n)
					}
					check(shell, line, strings.Join(names, "\n"))
				}
				return
			}
			if !strings.Contains(string(out), "-C "+agentBin) && !strings.Contains(string(out), "-C '"+agentBin+"'") {
				t.Fatalf("%s did not register the binary as the completer:\n%s", shell, out)
			}
			for line := range want {
				check(shell, line, strings.TrimSpace(asShellCalls(line)))
			}
		})
	}
}
