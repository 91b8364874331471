package pvesim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The simulator at scale: what adding guests and answering a request
// cost as the world grows. Every test stands on the simulator, so its
// costs must follow the work a request asks for, not the size of the
// world or of its history.
//
//	go test -run '^$' -bench 'AddGuests|TasksAt' -benchtime 3x ./proxmox/pvesim/

// BenchmarkAddGuests adds n guests to a fresh simulator: the cost of
// shaping a large world, per guest added.
func BenchmarkAddGuests(b *testing.B) {
	for _, n := range []int{1000, 3000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				s := New()
				for i := range n {
					if err := s.AddGuest(GuestSpec{VMID: 10000 + i}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/guest")
		})
	}
}

// historyTasks is how many finished tasks BenchmarkTasksAt100k's
// simulator has run before it is measured.
const historyTasks = 100_000

var history struct {
	once sync.Once
	sim  *Sim
	last string // UPID of the newest task
}

// simWithHistory is a simulator that has run historyTasks short tasks,
// each started and stopped one at a time, as a long-lived host would.
func simWithHistory() (*Sim, string) {
	history.once.Do(func() {
		clock := &fakeClock{t: testStart}
		s := &Sim{TaskDuration: time.Millisecond, Now: clock.Now}
		for i := range historyTasks {
			_ = s.with(func(st *state) error {
				t := st.startTask(DefaultTokenID, taskSpec{typ: "vzstart", id: vmidString(100 + i%900), duration: time.Millisecond})
				history.last = t.id
				return nil
			})
			clock.Advance(time.Second)
		}
		history.sim = s
	})
	return history.sim, history.last
}

// BenchmarkTasksAt100k is one request to a simulator whose history holds
// 100,000 finished tasks: a task's status, the active list a shared wait
// polls, and the default (archive) list.
func BenchmarkTasksAt100k(b *testing.B) {
	s, last := simWithHistory()
	node := "/api2/json/nodes/" + DefaultNode + "/tasks"
	for _, c := range []struct{ name, target string }{
		{"status", node + "/" + last + "/status"},
		{"active", node + "?source=active"},
		{"archive", node},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, c.target, nil)
				r.Header.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", c.target, w.Code, w.Body)
				}
			}
		})
	}
}
