package builtins

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// pipeRig is a simulated host reached over in-memory connections, so a
// synctest bubble runs its tasks on fake time; the run logs to rec.
func pipeRig(t *testing.T, d time.Duration, rec *logtest.Recorder) (*pvesim.Sim, *Env) {
	sim, env, _ := pipeRigPaths(t, d, rec)
	return sim, env
}

// pathLog records the path of every request a client sends.
type pathLog struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	paths []string
}

func (p *pathLog) RoundTrip(r *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths = append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	return p.rt.RoundTrip(r)
}

func (p *pathLog) Paths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.paths)
}

func pipeRigPaths(t *testing.T, d time.Duration, rec *logtest.Recorder) (*pvesim.Sim, *Env, *pathLog) {
	t.Helper()
	sim := &pvesim.Sim{TaskDuration: d}
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	rt, stop := pvesim.PipeTransport(sim)
	t.Cleanup(stop)
	token, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	paths := &pathLog{rt: rt}
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve.sim:8006", Node: pvesim.DefaultNode, Token: token}, proxmox.WithTransport(paths))
	if err != nil {
		t.Fatal(err)
	}
	return sim, &Env{Context: t.Context(), Logger: slog.New(rec), Proxmox: c}, paths
}

// recordAttr is one attribute of a record, or nil.
func recordAttr(r slog.Record, key string) any {
	var v any
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.Any()
			return false
		}
		return true
	})
	return v
}

// TestWaitStreamsTheTaskLog: while proxmox.vzdump waits for a two-minute
// backup of a VM, the run log receives the task's lines as they appear,
// each once and in order (the whole task log by the end, before "task
// finished"), the progress lines carrying their percentage.
func TestWaitStreamsTheTaskLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		sim, env := pipeRig(t, 2*time.Minute, rec)
		env.Progress.Followers = Followed
		if _, err := runStar(t, env, `b = proxmox.vzdump(200, storage = "usb-backup")`); err != nil {
			t.Fatal(err)
		}
		var upid string
		var lines []string
		var pcts []int64
		finished := -1
		for i, r := range rec.Records() {
			switch {
			case r.Message == "task started":
				upid = recordAttr(r, AttrUPID).(string) // the UPID's text, as the watcher's lines carry it
			case r.Message == "task finished":
				finished = i
			case recordAttr(r, AttrTaskLine) != nil:
				if finished >= 0 {
					t.Errorf("task line %q after task finished", r.Message)
				}
				if got := recordAttr(r, AttrUPID); got != upid {
					t.Errorf("task line upid = %v; want %s", got, upid)
				}
				if n := recordAttr(r, AttrTaskLine).(int64); int(n) != len(lines)+1 {
					t.Errorf("line %q numbered %d; want %d", r.Message, n, len(lines)+1)
				}
				lines = append(lines, r.Message)
				if p, ok := recordAttr(r, AttrProgress).(int64); ok {
					pcts = append(pcts, p)
				}
			}
		}
		view, _ := sim.Task(upid)
		if !slices.Equal(lines, view.Log) {
			t.Fatalf("task lines in the run log:\n%s\nthe task's log:\n%s", strings.Join(lines, "\n"), strings.Join(view.Log, "\n"))
		}
		if len(pcts) < 10 || !slices.IsSorted(pcts) || pcts[len(pcts)-1] != 100 {
			t.Errorf("progress = %v; want rising to 100", pcts)
		}
	})
}

// TestWaitHeartbeat: a task that prints nothing for a while gets a
// heartbeat line naming what is awaited and for how long, spaced further
// apart the longer the silence lasts; a quick task gets no progress and
// costs no request for it.
func TestWaitHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		_, env := pipeRig(t, 3*time.Minute, rec)
		env.Progress.Followers = Followed
		// A container's tar prints nothing between its archive and its end.
		if _, err := runStar(t, env, `proxmox.vzdump(101, storage = "usb-backup")`); err != nil {
			t.Fatal(err)
		}
		var beats []string
		for _, r := range rec.Records() {
			if w := recordAttr(r, AttrWaiting); w != nil {
				beats = append(beats, r.Message)
			}
		}
		// The head lines are read at the first poll after 2s; silence from
		// then: 10s, 20s, 40s, 80s.
		want := []string{"waiting for vzdump of 101: 12s", "waiting for vzdump of 101: 32s", "waiting for vzdump of 101: 1m12s", "waiting for vzdump of 101: 2m32s"}
		if !slices.Equal(beats, want) {
			t.Errorf("heartbeats %q; want %q", beats, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		_, env, paths := pipeRigPaths(t, time.Second, rec)
		env.Progress.Followers = Followed
		if _, err := runStar(t, env, `proxmox.snapshot(101, "quick")`); err != nil {
			t.Fatal(err)
		}
		for _, r := range rec.Records() {
			if recordAttr(r, AttrTaskLine) != nil || recordAttr(r, AttrWaiting) != nil {
				t.Errorf("a one-second task logged progress: %s", r.Message)
			}
		}
		// the kind lookup, the POST, the wait's polls: no log read
		for _, req := range paths.Paths() {
			if strings.HasSuffix(req, "/log") {
				t.Errorf("a one-second task's log was read: %s", req)
			}
		}
	})
}

// TestWaitReadBudget: waits that share a budget read the task log no
// more often than it allows, together; what they could not read while
// waiting they read at the end, so the run log still holds the whole log.
func TestWaitReadBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		sim, env, paths := pipeRigPaths(t, time.Minute, rec)
		env.Progress.Budget = NewReadBudget(time.Hour)
		env.Progress.Followers = Followed
		if _, err := runStar(t, env, `proxmox.vzdump(200, storage = "usb-backup")`); err != nil {
			t.Fatal(err)
		}
		reads := 0
		for _, p := range paths.Paths() {
			if strings.HasPrefix(p, "GET ") && strings.HasSuffix(p, "/log") {
				reads++
			}
		}
		// the first read and the final one
		if reads != 2 {
			t.Errorf("%d log reads under a budget of one an hour; want 2", reads)
		}
		var n int
		for _, r := range rec.Records() {
			if recordAttr(r, AttrTaskLine) != nil {
				n++
			}
		}
		if tasks := sim.Tasks(); n != len(tasks[len(tasks)-1].Log) {
			t.Errorf("%d task lines logged; want the whole log, %d", n, len(tasks[len(tasks)-1].Log))
		}
	})
	synctest.Test(t, func(t *testing.T) {
		b := NewReadBudget(time.Second)
		if !b.take() || b.take() {
			t.Error("a fresh budget of one a second: want one read, then none")
		}
		time.Sleep(time.Second)
		if !b.take() {
			t.Error("a second later: want a read")
		}
		var nilBudget *ReadBudget
		if !nilBudget.take() {
			t.Error("no budget: want every read")
		}
	})
}

// followSwitch is Followers that a test turns on and off.
type followSwitch struct{ on atomic.Bool }

func (f *followSwitch) Follows(context.Context) uint64 {
	if f.on.Load() {
		return 1
	}
	return 0
}

// countPaths counts the requests of paths that are GETs ending in suffix.
func countPaths(paths []string, suffix string) int {
	n := 0
	for _, p := range paths {
		if strings.HasPrefix(p, "GET ") && strings.HasSuffix(p, suffix) {
			n++
		}
	}
	return n
}

// TestWaitLogOnlyWhenFollowed: a task's log is read only while someone
// follows the run, and then at most once per status poll of its wait: a
// run nobody follows makes no log request (its heartbeats are still
// logged); a followed one reads at most as many times as the wait polled;
// a follower that comes mid-way gets the log from its first line, and
// one that leaves stops the reads.
func TestWaitLogOnlyWhenFollowed(t *testing.T) {
	const vzdump = `proxmox.vzdump(200, storage = "usb-backup")`
	t.Run("nobody", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := logtest.New()
			_, env, paths := pipeRigPaths(t, 10*time.Minute, rec)
			if _, err := runStar(t, env, vzdump); err != nil {
				t.Fatal(err)
			}
			if n := countPaths(paths.Paths(), "/log"); n != 0 {
				t.Errorf("%d log requests for a task nobody follows; want 0", n)
			}
			beats := 0
			for _, r := range rec.Records() {
				if recordAttr(r, AttrTaskLine) != nil {
					t.Errorf("task line %q logged with nobody following", r.Message)
				}
				if recordAttr(r, AttrWaiting) != nil {
					beats++
				}
			}
			if beats == 0 {
				t.Error("no heartbeat in 10 minutes; want some (they cost no request)")
			}
		})
	})
	t.Run("followed", func(t *testing.T) {
		for _, d := range []time.Duration{5 * time.Second, time.Minute, 10 * time.Minute, time.Hour} {
			synctest.Test(t, func(t *testing.T) {
				_, env, paths := pipeRigPaths(t, d, logtest.New())
				env.Progress.Followers = Followed
				if _, err := runStar(t, env, vzdump); err != nil {
					t.Fatal(err)
				}
				all := paths.Paths()
				reads, polls := countPaths(all, "/log"), countPaths(all, "/status")
				if reads == 0 || reads > polls {
					t.Errorf("%v task: %d log reads for %d status polls; want at least one, at most one per poll", d, reads, polls)
				}
			})
		}
	})
	t.Run("comes and goes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := logtest.New()
			sim, env, paths := pipeRigPaths(t, 10*time.Minute, rec)
			f := &followSwitch{}
			env.Progress.Followers = f
			go func() {
				time.Sleep(2 * time.Minute)
				f.on.Store(true)
				time.Sleep(time.Minute)
				f.on.Store(false)
			}()
			if _, err := runStar(t, env, vzdump); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, r := range rec.Records() {
				if recordAttr(r, AttrTaskLine) != nil {
					lines = append(lines, r.Message)
				}
			}
			tasks := sim.Tasks()
			log := tasks[len(tasks)-1].Log
			if len(lines) == 0 || len(lines) >= len(log) || !slices.Equal(lines, log[:len(lines)]) {
				t.Errorf("task lines logged:\n%s\nwant the log's first lines, up to where the follower left, of:\n%s", strings.Join(lines, "\n"), strings.Join(log, "\n"))
			}
			reads := countPaths(paths.Paths(), "/log")
			if reads < 2 || reads > 11 {
				t.Errorf("%d log reads while followed for a minute (one every 6–9s then); want 2 to 11", reads)
			}
		})
	})
}
