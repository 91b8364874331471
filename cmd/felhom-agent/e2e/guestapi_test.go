package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The guest API at process level: `felhom-agent sim`, `felhom-agent serve
// --guest-api-listen`, and two simulated in-guest controllers (guests 101
// and 102), each reading only its bootstrap file and talking HTTPS with
// the pinned certificate and its own token, as the Felhom controller's
// agentapi client does.

// controller is one simulated in-guest controller.
type controller struct {
	t        testing.TB
	vmid     int
	endpoint string
	token    string
	hc       *http.Client
}

type guestBootstrap struct {
	Schema   string `json:"schema"`
	VMID     int    `json:"vmid"`
	LocalAPI struct {
		Endpoint    string `json:"endpoint"`
		Fingerprint string `json:"fingerprint"`
		Token       string `json:"token"`
	} `json:"local_api"`
}

// newController starts a controller from guest vmid's bootstrap file, as
// a freshly (re)started controller does.
func newController(t testing.TB, a *agent, vmid int) *controller {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(a.stateDir, "guests", fmt.Sprint(vmid), "bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var boot guestBootstrap
	if err := json.Unmarshal(b, &boot); err != nil || boot.Schema != "felhom.bootstrap/v2" || boot.VMID != vmid {
		t.Fatalf("bootstrap of %d: %s (%v)", vmid, b, err)
	}
	return &controller{t: t, vmid: vmid, endpoint: boot.LocalAPI.Endpoint, token: boot.LocalAPI.Token, hc: pinnedClient(boot.LocalAPI.Fingerprint)}
}

type guestAnswer struct {
	status int
	OK     bool            `json:"ok"`
	Data   json.RawMessage `json:"data"`
	Error  string          `json:"error"`
	took   time.Duration
	raw    []byte
	// retryAfter is a 429's Retry-After, in seconds.
	retryAfter int
}

func (c *controller) call(method, path, body string) guestAnswer {
	c.t.Helper()
	req, err := http.NewRequest(method, "https://"+c.endpoint+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("guest %d: %s %s: %v", c.vmid, method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := guestAnswer{status: resp.StatusCode, took: time.Since(start), raw: raw}
	a.retryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	captureBytes(c.t, fmt.Sprintf("guest %d %s %s", c.vmid, method, path), raw)
	if err := json.Unmarshal(raw, &a); err != nil {
		c.t.Fatalf("guest %d: %s %s: %d %q is not the envelope", c.vmid, method, path, resp.StatusCode, raw)
	}
	return a
}

// data makes a call that must succeed and decodes its data into out. Like
// a well-behaved controller it waits out a 429 as its Retry-After says
// (a test polling fast on a loaded machine can meet the guest's limit),
// five times at most; call shows the limit itself.
func (c *controller) data(method, path, body string, out any) {
	c.t.Helper()
	a := c.call(method, path, body)
	for retries := 0; a.status == http.StatusTooManyRequests && retries < 5; retries++ {
		time.Sleep(time.Duration(max(a.retryAfter, 1)) * time.Second)
		a = c.call(method, path, body)
	}
	if a.status != 200 || !a.OK {
		c.t.Fatalf("guest %d: %s %s = %d %s", c.vmid, method, path, a.status, a.Error)
	}
	if err := json.Unmarshal(a.Data, out); err != nil {
		c.t.Fatal(err)
	}
}

type backupStatus struct {
	VMID    int    `json:"vmid"`
	JobID   string `json:"job_id"`
	Phase   string `json:"phase"`
	Error   string `json:"error"`
	Archive string `json:"archive"`
}

// rotate runs `felhom-agent guest-token rotate VMID --json`.
func rotate(t testing.TB, a *agent, vmid int) (string, result) {
	t.Helper()
	p := startProc(t, fmt.Sprintf("guest-token rotate %d", vmid), nil, "guest-token", "rotate", fmt.Sprint(vmid), "--socket", a.socket, "--json")
	code := p.wait(t, 60*time.Second)
	r := result{Stdout: p.stdout.String(), Stderr: p.stderr.String(), Code: code}
	var out struct {
		Token     string `json:"token"`
		Bootstrap string `json:"bootstrap"`
	}
	if code == 0 {
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || !strings.HasPrefix(out.Token, "fgt_") {
			t.Fatalf("rotate %d: %q (%v)", vmid, r.Stdout, err)
		}
	}
	return out.Token, r
}

func guestPlaybooks(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "lib"), os.DirFS(filepath.Join(playbooksDir, "lib"))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"backup.star", "guest_reboot.star"} {
		b, err := os.ReadFile(filepath.Join(playbooksDir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestGuestAPI(t *testing.T) {
	requireServe(t)
	sim := startSim(t, "--task-duration", "2s")
	guestAddr := freeAddr(t)
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: guestPlaybooks(t), args: []string{"--guest-api-listen", guestAddr}})

	// The certificate's fingerprint is shown at start.
	fpLine := regexp.MustCompile(`guest API on \[[^\]]*\], certificate SHA-256 fingerprint ([0-9A-F:]{95})`).FindStringSubmatch(a.proc.stderr.String())
	if fpLine == nil {
		t.Fatalf("serve did not show the guest API's fingerprint:\n%s", tail(a.proc.stderr.String(), 2000))
	}

	// Tokens: minted by rotate for two containers; a VM is refused.
	tok101, _ := rotate(t, a, 101)
	tok102, _ := rotate(t, a, 102)
	if _, r := rotate(t, a, 200); r.Code == 0 || !strings.Contains(r.Stderr, "QEMU VM") {
		t.Errorf("rotate of VM 200: exit %d %q; want refused, naming the VM", r.Code, r.Stderr)
	}
	c101, c102 := newController(t, a, 101), newController(t, a, 102)
	if c101.token != tok101 || c102.token != tok102 || c101.endpoint != guestAddr {
		t.Fatalf("bootstrap files do not carry the printed tokens and the endpoint %s", guestAddr)
	}
	fp, _ := os.ReadFile(filepath.Join(a.stateDir, "guests", "101", "bootstrap.json"))
	if !bytes.Contains(fp, []byte(fpLine[1])) {
		t.Errorf("the bootstrap file's pin is not the fingerprint serve showed (%s)", fpLine[1])
	}

	// Each reads only its own data.
	for _, c := range []*controller{c101, c102} {
		var st struct {
			VMID   int `json:"vmid"`
			Mounts []struct {
				Key string `json:"key"`
			} `json:"mounts"`
		}
		c.data("GET", "/storage", "", &st)
		if st.VMID != c.vmid || len(st.Mounts) == 0 || st.Mounts[0].Key != "rootfs" {
			t.Errorf("guest %d /storage = %+v", c.vmid, st)
		}
		var s struct {
			VMID int `json:"vmid"`
		}
		c.data("GET", "/status", "", &s)
		if s.VMID != c.vmid {
			t.Errorf("guest %d /status says vmid %d", c.vmid, s.VMID)
		}
	}
	anon := &controller{t: t, vmid: 0, endpoint: guestAddr, hc: c101.hc}
	if a := anon.call("GET", "/storage", ""); a.status != 401 {
		t.Errorf("no token: %d; want 401", a.status)
	}
	if a := c101.call("GET", "/v1/runs", ""); a.status != 404 {
		t.Errorf("run control on the guest API: %d; want 404", a.status)
	}
	if a := c101.call("GET", "/disks", ""); a.status != 501 {
		t.Errorf("/disks: %d; want 501", a.status)
	}

	// The quiesce handshake: due → backup → snapshotted → done, with the
	// controller restarting mid-way.
	var due struct {
		Due bool `json:"due"`
	}
	c101.data("GET", "/backup/due", "", &due)
	if !due.Due {
		t.Fatal("a guest never backed up is not due")
	}
	var job backupStatus
	c101.data("POST", "/backup", `{"request_id":"quiesce-e2e-1"}`, &job)
	if job.JobID == "" || job.VMID != 101 {
		t.Fatalf("POST /backup = %+v", job)
	}
	// Another guest can neither follow nor claim it.
	if a := c102.call("GET", "/backup/status?job_id="+job.JobID, ""); a.status != 403 {
		t.Errorf("guest 102 following 101's job: %d; want 403", a.status)
	}
	if a := c102.call("POST", "/backup", `{"request_id":"quiesce-e2e-1"}`); a.status != 403 {
		t.Errorf("guest 102 reusing 101's request id: %d; want 403", a.status)
	}
	var phases []string
	poll := func(c *controller, until string) backupStatus {
		var st backupStatus
		eventually(t, 90*time.Second, "backup phase "+until, func() (bool, string) {
			time.Sleep(250 * time.Millisecond) // a controller's poll, under the 5/s rate limit
			c.data("GET", "/backup/status?job_id="+job.JobID, "", &st)
			if len(phases) == 0 || phases[len(phases)-1] != st.Phase {
				phases = append(phases, st.Phase)
			}
			return st.Phase == until || st.Phase == "done" || st.Phase == "failed", st.Phase
		})
		return st
	}
	if st := poll(c101, "snapshotted"); st.Phase != "snapshotted" {
		t.Fatalf("the job went %v without snapshotted (%+v)", phases, st)
	}
	// The controller crashes and restarts: it reads its bootstrap file
	// again and repeats its request; the agent answers the same job.
	c101 = newController(t, a, 101)
	var again backupStatus
	c101.data("POST", "/backup", `{"request_id":"quiesce-e2e-1"}`, &again)
	if again.JobID != job.JobID {
		t.Errorf("the repeated request started %s; want %s", again.JobID, job.JobID)
	}
	var latest backupStatus
	c101.data("GET", "/backup/status", "", &latest)
	if latest.JobID != job.JobID {
		t.Errorf("the latest job = %s; want %s", latest.JobID, job.JobID)
	}
	if st := poll(c101, "done"); st.Phase != "done" || !strings.Contains(st.Archive, "vzdump-lxc-101-") {
		t.Fatalf("the job ended %+v (phases %v)", st, phases)
	}
	c101.data("GET", "/backup/due", "", &due)
	if due.Due {
		t.Error("due right after a successful backup")
	}
	if n := len(sim.tasks(t, "vzdump", 101)); n != 1 {
		t.Errorf("%d vzdump tasks of 101; want 1 (the restart repeated nothing)", n)
	}
	if !strings.Contains(a.proc.stderr.String(), "another guest's things") {
		t.Error("the cross-guest 403s were not logged")
	}

	// A burst from guest 102 while guest 101 is served promptly.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 8 {
		wg.Go(func() {
			for range 40 {
				a := c102.call("GET", "/backup/due", "")
				mu.Lock()
				codes[a.status]++
				mu.Unlock()
			}
		})
	}
	var lat []time.Duration
	for range 20 {
		a := c101.call("GET", "/backup/due", "")
		if a.status != 200 {
			t.Errorf("guest 101 during 102's burst: %d %s", a.status, a.Error)
		}
		lat = append(lat, a.took)
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	record(t, "guest burst: 102's 320 requests (200/429); 101's 20 meanwhile p50/max", "%d/%d; %v/%v",
		codes[200], codes[429], lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if codes[429] == 0 {
		t.Errorf("guest 102's burst was never limited: %v", codes)
	}
	if lat[len(lat)-1] > 5*time.Second {
		t.Errorf("guest 101 waited %v during 102's burst", lat[len(lat)-1])
	}

	// Rotation: the old token stops answering, the new one (in the
	// rewritten bootstrap file) works.
	old := c102
	tokNew, _ := rotate(t, a, 102)
	if a := old.call("GET", "/status", ""); a.status != 401 {
		t.Errorf("the rotated-out token: %d; want 401", a.status)
	}
	c102 = newController(t, a, 102)
	if c102.token != tokNew {
		t.Error("the bootstrap file does not hold the rotated token")
	}
	var s struct {
		VMID int `json:"vmid"`
	}
	c102.data("GET", "/status", "", &s)

	// No token in any log, run record or answer.
	a.stop(t)
	logs := a.proc.stdout.String() + a.proc.stderr.String()
	db, _ := os.ReadFile(filepath.Join(a.stateDir, "runs.db"))
	wal, _ := os.ReadFile(filepath.Join(a.stateDir, "runs.db-wal"))
	for _, tok := range []string{tok101, tok102, tokNew} {
		if strings.Contains(logs, tok) {
			t.Error("a guest token is in serve's log")
		}
		if bytes.Contains(db, []byte(tok)) || bytes.Contains(wal, []byte(tok)) {
			t.Error("a guest token is in the run store")
		}
	}
}
