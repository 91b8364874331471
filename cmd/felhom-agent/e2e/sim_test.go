package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// simProc is a `felhom-agent sim` process and what its info line says.
type simProc struct {
	*proc
	Endpoint    string `json:"endpoint"`
	Node        string `json:"node"`
	Token       string `json:"token"`
	Fingerprint string `json:"fingerprint"`
	hc          *http.Client
	// runtime is the simulated host's runtime directory: the console
	// runs against it look for an agent's socket and take their guest
	// locks there, as on a real host in /run/felhom-agent.
	runtime string
}

// startSim starts a simulator on a free loopback port (unless args give
// --listen) and waits for its info line, which it prints once listening.
func startSim(t testing.TB, args ...string) *simProc {
	t.Helper()
	listen := "127.0.0.1:0"
	for _, a := range args {
		if a == "--listen" || strings.HasPrefix(a, "--listen=") {
			listen = ""
		}
	}
	full := []string{"sim"}
	if listen != "" {
		full = append(full, "--listen", listen)
	}
	p := startProc(t, "sim", nil, append(full, args...)...)
	line, err := p.stdout.waitFor(p.done, 30*time.Second, firstLine)
	if err != nil {
		t.Fatalf("sim info line: %v\nstderr: %s", err, tail(p.stderr.String(), 2000))
	}
	// The info line prints the token on purpose; the scan skips exactly it.
	p.outCap.allowLine(line)
	rt, err := os.MkdirTemp("", "fas") // short: a socket path is at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rt) })
	s := &simProc{proc: p, runtime: rt}
	if err := json.Unmarshal([]byte(line), s); err != nil || s.Endpoint == "" || s.Token == "" || s.Fingerprint == "" {
		t.Fatalf("sim info line %q: %v", line, err)
	}
	registerTokenSecret(s.Token)
	s.hc = pinnedClient(s.Fingerprint)
	return s
}

// env is the agent's configuration for this sim, pinned to its
// certificate's fingerprint, as FELHOM_AGENT_* variables.
func (s *simProc) env() []string {
	return []string{
		"FELHOM_AGENT_PROXMOX_ENDPOINT=" + s.Endpoint,
		"FELHOM_AGENT_PROXMOX_NODE=" + s.Node,
		"FELHOM_AGENT_PROXMOX_TOKEN=" + s.Token,
		"FELHOM_AGENT_PROXMOX_TLS_FINGERPRINT=" + s.Fingerprint,
		"FELHOM_AGENT_SOCKET=" + filepath.Join(s.runtime, "agent.sock"),
		scratchEnv,
	}
}

// scratchEnv declares the simulated world's test guests scratch for the
// safety gate: the suite's self-tests snapshot, roll back and delete
// snapshots on guest 101 and 9999, which is destructive on a customer's
// guest (docs/safety.md). The gate's own tests (safety_test.go) use other
// guests.
const scratchEnv = "FELHOM_AGENT_SAFETY_SCRATCH_VMIDS=101,9999"

// pinnedClient trusts exactly the certificate with fingerprint (the
// suite's own client: it does not use the agent's TLS code).
func pinnedClient(fingerprint string) *http.Client {
	want := strings.ReplaceAll(strings.ToUpper(fingerprint), ":", "")
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // replaced by the pin below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("no certificate")
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if got := fmt.Sprintf("%X", sum[:]); got != want {
					return fmt.Errorf("certificate fingerprint %s, want %s", got, want)
				}
				return nil
			},
		}},
	}
}

// api calls the simulated PVE API (path below /api2/json) with the token
// and returns the status and the "data" member of the answer.
func (s *simProc) api(t testing.TB, method, path string, form url.Values) (int, json.RawMessage) {
	t.Helper()
	var body io.Reader
	u := s.Endpoint + "/api2/json" + path
	if method == http.MethodGet && form != nil {
		u += "?" + form.Encode()
	} else if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+s.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(b, &env)
	return resp.StatusCode, env.Data
}

// pveTask is one entry of GET /nodes/{node}/tasks.
type pveTask struct {
	UPID   string `json:"upid"`
	Type   string `json:"type"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

// tasks lists every task of type typ ("" for all) of guest vmid (0 for all),
// running or finished: the count of mutations the simulator carried out.
func (s *simProc) tasks(t testing.TB, typ string, vmid int) []pveTask {
	t.Helper()
	q := url.Values{"source": {"all"}, "limit": {"10000"}}
	if typ != "" {
		q.Set("typefilter", typ)
	}
	if vmid != 0 {
		q.Set("vmid", fmt.Sprint(vmid))
	}
	code, data := s.api(t, http.MethodGet, "/nodes/"+s.Node+"/tasks", q)
	if code != http.StatusOK {
		t.Fatalf("list tasks: HTTP %d", code)
	}
	var out []pveTask
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("list tasks: %v", err)
	}
	return out
}

// activeTasks lists the tasks still running.
func (s *simProc) activeTasks(t testing.TB) []pveTask {
	t.Helper()
	code, data := s.api(t, http.MethodGet, "/nodes/"+s.Node+"/tasks", url.Values{"source": {"active"}})
	if code != http.StatusOK {
		t.Fatalf("list active tasks: HTTP %d", code)
	}
	var out []pveTask
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("list active tasks: %v", err)
	}
	return out
}

// pveVolume is one entry of a storage's content.
type pveVolume struct {
	VolID string `json:"volid"`
	VMID  int    `json:"vmid"`
}

// backups lists the backup archives on storage.
func (s *simProc) backups(t testing.TB, storage string) []pveVolume {
	t.Helper()
	code, data := s.api(t, http.MethodGet, "/nodes/"+s.Node+"/storage/"+storage+"/content", url.Values{"content": {"backup"}})
	if code != http.StatusOK {
		t.Fatalf("list %s content: HTTP %d", storage, code)
	}
	var out []pveVolume
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("list %s content: %v", storage, err)
	}
	return out
}

// snapshots lists the snapshot names of guest vmid (without "current").
func (s *simProc) snapshots(t testing.TB, vmid int) []string {
	t.Helper()
	code, data := s.api(t, http.MethodGet, fmt.Sprintf("/nodes/%s/lxc/%d/snapshot", s.Node, vmid), nil)
	if code != http.StatusOK {
		t.Fatalf("list snapshots of %d: HTTP %d", vmid, code)
	}
	var out []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("list snapshots: %v", err)
	}
	var names []string
	for _, s := range out {
		if s.Name != "current" {
			names = append(names, s.Name)
		}
	}
	return names
}

// waitTasksDone waits until the simulator runs no task (they stop by their
// duration).
func (s *simProc) waitTasksDone(t testing.TB, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the simulator's tasks to stop", func() (bool, string) {
		a := s.activeTasks(t)
		return len(a) == 0, fmt.Sprintf("%d active", len(a))
	})
}

// eventually polls cond (every 25 ms, the polling interval of a waiting
// client, not a synchronisation by sleep) until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", timeout, what, state)
		}
		<-tick.C
	}
}

// simGuest is what a finished run leaves a guest as: its power state, its
// snapshots and its configuration.
type simGuest struct {
	Exists    bool
	Status    string
	Snapshots []string
	Config    map[string]any
}

// guest reads guest vmid (a container, or a VM when no container has the
// id) through the API, as a client would.
func (s *simProc) guest(t testing.TB, vmid int) simGuest {
	t.Helper()
	for _, kind := range []string{"lxc", "qemu"} {
		base := fmt.Sprintf("/nodes/%s/%s/%d", s.Node, kind, vmid)
		code, data := s.api(t, http.MethodGet, base+"/status/current", nil)
		if code != http.StatusOK {
			continue
		}
		g := simGuest{Exists: true}
		var st struct{ Status string }
		_ = json.Unmarshal(data, &st)
		g.Status = st.Status
		_, data = s.api(t, http.MethodGet, base+"/snapshot", nil)
		var snaps []struct{ Name string }
		_ = json.Unmarshal(data, &snaps)
		for _, sn := range snaps {
			if sn.Name != "current" {
				g.Snapshots = append(g.Snapshots, sn.Name)
			}
		}
		_, data = s.api(t, http.MethodGet, base+"/config", nil)
		_ = json.Unmarshal(data, &g.Config)
		return g
	}
	return simGuest{}
}
