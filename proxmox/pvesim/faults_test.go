package pvesim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type faultCase struct {
	Spec string `json:"spec"`
	Want string `json:"want"` // the canonical form, for valid specs
	Err  string `json:"err"`  // a part of the error, for invalid ones
}

func loadFaultCases(t testing.TB) []faultCase {
	raw, err := os.ReadFile("testdata/faults.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []faultCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestParseFault(t *testing.T) {
	for _, tc := range loadFaultCases(t) {
		f, err := ParseFault(tc.Spec)
		switch {
		case tc.Err != "":
			if err == nil || !strings.Contains(err.Error(), tc.Err) {
				t.Errorf("ParseFault(%q) = %v, %v; want an error naming %q", tc.Spec, f, err, tc.Err)
			}
		case err != nil:
			t.Errorf("ParseFault(%q): %v", tc.Spec, err)
		case f.String() != tc.Want:
			t.Errorf("ParseFault(%q).String() = %q; want %q", tc.Spec, f.String(), tc.Want)
		case f.validate() != nil:
			t.Errorf("ParseFault(%q) does not validate: %v", tc.Spec, f.validate())
		}
	}
}

// FuzzParseFault checks that the parser never panics and that every fault
// it accepts survives its own string form.
func FuzzParseFault(f *testing.F) {
	for _, tc := range loadFaultCases(f) {
		f.Add(tc.Spec)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		fault, err := ParseFault(spec)
		if err != nil {
			return
		}
		again, err := ParseFault(fault.String())
		if err != nil {
			t.Fatalf("ParseFault(%q) = %+v, whose String %q does not parse: %v", spec, fault, fault.String(), err)
		}
		if again != fault {
			t.Fatalf("ParseFault(%q) = %+v; round trip through %q gives %+v", spec, fault, fault.String(), again)
		}
		if err := fault.validate(); err != nil {
			t.Fatalf("ParseFault(%q) = %+v does not validate: %v", spec, fault, err)
		}
	})
}

func TestAddFaultValidates(t *testing.T) {
	sim := New()
	for _, f := range []Fault{
		{Kind: FaultStatus, Status: 200},
		{Kind: "bogus"},
		{Kind: FaultStatus, Status: 503, Path: "/nodes/a:b"},
		{Kind: FaultLatency},
		{Kind: FaultDrop, Method: "FETCH"},
		{Kind: FaultFull, Storage: "nope"},
		{Kind: FaultDeny, ACLPath: "/", Privilege: "Fly"},
	} {
		if err := sim.AddFault(f); err == nil {
			t.Errorf("AddFault(%+v) = nil; want an error", f)
		}
	}
}

func TestStatusFault(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddFault(Fault{Kind: FaultStatus, Method: "GET", Path: "/nodes/*/status", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r := h.do("GET", nodePath+"/status", nil)
		if r.status != 503 || r.reason != "Service Unavailable" || len(r.raw) != 0 {
			t.Errorf("faulted request %d = %d %q %q; want a bare 503", i, r.status, r.reason, r.raw)
		}
	}
	h.ok("GET", nodePath+"/status", nil)
	h.ok("GET", "/version", nil) // other paths were never affected

	f, err := ParseFault("500:PUT:/nodes/*/lxc/*/config:count=1:cfs-lock 'file-storage_cfg' error: got lock request timeout")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	h.fails("PUT", nodePath+"/lxc/101/config", vals("cores", "1"), 500, "cfs-lock 'file-storage_cfg' error: got lock request timeout")
	if g := h.guest(101); g.Config["cores"] != "2" {
		t.Error("a status fault must answer before the handler runs")
	}
	h.ok("PUT", nodePath+"/lxc/101/config", vals("cores", "1"))
}

// rawDo sends a request and returns the transport error, if any.
func (h *harness) rawDo(method, path string) error {
	req, err := http.NewRequest(method, h.srv.Endpoint+"/api2/json"+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+h.token)
	resp, err := h.hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func TestDropFaults(t *testing.T) {
	h := newHarness(t)
	tasks := len(h.sim.Tasks())
	f, _ := ParseFault("drop:POST:/nodes/*/lxc/*/status/*:count=1")
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	if err := h.rawDo("POST", nodePath+"/lxc/101/status/stop"); err == nil {
		t.Fatal("dropped request got an answer")
	}
	if len(h.sim.Tasks()) != tasks || h.sim.Mutations(101) != 1 {
		t.Errorf("drop before handling: %d tasks (want %d), %d mutations (want 1)", len(h.sim.Tasks()), tasks, h.sim.Mutations(101))
	}

	f, _ = ParseFault("drop:POST:/nodes/*/lxc/*/status/*:count=1:after")
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	if err := h.rawDo("POST", nodePath+"/lxc/101/status/stop"); err == nil {
		t.Fatal("dropped request got an answer")
	}
	if got := h.sim.Tasks(); len(got) != tasks+1 || got[len(got)-1].Type != "vzstop" {
		t.Errorf("drop after handling: the stop must have happened: %+v", got)
	}
	if h.sim.Mutations(101) != 2 {
		t.Errorf("Mutations(101) = %d; want 2", h.sim.Mutations(101))
	}

	// Polling a task can lose its connection too.
	upid := h.sim.Tasks()[tasks].UPID
	f, _ = ParseFault("drop:GET:/nodes/*/tasks/*/status:count=1")
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	if err := h.rawDo("GET", nodePath+"/tasks/"+upid+"/status"); err == nil {
		t.Fatal("dropped poll got an answer")
	}
	h.wantExit(upid, "OK")
}

func TestTaskFaults(t *testing.T) {
	h := newHarness(t)
	f, err := ParseFault("taskfail:vzdump:101:storage went away")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.sim.AddFault(f); err != nil {
		t.Fatal(err)
	}
	before := len(h.sim.Volumes("usb-backup"))
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "102", "storage", "usb-backup")), "OK") // another guest
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "storage went away")
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "OK") // count was 1
	if got := len(h.sim.Volumes("usb-backup")); got != before+2 {
		t.Errorf("usb-backup has %d volumes; want %d (the failed job wrote none)", got, before+2)
	}

	h.sim.FailTasks("vzstart", 0, "no cgroup")
	h.wantExit(h.upid("POST", nodePath+"/lxc/9999/status/stop", nil), "OK")
	h.wantExit(h.upid("POST", nodePath+"/lxc/9999/status/start", nil), "no cgroup")
	h.wantExit(h.upid("POST", nodePath+"/lxc/9999/status/start", nil), "no cgroup")
	h.sim.ClearFaults()
	h.wantExit(h.upid("POST", nodePath+"/lxc/9999/status/start", nil), "OK")

	for _, spec := range []string{"full:usb-backup", "deny:/vms/102:VM.Backup"} {
		f, err := ParseFault(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "job errors")
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "102", "storage", "usb-backup")), "Permission check failed (/vms/102, VM.Backup)")
}

func TestFaultsField(t *testing.T) {
	clock := &fakeClock{t: testStart}
	sim := &Sim{Now: clock.Now, Faults: []Fault{{Kind: FaultStatus, Path: "/version", Status: 502}}}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api2/json/version", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
	sim.ServeHTTP(rec, req)
	if rec.Code != 502 {
		t.Errorf("Faults field: %d; want 502", rec.Code)
	}
	defer func() {
		if recover() == nil {
			t.Error("an invalid Faults entry must panic at first use")
		}
	}()
	bad := &Sim{Faults: []Fault{{Kind: "nonsense"}}}
	bad.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api2/json/version", nil))
}

// TestLatency runs in a synctest bubble: the handler's delays pass in fake
// time, and are measured exactly.
func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &Sim{Latency: 150 * time.Millisecond}
		f, err := ParseFault("latency:2s:GET:/nodes/*/status:count=1")
		if err != nil {
			t.Fatal(err)
		}
		if err := sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
		serve := func(path string) (time.Duration, int) {
			req := httptest.NewRequest("GET", "/api2/json"+path, nil)
			req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
			rec := httptest.NewRecorder()
			start := time.Now()
			sim.ServeHTTP(rec, req)
			return time.Since(start), rec.Code
		}
		for _, tc := range []struct {
			path string
			want time.Duration
		}{
			{"/nodes/demo-felhom/status", 2150 * time.Millisecond},
			{"/nodes/demo-felhom/status", 150 * time.Millisecond}, // count used up
			{"/version", 150 * time.Millisecond},
		} {
			if got, code := serve(tc.path); got != tc.want || code != 200 {
				t.Errorf("GET %s took %v (%d); want %v", tc.path, got, code, tc.want)
			}
		}
	})
}

// TestTasksInSynctest drives task timing with the real clock of a bubble
// (Now unset): time.Sleep passes in fake time.
func TestTasksInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &Sim{TaskDuration: time.Minute}
		req := httptest.NewRequest("POST", "/api2/json/nodes/demo-felhom/lxc/101/status/stop", nil)
		req.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		var env struct{ Data string }
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || rec.Code != 200 {
			t.Fatalf("stop: %d %s", rec.Code, rec.Body)
		}
		time.Sleep(59 * time.Second)
		if v, _ := sim.Task(env.Data); !v.Running {
			t.Error("task stopped early")
		}
		time.Sleep(time.Second)
		if v, _ := sim.Task(env.Data); v.Running || v.ExitStatus != "OK" {
			t.Errorf("task after a minute: %+v", v)
		}
	})
}

// A 595 is what pveproxy relays when the node it proxies to does not
// answer: AnyEvent::HTTP's reason phrase and no body, never JSON.
func TestProxyErrorHasNoBody(t *testing.T) {
	h := newHarness(t)
	for _, spec := range []string{"595:GET:/nodes/*/status:count=1", "595:GET:/version:count=1:Connection timed out"} {
		f, err := ParseFault(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.sim.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ path, reason string }{{nodePath + "/status", "Connection refused"}, {"/version", "Connection timed out"}} {
		r := h.do("GET", tc.path, nil)
		if r.status != 595 || r.reason != tc.reason || len(r.raw) != 0 || r.headers.Get("Content-Type") != "" {
			t.Errorf("GET %s = %d %q %q (type %q); want 595 %q without a body", tc.path, r.status, r.reason, r.raw, r.headers.Get("Content-Type"), tc.reason)
		}
	}
}
