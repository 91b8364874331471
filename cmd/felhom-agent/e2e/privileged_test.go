package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Privileged arguments crafted to inject options or paths are refused by
// the fence before any process runs. testdata/privileged/fenced.star hands
// its parameters straight to one fenced operation.

// craftedArgs are the attacks, each with the argument the refusal must name.
var craftedArgs = []struct {
	name   string
	params []string
	field  string
	// execSafe: the operation's program is absent here (pct, smartctl), so
	// the case may also run through the real exec runner. mount is never
	// offered to the real runner: it exists on most machines and runs as
	// root.
	execSafe bool
}{
	{"option as hostname", []string{"op=golden", "hostname=--rootfs=/"}, "hostname", true},
	{"shell metacharacters in hostname", []string{"op=golden", "hostname=a;reboot"}, "hostname", true},
	{"newline smuggling an option", []string{"op=golden", "hostname=ok\n--features=mount=nfs"}, "hostname", true},
	{"template escaping its storage", []string{"op=golden", "template=local:vztmpl/../../../etc/shadow.tar.zst"}, "template", true},
	{"option as template", []string{"op=golden", "template=--rootfs=/"}, "template", true},
	{"absolute path as template", []string{"op=golden", "template=/etc/shadow"}, "template", true},
	{"options in storage", []string{"op=golden", "storage=local-lvm --unprivileged 0"}, "storage", true},
	{"negative disk size", []string{"op=golden", "rootfs_gb=-1"}, "rootfs_gb", true},
	{"vmid out of range", []string{"op=golden", "vmid=1"}, "vmid", true},
	{"mount target escaping the prefix", []string{"op=mount", "target=/mnt/felhom/../../etc"}, "target", false},
	{"mount target the root", []string{"op=mount", "target=/"}, "target", false},
	{"option as uuid", []string{"op=mount", "uuid=--bind"}, "uuid", false},
	{"uuid smuggling a second source", []string{"op=mount", "uuid=0f3e2d1c-0000-4000-8000-00000000e2e0 /dev/sda1"}, "uuid", false},
	{"device with a shell command", []string{"op=smart", "device=/dev/sda; reboot"}, "device", true},
	{"option as device", []string{"op=smart", "device=--scan"}, "device", true},
	{"partition as device", []string{"op=smart", "device=/dev/sda1"}, "device", true},
}

func TestPrivilegedInjectionRefused(t *testing.T) {
	t.Parallel()
	root := filepath.Join("testdata", "privileged")
	refused := newTally(t, "crafted arguments refused before any exec", "through the simulated runner", "through the exec runner")
	t.Logf("%d crafted argument sets, %d of them also offered to the exec runner", len(craftedArgs), countExecSafe())

	// With --sim the fenced operations run through the simulator's root
	// runner; a good argument set reaches it (the control).
	t.Run("sim/control", func(t *testing.T) {
		t.Parallel()
		out := runPlaybook(t, nil, root, "fenced.star", append([]string{"--sim"}, params("op=golden")...)...)
		if s := out.mustSummary(t); s.Status != "succeeded" {
			t.Fatalf("good arguments: status %s (%s); want succeeded", s.Status, s.Error)
		}
	})
	for _, c := range craftedArgs {
		t.Run("sim/"+c.name, func(t *testing.T) {
			t.Parallel()
			out := runPlaybook(t, nil, root, "fenced.star", append([]string{"--sim"}, params(c.params...)...)...)
			if checkRefusal(t, out, c.field) {
				refused.add("through the simulated runner")
			}
		})
	}

	// Through the production exec runner (privileged enabled, no sudo)
	// against a sim process: the control's error shows exec was attempted
	// (the program is absent here); a crafted argument's error comes from
	// the fence, without exec.
	t.Run("exec", func(t *testing.T) {
		t.Parallel()
		for _, prog := range []string{"/usr/sbin/pct", "/usr/sbin/smartctl"} {
			if _, err := os.Stat(prog); err == nil {
				skip(t, "%s exists on this machine: the suite never runs real root tools", prog)
			}
		}
		sim := startSim(t)
		env := append(sim.env(), "FELHOM_AGENT_PRIVILEGED_ENABLED=true", "FELHOM_AGENT_PRIVILEGED_SUDO=false")
		t.Run("control", func(t *testing.T) {
			t.Parallel()
			out := runPlaybook(t, env, root, "fenced.star", params("op=golden")...)
			s := out.mustSummary(t)
			if s.Status != "failed" || !strings.Contains(s.Error, "/usr/sbin/pct") {
				t.Fatalf("good arguments: status %s, error %q; want the exec of /usr/sbin/pct to be attempted", s.Status, s.Error)
			}
		})
		for _, c := range craftedArgs {
			if !c.execSafe {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				out := runPlaybook(t, env, root, "fenced.star", params(c.params...)...)
				if !checkRefusal(t, out, c.field) {
					return
				}
				if strings.Contains(out.Summary.Error, "exec") || strings.Contains(out.Summary.Error, "/usr/sbin/") {
					t.Errorf("refusal %q mentions exec: the process was attempted", out.Summary.Error)
					return
				}
				refused.add("through the exec runner")
			})
		}
	})
}

// checkRefusal asserts the run failed on the fence naming field, and
// reports whether it did.
func checkRefusal(t testing.TB, out runOut, field string) bool {
	t.Helper()
	s := out.mustSummary(t)
	if s.Status != "failed" || out.Code != 1 {
		t.Errorf("status %s, exit %d; want failed, 1 (result %s)", s.Status, out.Code, s.Result)
		return false
	}
	if !strings.Contains(s.Error, "host.") || !strings.Contains(s.Error, field) {
		t.Errorf("error %q does not name host.* and the argument %q", s.Error, field)
		return false
	}
	if !positionRe.MatchString(s.Error) {
		t.Errorf("error %q has no position", s.Error)
	}
	return true
}

func countExecSafe() int {
	n := 0
	for _, c := range craftedArgs {
		if c.execSafe {
			n++
		}
	}
	return n
}
