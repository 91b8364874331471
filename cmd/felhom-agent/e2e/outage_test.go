package e2e

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestReadsRideOutOutage (issue 12, "Reads ride out an outage"): four 503s
// on the guest list — and four on the start-up check — no longer fail a
// backup; reads retry within proxmox.read_retry_budget (30 s by default).
func TestReadsRideOutOutage(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "100ms",
		"--fault", "503:GET:/nodes/*/version:count=4",
		"--fault", "503:GET:/nodes/*/lxc:count=4")
	start := time.Now()
	out := shipped(t, sim, "backup.star", params("vmids=101")...)
	s := out.mustSummary(t)
	if s.Status != "succeeded" || out.Code != 0 {
		t.Fatalf("backup through four 503s: %s (%s), exit %d; want succeeded, 0\nstderr: %s", s.Status, s.Error, out.Code, tail(out.Stderr, 1500))
	}
	if s.Retries < 4 {
		t.Errorf("api_retries = %d; want at least the 4 on the guest list", s.Retries)
	}
	if n := len(sim.tasks(t, "vzdump", 101)); n != 1 {
		t.Errorf("the sim ran %d vzdump tasks of 101; want 1", n)
	}
	record(t, "backup through 4×503 on the start-up check and 4×503 on the guest list: retries / took", "%d / %s", s.Retries, time.Since(start).Round(100*time.Millisecond))
}

// TestUnreachableAtStart: an API that does not answer the start-up check
// within the retry budget exits 3 with its own message — not 2, which says
// the configuration is wrong — and nothing runs.
func TestUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	down := startSim(t, "--fault", "503:GET:/nodes/*/version:count=100000")
	const budget = "3s"
	tests := []struct {
		name string
		env  []string
	}{
		{"connection refused", append(down.env(), "FELHOM_AGENT_PROXMOX_ENDPOINT=https://"+closed)},
		{"503 until the budget is spent", down.env()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out := runPlaybook(t, append(tt.env, "FELHOM_AGENT_PROXMOX_READ_RETRY_BUDGET="+budget), playbooksDir, "selftest.star")
			took := time.Since(start)
			code, msg, started := out.refusedWith()
			if code != 3 || started || !strings.Contains(msg, "is unreachable") {
				t.Errorf("exit %d, started %v, %q; want exit 3 saying the API is unreachable, before any run", code, started, msg)
			}
			if took > 20*time.Second {
				t.Errorf("took %v with a %s budget", took, budget)
			}
			record(t, "unreachable at start ("+tt.name+", budget "+budget+"): exit / took", "%d / %s", code, took.Round(100*time.Millisecond))
		})
	}
}
