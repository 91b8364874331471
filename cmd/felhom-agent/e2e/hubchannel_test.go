package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hubSimProc is a `felhom-agent hub-sim` process.
type hubSimProc struct {
	*proc
	URL         string `json:"url"`
	Fingerprint string `json:"fingerprint"`
	AdminKey    string `json:"admin_key"`
	hc          *http.Client
}

func startHubSim(t testing.TB, args ...string) *hubSimProc {
	t.Helper()
	p := startProc(t, "hub-sim", nil, append([]string{"hub-sim", "--listen", "127.0.0.1:0"}, args...)...)
	line, err := p.stdout.waitFor(p.done, 30*time.Second, firstLine)
	if err != nil {
		t.Fatalf("hub-sim did not start: %v\nstderr: %s", err, p.stderr.String())
	}
	h := &hubSimProc{proc: p}
	if err := json.Unmarshal([]byte(line), h); err != nil {
		t.Fatalf("hub-sim info line %q: %v", line, err)
	}
	// The admin key is the simulator's own and printed by design; the
	// agent's API key is the secret the scan looks for.
	h.hc = pinnedClient(h.Fingerprint)
	return h
}

// admin calls an admin or /sim route.
func (h *hubSimProc) admin(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+h.AdminKey)
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// e2eReport is what the test reads of a received host report.
type e2eReport struct {
	At   time.Time `json:"at"`
	Body struct {
		HostID       string `json:"host_id"`
		AgentVersion string `json:"agent_version"`
		Seq          int    `json:"seq"`
		Host         struct {
			Node string `json:"node"`
		} `json:"host"`
		Guests []struct {
			VMID   int    `json:"vmid"`
			Status string `json:"status"`
		} `json:"guests"`
		Runs []struct {
			ID       string `json:"id"`
			Playbook string `json:"playbook"`
			Source   string `json:"source"`
			Status   string `json:"status"`
		} `json:"runs"`
		DesiredState struct {
			Generation int64 `json:"generation"`
		} `json:"desired_state"`
	} `json:"body"`
}

func (h *hubSimProc) reports(t testing.TB, host string) []e2eReport {
	t.Helper()
	status, b := h.admin(t, "GET", "/sim/hosts/"+host+"/reports", nil)
	if status != 200 {
		t.Fatalf("reports: %d %s", status, b)
	}
	var out []e2eReport
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// reconcilePlaybooks is a playbooks directory with the shipped reconcile
// playbook (servePlaybooks brings its library).
func reconcilePlaybooks(t testing.TB) string {
	t.Helper()
	dir := servePlaybooks(t)
	src, err := os.ReadFile(filepath.Join(playbooksDir, "reconcile.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reconcile.star"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHubChannel drives serve against hub-sim and sim together: reports
// arrive at once and then on the interval the hub asks for; a new desired
// state is converged by reconcile.star; the hub down for a while and back
// loses nothing (the runs that ended meanwhile and the desired state set
// meanwhile arrive once it returns).
func TestHubChannel(t *testing.T) {
	requireServe(t)
	const host, key = "e2e-host", "e2e-hub-api-key-0123456789"
	addSecret("hub api key", key)
	hub := startHubSim(t, "--host", host+"="+key, "--poll", "2")
	sim := startSim(t, "--task-duration", "50ms")
	a := startAgent(t, agentOpts{
		env: append(sim.env(),
			"FELHOM_AGENT_HUB_URL="+hub.URL, "FELHOM_AGENT_HUB_HOST_ID="+host, "FELHOM_AGENT_HUB_API_KEY="+key,
			"FELHOM_AGENT_HUB_FINGERPRINT="+hub.Fingerprint),
		playbooks: reconcilePlaybooks(t),
		args:      []string{"--hub-poll-floor", "1s"},
	})

	// Reports at once, then every 2 s (the hub's poll_interval_seconds).
	var reps []e2eReport
	eventually(t, 30*time.Second, "three reports", func() (bool, string) {
		reps = hub.reports(t, host)
		return len(reps) >= 3, fmt.Sprintf("%d reports", len(reps))
	})
	for i := 1; i < len(reps); i++ {
		gap := reps[i].At.Sub(reps[i-1].At)
		if gap < 1500*time.Millisecond || gap > 4*time.Second {
			t.Errorf("gap between reports %d and %d = %v; want about the 2 s the hub asked for", i-1, i, gap)
		}
	}
	first := reps[0].Body
	if first.HostID != host || first.AgentVersion == "" || first.Host.Node != sim.Node || len(first.Guests) == 0 || first.Seq != 1 {
		t.Errorf("first report = %+v; want host, version, node and guests", first)
	}

	// A new desired state is converged by reconcile.star.
	doc := map[string]any{"schema": 1, "guests": []map[string]any{{"vmid": 130, "hostname": "e2e-a", "cores": 2}}}
	if status, b := hub.admin(t, "PUT", "/api/v1/admin/hosts/"+host+"/desired-state", doc); status != 200 {
		t.Fatalf("PUT desired-state: %d %s", status, b)
	}
	waitGuestRunning(t, sim, 130)
	eventually(t, 30*time.Second, "a report of generation 1 and its reconcile run", func() (bool, string) {
		reps = hub.reports(t, host)
		last := reps[len(reps)-1].Body
		return last.DesiredState.Generation == 1 && hasRun(reps, "reconcile", "desired", "succeeded"), fmt.Sprintf("generation %d", last.DesiredState.Generation)
	})

	// The hub goes down; work goes on; nothing is lost when it returns.
	if status, b := hub.admin(t, "PUT", "/sim/faults", map[string]any{"down": true}); status != 204 {
		t.Fatalf("PUT faults: %d %s", status, b)
	}
	downAt := len(hub.reports(t, host))
	status, body := a.local(t, "POST", "/v1/runs", []byte(`{"playbook": "reconcile"}`))
	if status != 202 && status != 200 {
		t.Fatalf("local reconcile run: %d %s", status, body)
	}
	doc["guests"] = append(doc["guests"].([]map[string]any), map[string]any{"vmid": 131, "hostname": "e2e-b"})
	if status, b := hub.admin(t, "PUT", "/api/v1/admin/hosts/"+host+"/desired-state", doc); status != 200 {
		t.Fatalf("PUT desired-state: %d %s", status, b)
	}
	time.Sleep(6 * time.Second)
	if n := len(hub.reports(t, host)); n != downAt {
		t.Fatalf("%d reports arrived while the hub was down", n-downAt)
	}
	if status, b := hub.admin(t, "PUT", "/sim/faults", map[string]any{}); status != 204 {
		t.Fatalf("PUT faults: %d %s", status, b)
	}
	waitGuestRunning(t, sim, 131)
	eventually(t, 60*time.Second, "the outage's run and generation 2 reported", func() (bool, string) {
		reps = hub.reports(t, host)
		last := reps[len(reps)-1].Body
		return last.DesiredState.Generation == 2 && hasRun(reps[downAt:], "reconcile", "api", "succeeded"),
			fmt.Sprintf("generation %d", last.DesiredState.Generation)
	})
	// Each run is reported exactly once.
	seen := map[string]int{}
	for _, r := range reps {
		for _, run := range r.Body.Runs {
			seen[run.ID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("run %s reported %d times; want once", id, n)
		}
	}
	t.Logf("figures: %d reports; %d runs reported once each; %d bytes in the last report",
		len(reps), len(seen), len(mustJSON(t, reps[len(reps)-1].Body)))
}

func hasRun(reps []e2eReport, playbook, source, status string) bool {
	for _, r := range reps {
		for _, run := range r.Body.Runs {
			if run.Playbook == playbook && run.Source == source && run.Status == status {
				return true
			}
		}
	}
	return false
}

func waitGuestRunning(t testing.TB, sim *simProc, vmid int) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("guest %d running", vmid), func() (bool, string) {
		status, data := sim.api(t, "GET", fmt.Sprintf("/nodes/%s/lxc/%d/status/current", sim.Node, vmid), nil)
		return status == 200 && strings.Contains(string(data), `"status":"running"`), fmt.Sprintf("%d %s", status, data)
	})
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
