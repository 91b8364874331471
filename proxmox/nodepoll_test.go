package proxmox_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// The shared poll: several waits on one node read its active task list
// once per cycle, and each reads its task's status once, when the task has
// left the list.

const (
	upidA     = upidWait
	upidB     = "UPID:node1:0019A2F4:0A6B8C22:67F3B2C2:vzdump:102:felhom-agent@pve!agent:"
	listRoute = "GET /nodes/node1/tasks"
)

// fakeBubble runs fn in a synctest bubble with a Client of f, served in
// memory.
func fakeBubble(t *testing.T, f *fakePVE, fn func(t *testing.T, c *proxmox.Client)) {
	synctest.Test(t, func(t *testing.T) {
		c, err := proxmox.New(testConfig("https://pve.example:8006"), proxmox.WithTransport(handlerTransport{f}))
		if err != nil {
			t.Fatal(err)
		}
		fn(t, c)
	})
}

// activeList serves a source=active answer listing upids as running, with
// total as PVE's count (len(upids) when negative).
func activeList(total int, upids ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("source") != "active" {
			w.WriteHeader(400)
			return
		}
		entries := []map[string]any{}
		for _, u := range upids {
			entries = append(entries, map[string]any{"upid": u, "status": "RUNNING", "saved": "0"})
		}
		if total < 0 {
			total = len(upids)
		}
		serveJSON(200, mustJSON(map[string]any{"data": entries, "total": total}))(w, r)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// statusAfter answers running until the task's end (fake time since the
// handler was made), then stopped OK.
func statusAfter(end time.Duration, upid string) http.HandlerFunc {
	start := time.Now()
	return func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) < end {
			serveData(map[string]any{"status": "running", "upid": upid})(w, r)
			return
		}
		serveData(map[string]any{"status": "stopped", "exitstatus": "OK", "upid": upid})(w, r)
	}
}

// listUntil lists each upid as running until its end.
func listUntil(ends map[string]time.Duration) http.HandlerFunc {
	start := time.Now()
	return func(w http.ResponseWriter, r *http.Request) {
		var up []string
		for u, end := range ends {
			if time.Since(start) < end {
				up = append(up, u)
			}
		}
		activeList(-1, up...)(w, r)
	}
}

// waitAll waits for every upid in its own goroutine and returns the
// results in order, with the fake time each wait took.
func waitAll(c *proxmox.Client, ctx context.Context, o proxmox.WaitOptions, upids ...string) ([]error, []time.Duration) {
	errs := make([]error, len(upids))
	took := make([]time.Duration, len(upids))
	var wg sync.WaitGroup
	for i, u := range upids {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = c.WaitTask(ctx, proxmox.MustParseUPID(u), o)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	return errs, took
}

func statusRouteOf(upid string) string { return "GET /nodes/node1/tasks/" + upid + "/status" }

// twoTasks is a fake node whose tasks A and B end 1 s and 3 s after it is
// made, in its active list and in their status alike, and a Client of it;
// call it in a bubble.
func twoTasks(t *testing.T) (*fakePVE, *proxmox.Client) {
	t.Helper()
	f := newFake(t)
	f.on(listRoute, listUntil(map[string]time.Duration{upidA: time.Second, upidB: 3 * time.Second}))
	f.on(statusRouteOf(upidA), statusAfter(time.Second, upidA))
	f.on(statusRouteOf(upidB), statusAfter(3*time.Second, upidB))
	c, err := proxmox.New(testConfig("https://pve.example:8006"), proxmox.WithTransport(handlerTransport{f}))
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// TestSharedPoll checks two waits sharing the list: each task's status is
// read once, when it has left the list, each wait ends within the shared
// floor (2 × 25ms) of its task's end, and the list is read on the shared
// schedule.
func TestSharedPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := twoTasks(t)
		errs, took := waitAll(c, t.Context(), proxmox.WaitOptions{}, upidA, upidB)
		for i, end := range []time.Duration{time.Second, 3 * time.Second} {
			if late := took[i] - end; errs[i] != nil || late < 0 || late > end/20+50*time.Millisecond {
				t.Errorf("wait %d: %v after %v; want success within 5%% + 50ms of %v", i, errs[i], took[i], end)
			}
		}
		// At most the first cycle reads a status before the second wait
		// joins; after A has left, B waits alone, by its own status.
		if n := f.count(statusRouteOf(upidA)); n > 2 {
			t.Errorf("%d status reads of A; want the one when it left the list (and at most one lone poll)", n)
		}
		if n := f.count(listRoute); n < 10 || n > 30 {
			t.Errorf("%d list reads in the second both waited; want the shared schedule's (about 20)", n)
		}
	})
}

// TestSharedPollUnlistedTask checks that a task the list does not show
// (another user's, for a token without Sys.Audit) is not taken for
// stopped: its status says running, so it is polled by its status until
// that says stopped.
func TestSharedPollUnlistedTask(t *testing.T) {
	f := newFake(t)
	fakeBubble(t, f, func(t *testing.T, c *proxmox.Client) {
		f.on(listRoute, listUntil(map[string]time.Duration{upidB: 2 * time.Second})) // never lists A
		f.on(statusRouteOf(upidA), statusAfter(5*time.Second, upidA))
		f.on(statusRouteOf(upidB), statusAfter(2*time.Second, upidB))
		errs, took := waitAll(c, t.Context(), proxmox.WaitOptions{}, upidA, upidB)
		if late := took[0] - 5*time.Second; errs[0] != nil || late < 0 || late > 300*time.Millisecond {
			t.Errorf("unlisted wait: %v after %v; want success within 5%% + 50ms of 5s", errs[0], took[0])
		}
		if late := took[1] - 2*time.Second; errs[1] != nil || late < 0 || late > 150*time.Millisecond {
			t.Errorf("listed wait: %v after %v; want success within 5%% + 50ms of 2s", errs[1], took[1])
		}
		if n := f.count(statusRouteOf(upidB)); n > 2 {
			t.Errorf("%d status reads of the listed task; want at most 2", n)
		}
	})
}

// TestSharedPollCutShort checks that a list cut short by its limit judges
// no task missing from it, and that the next list asks for all.
func TestSharedPollCutShort(t *testing.T) {
	f := newFake(t)
	fakeBubble(t, f, func(t *testing.T, c *proxmox.Client) {
		start := time.Now()
		f.on(listRoute, func(w http.ResponseWriter, r *http.Request) {
			if time.Since(start) < time.Second {
				activeList(1500, upidB)(w, r) // cut short: A may be among the rest
				return
			}
			activeList(-1)(w, r)
		})
		f.on(statusRouteOf(upidA), statusAfter(time.Second, upidA))
		f.on(statusRouteOf(upidB), statusAfter(time.Second, upidB))
		errs, _ := waitAll(c, t.Context(), proxmox.WaitOptions{}, upidA, upidB)
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("errors %v", errs)
		}
		if n := f.count(statusRouteOf(upidA)); n > 2 {
			t.Errorf("%d status reads of A; want it not judged while the list was cut short", n)
		}
		var limits []int
		for _, call := range f.Calls() {
			if call.Method+" "+call.Path == listRoute {
				n, _ := strconv.Atoi(call.Query.Get("limit"))
				limits = append(limits, n)
			}
		}
		if len(limits) < 2 || limits[0] != 1000 || limits[1] < 1500 {
			t.Errorf("list limits %v; want 1000, then the total (1500) or more", limits)
		}
	})
}

// TestSharedPollListRefused checks that a list the host refuses (not a
// transient failure) makes every wait poll its own status.
func TestSharedPollListRefused(t *testing.T) {
	f := newFake(t)
	f.on(listRoute, serveError(500, "something broke", nil))
	fakeBubble(t, f, func(t *testing.T, c *proxmox.Client) {
		f.on(statusRouteOf(upidA), statusAfter(time.Second, upidA))
		f.on(statusRouteOf(upidB), statusAfter(2*time.Second, upidB))
		errs, took := waitAll(c, t.Context(), proxmox.WaitOptions{}, upidA, upidB)
		for i, end := range []time.Duration{time.Second, 2 * time.Second} {
			if late := took[i] - end; errs[i] != nil || late < 0 || late > end/20+50*time.Millisecond {
				t.Errorf("wait %d: %v after %v; want success within 5%% + 50ms of %v", i, errs[i], took[i], end)
			}
		}
		if n := f.count(listRoute); n > 2 {
			t.Errorf("%d list reads; want the list given up after it failed", n)
		}
	})
}

// TestSharedPollCancelOne checks that cancelling one of two waits ends it
// at once, and the other goes on to its task's end.
func TestSharedPollCancelOne(t *testing.T) {
	f := newFake(t)
	fakeBubble(t, f, func(t *testing.T, c *proxmox.Client) {
		f.on(listRoute, listUntil(map[string]time.Duration{upidA: time.Hour, upidB: 10 * time.Second}))
		f.on(statusRouteOf(upidA), statusAfter(time.Hour, upidA))
		f.on(statusRouteOf(upidB), statusAfter(10*time.Second, upidB))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(3*time.Second+time.Millisecond, cancel)
		var errA, errB error
		var tookA, tookB time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		wg.Go(func() {
			_, errA = c.WaitTask(ctx, proxmox.MustParseUPID(upidA), proxmox.WaitOptions{})
			tookA = time.Since(start)
		})
		wg.Go(func() {
			_, errB = c.WaitTask(t.Context(), proxmox.MustParseUPID(upidB), proxmox.WaitOptions{})
			tookB = time.Since(start)
		})
		wg.Wait()
		if !errors.Is(errA, context.Canceled) || tookA != 3*time.Second+time.Millisecond {
			t.Errorf("cancelled wait: %v after %v; want context.Canceled at 3.001s", errA, tookA)
		}
		if errB != nil || tookB < 10*time.Second || tookB > 10*time.Second+time.Second/2 {
			t.Errorf("other wait: %v after %v; want success at 10s", errB, tookB)
		}
	})
}

// TestSharedPollObservers checks, on the simulator, that the requests the
// waits' Observers are told of add up to those the host received: the
// list requests go to one wait's Observer each.
func TestSharedPollObservers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &pvesim.Sim{}
		c := simClient(t, sim)
		var vmids []int
		for i := range 5 {
			vmid := 300 + i
			if err := sim.AddGuest(pvesim.GuestSpec{VMID: vmid, Running: true}); err != nil {
				t.Fatal(err)
			}
			vmids = append(vmids, vmid)
		}
		before := sim.Requests()
		recs := make([]*recorder, len(vmids))
		var wg sync.WaitGroup
		for i, vmid := range vmids {
			recs[i] = &recorder{}
			wg.Go(func() {
				ctx := proxmox.WithObserver(t.Context(), recs[i])
				sim.SetTaskDuration(time.Duration(i+1) * time.Second)
				upid, err := c.Shutdown(ctx, proxmox.LXC, vmid, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := c.WaitTask(ctx, upid, proxmox.WaitOptions{}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		synctest.Wait() // the poller reports its last request as it exits
		told := 0
		for _, r := range recs {
			told += len(r.Requests())
		}
		if got := sim.Requests() - before; told != got {
			t.Errorf("Observers were told of %d requests; the simulator received %d", told, got)
		}
	})
}

// simClient is a Client of sim served over in-memory connections, for a
// synctest bubble.
func simClient(t *testing.T, sim *pvesim.Sim) *proxmox.Client {
	t.Helper()
	rt, stop := pvesim.PipeTransport(sim)
	t.Cleanup(stop)
	token, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve.sim:8006", Node: pvesim.DefaultNode, Token: token}, proxmox.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWaitPolled: WaitOptions.Polled is called once for each look that
// saw the task running — each status poll of a lone wait, each shared list
// showing it — and not for the look that saw it stopped.
func TestWaitPolled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := twoTasks(t)
		// Alone: every status poll but the last saw it running.
		var lone atomic.Int32
		if _, err := c.WaitTask(t.Context(), proxmox.MustParseUPID(upidA), proxmox.WaitOptions{Polled: func() { lone.Add(1) }}); err != nil {
			t.Fatal(err)
		}
		if polls := f.count(statusRouteOf(upidA)); int(lone.Load()) != polls-1 {
			t.Errorf("Polled called %d times for %d status polls; want %d", lone.Load(), polls, polls-1)
		}
		// Shared: each list showing the task running counts, and no poll
		// is counted twice.
		f2, c2 := twoTasks(t)
		var a, b atomic.Int32
		var wg sync.WaitGroup
		for _, w := range []struct {
			upid string
			n    *atomic.Int32
		}{{upidA, &a}, {upidB, &b}} {
			wg.Go(func() {
				if _, err := c2.WaitTask(t.Context(), proxmox.MustParseUPID(w.upid), proxmox.WaitOptions{Polled: func() { w.n.Add(1) }}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		lists := f2.count(listRoute)
		for _, w := range []struct {
			upid string
			n    int
		}{{upidA, int(a.Load())}, {upidB, int(b.Load())}} {
			if looks := lists + f2.count(statusRouteOf(w.upid)); w.n == 0 || w.n >= looks {
				t.Errorf("Polled called %d times for %s, which %d lists and status reads looked at; want fewer, at least one", w.n, w.upid, looks)
			}
		}
	})
}
