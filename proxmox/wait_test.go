package proxmox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// upidWait is the task the wait tests follow, on the test node.
const upidWait = "UPID:node1:0019A2F3:0A6B8C21:67F3B2C1:vzdump:101:felhom-agent@pve!agent:"

const (
	statusRoute = "GET /nodes/node1/tasks/" + upidWait + "/status"
	logRoute    = "GET /nodes/node1/tasks/" + upidWait + "/log"
)

func running() http.HandlerFunc {
	return serveData(map[string]any{"status": "running", "upid": upidWait, "node": "node1", "type": "vzdump", "id": "101"})
}

func stopped(exit string) http.HandlerFunc {
	return serveData(map[string]any{"status": "stopped", "exitstatus": exit, "upid": upidWait, "node": "node1", "type": "vzdump", "id": "101"})
}

// pagedLog serves a task log as PVE does: start/limit paging, and the
// line count in "total" when withTotal.
func pagedLog(lines []string, withTotal bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start, _ := strconv.Atoi(r.URL.Query().Get("start"))
		limit := 50
		if l := r.URL.Query().Get("limit"); l != "" {
			limit, _ = strconv.Atoi(l)
		}
		page := []map[string]any{}
		for i := start; i < len(lines) && i < start+limit; i++ {
			page = append(page, map[string]any{"n": i + 1, "t": lines[i]})
		}
		body := map[string]any{"data": page}
		if withTotal {
			body["total"] = len(lines)
		}
		b, _ := json.Marshal(body)
		serveJSON(200, string(b))(w, r)
	}
}

func numbered(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i+1)
	}
	return out
}

var fastWait = proxmox.WaitOptions{MinInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond}

func TestWaitTask(t *testing.T) {
	failedLog := append(numbered(8, "INFO: step %d"),
		"ERROR: Backup of VM 101 failed - Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)",
		"TASK ERROR: Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)")
	tests := []struct {
		name       string
		retries    int // Config.ReadRetries; -1 shows that WaitTask itself resumes
		status     []http.HandlerFunc
		log        http.HandlerFunc
		opts       proxmox.WaitOptions
		wantStatus proxmox.TaskStatus
		wantPolls  int
		check      func(t *testing.T, err error)
	}{
		{
			name: "running then OK", status: []http.HandlerFunc{running(), running(), stopped("OK")},
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "OK"}, wantPolls: 3,
		},
		{
			name: "warnings are success", status: []http.HandlerFunc{running(), stopped("WARNINGS: 2")},
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "WARNINGS: 2"}, wantPolls: 2,
		},
		{
			name:   "failed with a permission error",
			status: []http.HandlerFunc{running(), stopped("Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)")},
			log:    pagedLog(failedLog, true), opts: proxmox.WaitOptions{LogTail: 3},
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"},
			wantPolls:  2,
			check: func(t *testing.T, err error) {
				te, ok := errors.AsType[*proxmox.TaskError](err)
				if !ok {
					t.Fatalf("error %v (%T); want *TaskError", err, err)
				}
				wantPerm := &proxmox.Permission{Path: "/storage/usb-backup", Privileges: []string{"Datastore.AllocateSpace"}}
				if te.UPID.String() != upidWait || !reflect.DeepEqual(te.Permission, wantPerm) {
					t.Errorf("TaskError = %+v; want upid %s and permission %+v", te, upidWait, wantPerm)
				}
				if !reflect.DeepEqual(te.LogTail, failedLog[len(failedLog)-3:]) {
					t.Errorf("LogTail = %q; want the last 3 lines", te.LogTail)
				}
				if p, ok := proxmox.IsPermission(err); !ok || p.Path != "/storage/usb-backup" || proxmox.Kind(err) != "permission" {
					t.Errorf("IsPermission = %v, %v; Kind = %q", p, ok, proxmox.Kind(err))
				}
			},
		},
		{
			name: "failed, default log tail of 20", status: []http.HandlerFunc{stopped("command 'tar' failed: exit code 2")},
			log:        pagedLog(numbered(45, "line %d"), true),
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "command 'tar' failed: exit code 2"}, wantPolls: 1,
			check: func(t *testing.T, err error) {
				te, _ := errors.AsType[*proxmox.TaskError](err)
				if te == nil || !reflect.DeepEqual(te.LogTail, numbered(45, "line %d")[25:]) || te.Permission != nil || proxmox.Kind(err) != "task" {
					t.Errorf("error = %#v; want a TaskError with lines 26..45", err)
				}
			},
		},
		{
			name: "failed, log unreadable", status: []http.HandlerFunc{stopped("CT is locked (backup)")},
			log:        serveError(500, "unable to open file", nil),
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "CT is locked (backup)"}, wantPolls: 1,
			check: func(t *testing.T, err error) {
				te, _ := errors.AsType[*proxmox.TaskError](err)
				if lock, ok := proxmox.IsLocked(err); te == nil || te.LogTail != nil || !ok || lock != "backup" {
					t.Errorf("error = %v; want a lock TaskError without log tail", err)
				}
			},
		},
		{
			name: "connection dropped mid-wait", retries: -1, status: []http.HandlerFunc{running(), dropConn, stopped("OK")},
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "OK"}, wantPolls: 3,
		},
		{
			name: "gateway errors mid-wait", retries: -1,
			status:     []http.HandlerFunc{running(), serveError(503, "busy", nil), serveReason(595, "Connection timed out", ""), stopped("OK")},
			wantStatus: proxmox.TaskStatus{Status: "stopped", ExitStatus: "OK"}, wantPolls: 4,
		},
		{
			name: "status refused", status: []http.HandlerFunc{running(), serveError(403, "Permission check failed (/nodes/node1, Sys.Audit)", nil)},
			wantStatus: proxmox.TaskStatus{Status: "running"}, wantPolls: 2,
			check: func(t *testing.T, err error) {
				if _, ok := errors.AsType[*proxmox.APIError](err); !ok || !strings.Contains(err.Error(), "waiting for task "+upidWait) {
					t.Errorf("error = %v; want the APIError, naming the task", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on(statusRoute, sequence(tt.status...))
			if tt.log != nil {
				f.on(logRoute, tt.log)
			}
			ts := startTLS(t, f)
			ts.Config.SetKeepAlivesEnabled(false)
			cfg := testConfig(ts.URL)
			cfg.Fingerprint = pinOf(ts)
			cfg.ReadRetries = tt.retries
			opts := tt.opts
			opts.MinInterval, opts.MaxInterval = fastWait.MinInterval, fastWait.MaxInterval
			rec := &recorder{}
			u := proxmox.MustParseUPID(upidWait)

			st, err := newClientCfg(t, cfg).WaitTask(proxmox.WithObserver(t.Context(), rec), u, opts)

			tt.wantStatus.UPID = u
			if st != tt.wantStatus {
				t.Errorf("status = %+v; want %+v", st, tt.wantStatus)
			}
			if tt.check == nil && err != nil {
				t.Errorf("error = %v; want success", err)
			}
			if tt.check != nil {
				if err == nil {
					t.Fatal("WaitTask succeeded; want an error")
				}
				tt.check(t, err)
			}
			if n := f.count(statusRoute); n != tt.wantPolls {
				t.Errorf("%d status polls; want %d", n, tt.wantPolls)
			}
			if len(rec.waited) != 1 || rec.waited[0].UPID != u || rec.waited[0].Status != st || rec.waited[0].Err != err {
				t.Errorf("observer TaskWaited = %+v; want one call with the result", rec.waited)
			}
		})
	}
}

func TestWaitTaskZeroUPID(t *testing.T) {
	f := newFake(t)
	st, err := fakeClient(t, f).WaitTask(t.Context(), proxmox.UPID{}, proxmox.WaitOptions{})
	if err != nil || !st.Succeeded() {
		t.Errorf("WaitTask(zero) = %+v, %v; want stopped OK", st, err)
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("sent %d requests; want none", n)
	}
}

// waitBubble runs fn in a synctest bubble with a Client whose requests are
// served in memory by status.
func waitBubble(t *testing.T, status http.HandlerFunc, fn func(t *testing.T, c *proxmox.Client)) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t).on(statusRoute, status)
		c, err := proxmox.New(testConfig("https://pve.example:8006"), proxmox.WithTransport(handlerTransport{f}))
		if err != nil {
			t.Fatal(err)
		}
		fn(t, c)
	})
}

// TestWaitTaskSchedule checks a lone wait's poll schedule in fake time:
// at once, then a twentieth of the time waited, within MinInterval and
// MaxInterval (25ms and 1m by default).
func TestWaitTaskSchedule(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		opts   proxmox.WaitOptions
		polls  int
		lo, hi time.Duration
	}{
		{"defaults", proxmox.WaitOptions{}, 300, 25 * ms, time.Minute},
		{"bounds", proxmox.WaitOptions{MinInterval: 100 * ms, MaxInterval: time.Second}, 60, 100 * ms, time.Second},
		{"min above max", proxmox.WaitOptions{MinInterval: time.Second, MaxInterval: 10 * ms}, 5, 10 * ms, 10 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var polls []time.Duration
			var start time.Time
			status := func(w http.ResponseWriter, r *http.Request) {
				polls = append(polls, time.Since(start))
				if len(polls) == tt.polls {
					stopped("OK")(w, r)
					return
				}
				running()(w, r)
			}
			waitBubble(t, status, func(t *testing.T, c *proxmox.Client) {
				start = time.Now()
				if _, err := c.WaitTask(t.Context(), proxmox.MustParseUPID(upidWait), tt.opts); err != nil {
					t.Fatal(err)
				}
			})
			want := []time.Duration{0}
			for len(want) < tt.polls {
				at := want[len(want)-1]
				want = append(want, at+min(max(at/20, tt.lo), tt.hi))
			}
			if !reflect.DeepEqual(polls, want) {
				t.Errorf("polled at %v; want %v", polls, want)
			}
		})
	}
}

// TestWaitTaskScheduleExpected checks the schedule of a lone wait that
// expects its task to run 10s (WaitOptions.Expected): a quarter of the
// time waited until 4.5s, then a twentieth, with a poll at 4.5s and one at
// 10s, where the task stops.
func TestWaitTaskScheduleExpected(t *testing.T) {
	const lo, quiet, expect = 25 * time.Millisecond, 4500 * time.Millisecond, 10 * time.Second
	var polls []time.Duration
	var start time.Time
	status := func(w http.ResponseWriter, r *http.Request) {
		polls = append(polls, time.Since(start))
		if time.Since(start) >= expect {
			stopped("OK")(w, r)
			return
		}
		running()(w, r)
	}
	waitBubble(t, status, func(t *testing.T, c *proxmox.Client) {
		start = time.Now()
		if _, err := c.WaitTask(t.Context(), proxmox.MustParseUPID(upidWait), proxmox.WaitOptions{Expected: expect}); err != nil {
			t.Fatal(err)
		}
	})
	want := []time.Duration{0}
	for at := time.Duration(0); at < expect; {
		var s time.Duration
		if at < quiet {
			s = max(at/4, lo)
			if quiet-at >= lo {
				s = min(s, quiet-at)
			}
		} else {
			s = max(at/20, lo)
		}
		at += min(s, expect-at)
		want = append(want, at)
	}
	if !reflect.DeepEqual(polls, want) {
		t.Errorf("polled at %v; want %v", polls, want)
	}
	if !slices.Contains(polls, quiet) || polls[len(polls)-1] != expect {
		t.Errorf("polled at %v; want a poll at %v and the last at %v", polls, quiet, expect)
	}
}

func TestWaitTaskTimeout(t *testing.T) {
	waitBubble(t, running(), func(t *testing.T, c *proxmox.Client) {
		start := time.Now()
		st, err := c.WaitTask(t.Context(), proxmox.MustParseUPID(upidWait), proxmox.WaitOptions{Timeout: 5 * time.Second})
		if !errors.Is(err, proxmox.ErrWaitTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v; want ErrWaitTimeout and DeadlineExceeded", err)
		}
		if errors.Is(err, context.Canceled) || proxmox.Kind(err) != "" {
			t.Errorf("error = %v (kind %q); a timed-out wait is neither cancelled nor a task failure", err, proxmox.Kind(err))
		}
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("returned after %v; want at the timeout (5s)", took)
		}
		if st.Status != "running" {
			t.Errorf("status = %+v; want the last one seen (running)", st)
		}
	})
}

// TestWaitTaskCancel checks that cancelling the context ends a wait at
// once, mid-sleep, and also while a poll is in flight.
func TestWaitTaskCancel(t *testing.T) {
	t.Run("while sleeping", func(t *testing.T) {
		waitBubble(t, running(), func(t *testing.T, c *proxmox.Client) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(3*time.Second+time.Millisecond, cancel) // between two polls
			start := time.Now()
			_, err := c.WaitTask(ctx, proxmox.MustParseUPID(upidWait), proxmox.WaitOptions{})
			if !errors.Is(err, context.Canceled) || errors.Is(err, proxmox.ErrWaitTimeout) {
				t.Errorf("error = %v; want context.Canceled", err)
			}
			if took := time.Since(start); took != 3*time.Second+time.Millisecond {
				t.Errorf("returned after %v; want at the cancel (3.001s)", took)
			}
		})
	})
	t.Run("while polling", func(t *testing.T) {
		var polls atomic.Int32
		hang := func(w http.ResponseWriter, r *http.Request) {
			if polls.Add(1) == 1 {
				running()(w, r)
				return
			}
			<-r.Context().Done()
		}
		waitBubble(t, hang, func(t *testing.T, c *proxmox.Client) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(time.Second, cancel) // the second poll starts at 25ms and hangs
			start := time.Now()
			_, err := c.WaitTask(ctx, proxmox.MustParseUPID(upidWait), proxmox.WaitOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error = %v; want context.Canceled", err)
			}
			if took := time.Since(start); took != time.Second {
				t.Errorf("returned after %v; want at the cancel (1s)", took)
			}
		})
	})
}
