package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// TestServeWithProxmoxDown: serve starts while nothing listens at the
// Proxmox endpoint. It serves (triggers are accepted and recorded), reports
// the problem on /healthz and in its log, and recovers by itself once a sim
// comes up on that address (at its next health probe).
func TestServeWithProxmoxDown(t *testing.T) {
	t.Parallel()
	requireServe(t)
	addr := freeAddr(t)
	token := pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret
	registerTokenSecret(token)
	// The sim makes its certificate when it starts, so nothing can be
	// pinned in advance: this test alone skips verification, explicitly.
	a := startAgent(t, agentOpts{env: []string{
		"FELHOM_AGENT_PROXMOX_ENDPOINT=https://" + addr,
		"FELHOM_AGENT_PROXMOX_NODE=" + pvesim.DefaultNode,
		"FELHOM_AGENT_PROXMOX_TOKEN=" + token,
		"FELHOM_AGENT_PROXMOX_INSECURE_SKIP_VERIFY=true",
		"FELHOM_AGENT_HEALTH_INTERVAL=1s",
	}})

	var h struct {
		Status  string `json:"status"`
		Proxmox struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"proxmox"`
	}
	eventually(t, time.Minute, "/healthz to report Proxmox down", func() (bool, string) {
		code, body := a.healthz(t)
		_ = json.Unmarshal([]byte(body), &h)
		return code == http.StatusServiceUnavailable && !h.Proxmox.OK && h.Proxmox.Error != "" && h.Proxmox.Error != "not checked yet", body
	})
	if !strings.Contains(h.Proxmox.Error, "connect") && !strings.Contains(h.Proxmox.Error, "refused") {
		t.Errorf("health error %q does not say the API cannot be reached", h.Proxmox.Error)
	}
	if up := metricValue(t, a.metrics(t), "felhom_proxmox_up"); up != 0 {
		t.Errorf("felhom_proxmox_up = %v while Proxmox is down; want 0", up)
	}
	if _, err := a.proc.stderr.waitFor(a.proc.done, time.Minute, contains("unreachable")); err != nil {
		t.Errorf("the log does not report Proxmox unreachable: %v\n%s", err, tail(a.proc.stderr.String(), 2000))
	}

	// Serving: a trigger is accepted and recorded; its run fails on its own
	// terms, naming the connection.
	code, ans := a.trigger(t, "while-down", "selftest", nil)
	if code != http.StatusAccepted {
		t.Fatalf("trigger while Proxmox is down: HTTP %d %+v", code, ans)
	}
	down := a.waitRun(t, ans.Runs[0].ID, 2*time.Minute, "to finish", finished)
	if down.Status != "failed" {
		t.Errorf("run while Proxmox is down: %s (%s); want failed", down.Status, down.Error)
	}

	up := time.Now()
	startSim(t, "--listen", addr)
	eventually(t, probeBound, "/healthz to report Proxmox back", func() (bool, string) {
		code, body := a.healthz(t)
		return code == http.StatusOK, body
	})
	recovered := time.Since(up)
	if v := metricValue(t, a.metrics(t), "felhom_proxmox_up"); v != 1 {
		t.Errorf("felhom_proxmox_up = %v after recovery; want 1", v)
	}
	code, ans = a.trigger(t, "after-up", "selftest", nil)
	if code != http.StatusAccepted {
		t.Fatalf("trigger after recovery: HTTP %d %+v", code, ans)
	}
	if r := a.waitRun(t, ans.Runs[0].ID, time.Minute, "to finish", finished); r.Status != "succeeded" {
		t.Errorf("run after recovery: %s (%s)", r.Status, r.Error)
	}
	record(t, "Proxmox down at start: serving / health / recovered after the sim came up", "yes / 503 %q / %v",
		clipLine(h.Proxmox.Error), recovered.Round(time.Second))
}

// probeBound is the longest the agent may take to notice Proxmox is
// back: the test sets its health probe to every second
// (FELHOM_AGENT_HEALTH_INTERVAL), and a probe may itself take the API
// timeout while the address refuses or hangs.
const probeBound = 30 * time.Second

// contains matches text holding s.
func contains(s string) func(string) (string, bool) {
	return func(text string) (string, bool) { return s, strings.Contains(text, s) }
}
