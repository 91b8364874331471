package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// shippedRefusals are values the shipped playbooks' declarations refuse
// (issue 12, "Refused before anything is touched"): each once reached
// Proxmox — a guest was restored and destroyed.
var shippedRefusals = []struct {
	playbook, trigger string
	params            map[string]any
	param             string // the parameter the refusal names
}{
	{"provision.star", "provision", map[string]any{"vmid": 120, "hostname": "a;reboot"}, "hostname"},
	{"provision.star", "provision", map[string]any{"vmid": 99, "hostname": "shop"}, "vmid"},
	{"provision.star", "provision", map[string]any{"vmid": 120, "hostname": "shop\x00x"}, "hostname"},
	{"restore.star", "restore", map[string]any{"vmid": 99}, "vmid"},
	{"restore.star", "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 5}, "scratch_vmid"},
	{"backup.star", "backup", map[string]any{"keep_last": -5}, "keep_last"},
	{"backup.star", "backup", map[string]any{"vmids": []int{101, 99}}, "vmids"},
	{"golden.star", "golden", map[string]any{"hostname": "--rootfs=/"}, "hostname"},
	{"golden.star", "golden", map[string]any{"storage": "local;rm"}, "storage"},
	{"description NUL", "provision", map[string]any{"vmid": 120, "hostname": "shop", "description": "a\x00b"}, "description"},
}

// TestParamsRefusedBeforeAnything: the shipped flows refuse out-of-range
// guest ids, hostnames that are not DNS labels, negative retention counts
// and NUL bytes — from the hub (400), the local API (400) and `run` (exit
// 2) — naming the parameter, with no run recorded and no Proxmox request
// that changes anything.
func TestParamsRefusedBeforeAnything(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "50ms")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(playbooksDir)); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: dir})
	tasksBefore := len(sim.tasks(t, "", 0))
	refusals := newTally(t, "shipped-flow parameter refusals (hub 400 / local API 400 / run exit 2, nothing recorded or sent)", "cases", "hub", "local API", "run")

	for i, tt := range shippedRefusals {
		name := tt.trigger + " " + tt.param
		t.Run(name, func(t *testing.T) {
			refusals.add("cases")
			before := len(a.runs(t))
			code, body, err := a.hubDo(t, hubRequest{method: "POST", path: "/v1/triggers", body: triggerBody(t, fmt.Sprintf("refuse-%d", i), tt.trigger, tt.params)})
			switch {
			case err != nil:
				t.Fatalf("hub trigger: %v", err)
			case code != http.StatusBadRequest || !strings.Contains(string(body), `"`+tt.param+`"`) && !strings.Contains(string(body), tt.param):
				t.Errorf("hub trigger %v: HTTP %d %s; want 400 naming %s", tt.params, code, clipLine(string(body)), tt.param)
			default:
				refusals.add("hub")
			}

			raw := map[string]json.RawMessage{}
			for k, v := range tt.params {
				b, _ := json.Marshal(v)
				raw[k] = b
			}
			req, _ := json.Marshal(api.TriggerRequest{Playbook: tt.trigger, Params: raw})
			code, body = a.local(t, "POST", "/v1/runs", req)
			if code != http.StatusBadRequest || !strings.Contains(string(body), tt.param) {
				t.Errorf("local API %v: HTTP %d %s; want 400 naming %s", tt.params, code, clipLine(string(body)), tt.param)
			} else {
				refusals.add("local API")
			}
			if after := len(a.runs(t)); after != before {
				t.Errorf("%d runs before, %d after: a refused trigger was recorded", before, after)
			}

			file := tt.playbook
			if !strings.HasSuffix(file, ".star") {
				file = tt.trigger + ".star"
			}
			var args []string
			nul := false
			for k, v := range tt.params {
				s, _ := json.Marshal(v)
				if str, ok := v.(string); ok {
					s = []byte(str)
				}
				nul = nul || strings.Contains(string(s), "\x00")
				args = append(args, param(k+"="+string(s))...)
			}
			if nul {
				refusals.add("run") // argv cannot carry a NUL: the kernel refuses it
				return
			}
			out := runPlaybook(t, sim.env(), dir, file, args...)
			code, msg, started := out.refusedWith()
			if code != 2 || started || !strings.Contains(msg, `"`+tt.param+`"`) {
				t.Errorf("run %s %v: exit %d, started %v, %q; want exit 2 naming %q before any run", file, args, code, started, msg, tt.param)
			} else {
				refusals.add("run")
			}
		})
	}
	if n := len(sim.tasks(t, "", 0)); n != tasksBefore {
		t.Errorf("the simulator ran %d tasks during the refusals; want none", n-tasksBefore)
	}
	// And a good value still runs.
	r := a.startRun(t, "restore", map[string]any{"vmid": 101, "mode": "drill", "scratch_vmid": 950})
	if r = a.waitRun(t, r.ID, 2*time.Minute, "to finish", finished); r.Status != "succeeded" {
		t.Errorf("restore drill with good parameters: %s (%s)", r.Status, r.Error)
	}
}

// TestLoadErrorControlBytesEscaped: a playbook whose load error carries
// terminal escapes and newlines (in its fail() text) is reported by
// `check`, `run` and `playbooks` with those bytes escaped, on one line.
func TestLoadErrorControlBytesEscaped(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := "fail(\"\\x1b[2J\\x1b]0;owned\\x07\\nFAKE: all good\")\n"
	if err := os.WriteFile(filepath.Join(dir, "esc.star"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	const escaped = `fail: \x1b[2J\x1b]0;owned\x07\nFAKE: all good`
	check := runCmd(t, time.Minute, nil, "--playbooks", dir, "check", dir)
	run := runCmd(t, time.Minute, nil, "--playbooks", dir, "run", "--sim", filepath.Join(dir, "esc.star"))
	for name, r := range map[string]result{"check": check, "run": run} {
		all := r.Stdout + r.Stderr
		if strings.ContainsAny(all, "\x1b\x07") || strings.Contains(all, "\nFAKE") || !strings.Contains(all, escaped) {
			t.Errorf("%s printed %q; want the message escaped: %s", name, all, escaped)
		}
	}
	a := startAgent(t, agentOpts{env: startSim(t).env(), playbooks: dir})
	code, body := a.local(t, "GET", "/v1/playbooks", nil)
	if code != http.StatusOK || strings.Contains(string(body), `\u001b`) || !strings.Contains(string(body), strings.ReplaceAll(escaped, `\`, `\\`)) {
		t.Errorf("GET /v1/playbooks: HTTP %d %s; want the load error escaped", code, clipLine(string(body)))
	}
}
