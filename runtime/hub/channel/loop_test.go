package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeHub is a Reporter whose answers a test scripts.
type fakeHub struct {
	mu      sync.Mutex
	env     Envelope
	fail    error // Report's error while set
	state   FetchedState
	reports []Report
	at      []time.Time
	fetches int
}

func (f *fakeHub) Report(_ context.Context, body []byte) (Envelope, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at = append(f.at, time.Now())
	if f.fail != nil {
		return Envelope{}, f.fail
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		panic(err)
	}
	f.reports = append(f.reports, r)
	return f.env, nil
}

func (f *fakeHub) DesiredState(context.Context) (FetchedState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches++
	return f.state, nil
}

func (f *fakeHub) set(fn func(f *fakeHub)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *fakeHub) get() (reports []Report, at []time.Time, fetches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Report(nil), f.reports...), append([]time.Time(nil), f.at...), f.fetches
}

type memStore struct {
	mu sync.Mutex
	st *State
}

func (m *memStore) LoadState(context.Context) (State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st == nil {
		return State{}, false, nil
	}
	return *m.st, true, nil
}

func (m *memStore) SaveState(_ context.Context, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = &s
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runChannel runs c in the bubble until stop is called.
func runChannel(t *testing.T, c *Channel) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v; want context.Canceled", err)
		}
	}
}

func TestChannelSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &fakeHub{env: Envelope{PollInterval: 120 * time.Second}}
		c := &Channel{Hub: hub, HostID: "h", AgentVersion: "v", Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil }}
		start := time.Now()
		stop := runChannel(t, c)
		synctest.Wait()
		if _, at, _ := hub.get(); len(at) != 1 || !at[0].Equal(start) {
			t.Fatalf("reports at %v; want one at once", at)
		}
		time.Sleep(121 * time.Second)
		synctest.Wait()
		_, at, _ := hub.get()
		if len(at) != 2 || at[1].Sub(at[0]) != 120*time.Second {
			t.Fatalf("reports at %v; want the second 120 s after the first (interval adopted)", at)
		}
		// An interval under the floor is clamped to it.
		hub.set(func(f *fakeHub) { f.env.PollInterval = 5 * time.Second })
		time.Sleep(120 * time.Second) // third report adopts 5 s → 60 s
		time.Sleep(61 * time.Second)
		synctest.Wait()
		_, at, _ = hub.get()
		if len(at) != 4 || at[3].Sub(at[2]) != MinPoll {
			t.Fatalf("reports at %v; want the fourth %v after the third", at, MinPoll)
		}
		if c.Stats().Interval != MinPoll {
			t.Errorf("Stats().Interval = %v; want %v", c.Stats().Interval, MinPoll)
		}
		stop()
		reps, _, _ := hub.get()
		for i, r := range reps {
			if r.Seq != uint64(i+1) || r.HostID != "h" || r.AgentVersion != "v" {
				t.Errorf("report %d = seq %d host %q version %q", i, r.Seq, r.HostID, r.AgentVersion)
			}
		}
	})
}

func TestChannelBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &fakeHub{fail: &TransportError{Op: "report", Err: errors.New("connection refused")}}
		c := &Channel{Hub: hub, Logger: quiet(), MinPoll: time.Second,
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil }}
		hub.set(func(f *fakeHub) { f.env.PollInterval = 60 * time.Second })
		stop := runChannel(t, c)
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		_, at, _ := hub.get()
		// 5 s doubling, jittered to [d/2, d], capped at the 900 s default
		// interval and at 5 min: at most every 5 min, never faster than
		// 2.5 s, and no more than ~12 attempts in 10 minutes.
		if len(at) < 4 || len(at) > 14 {
			t.Fatalf("%d attempts in 10 minutes; want backoff (4..14)", len(at))
		}
		for i := 1; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap < 2500*time.Millisecond || gap > MaxBackoff {
				t.Errorf("gap %d = %v; want within [2.5s, %v]", i, gap, MaxBackoff)
			}
		}
		// The hub comes back: the next attempt succeeds, then the schedule resumes.
		hub.set(func(f *fakeHub) { f.fail = nil })
		time.Sleep(MaxBackoff + time.Second)
		synctest.Wait()
		time.Sleep(121 * time.Second)
		synctest.Wait()
		reps, at2, _ := hub.get()
		if len(reps) < 3 {
			t.Fatalf("%d reports accepted after the hub returned; want the schedule to resume", len(reps))
		}
		for i := len(at2) - 2; i > len(at2)-len(reps); i-- {
			if gap := at2[i+1].Sub(at2[i]); gap != 60*time.Second {
				t.Errorf("gap between accepted reports = %v; want the 60 s interval", gap)
			}
		}
		if c.Stats().Failures < 4 || c.Stats().LastError != "" {
			t.Errorf("Stats = %+v", c.Stats())
		}
		stop()
	})
}

func TestChannelDesiredState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := json.RawMessage(`{"schema": 1, "guests": [{"vmid": 120, "hostname": "shop"}]}`)
		hub := &fakeHub{env: Envelope{PollInterval: 60 * time.Second, DesiredGeneration: 1},
			state: FetchedState{Generation: 1, Raw: good}}
		store := &memStore{}
		var got []int64
		c := &Channel{Hub: hub, Store: store, Logger: quiet(),
			Collect:   func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			OnDesired: func(g int64, d *DesiredState) { got = append(got, g) }}
		stop := runChannel(t, c)
		synctest.Wait()
		if gen, d := c.Desired(); gen != 1 || len(d.Guests) != 1 || len(got) != 1 {
			t.Fatalf("Desired = %d %v, OnDesired %v; want generation 1 accepted once", gen, d, got)
		}

		// A malformed generation 2 is refused, the last good one kept,
		// the refusal reported, and it is not fetched again.
		hub.set(func(f *fakeHub) {
			f.env.DesiredGeneration = 2
			f.state = FetchedState{Generation: 2, Raw: json.RawMessage(`{"schema": 1, "guests": [{"vmid": 1}]}`)}
		})
		time.Sleep(61 * time.Second)
		synctest.Wait()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		reps, _, fetches := hub.get()
		if gen, _ := c.Desired(); gen != 1 || fetches != 2 {
			t.Fatalf("generation %d after %d fetches; want 1 kept and generation 2 fetched once", gen, fetches)
		}
		last := reps[len(reps)-1].DesiredState
		if last.Generation != 1 || last.Refused == nil || last.Refused.Generation != 2 ||
			!strings.Contains(last.Refused.Error, "guests[0].vmid") {
			t.Fatalf("report's desired_state = %+v; want the refusal of 2 named", last)
		}

		// Generation 3 fixes it.
		hub.set(func(f *fakeHub) {
			f.env.DesiredGeneration = 3
			f.state = FetchedState{Generation: 3, Raw: json.RawMessage(`{"schema": 1, "guests": []}`)}
		})
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if gen, _ := c.Desired(); gen != 3 || len(got) != 2 {
			t.Fatalf("generation %d, OnDesired %v; want 3 accepted", gen, got)
		}
		stop()

		// A restart keeps it and tells the caller once.
		got = nil
		c2 := &Channel{Hub: hub, Store: store, Logger: quiet(),
			Collect:   func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			OnDesired: func(g int64, d *DesiredState) { got = append(got, g) }}
		stop = runChannel(t, c2)
		synctest.Wait()
		if gen, _ := c2.Desired(); gen != 3 || len(got) != 1 || got[0] != 3 {
			t.Fatalf("after a restart: generation %d, OnDesired %v", gen, got)
		}
		stop()
	})
}

func TestChannelBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &fakeHub{env: Envelope{PollInterval: 60 * time.Second, Blocked: true, DesiredGeneration: 4},
			state: FetchedState{Generation: 4, Raw: json.RawMessage(`{"schema": 1, "guests": []}`)}}
		var blocked []bool
		c := &Channel{Hub: hub, Logger: quiet(),
			Collect:   func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			OnBlocked: func(b bool) { blocked = append(blocked, b) }}
		stop := runChannel(t, c)
		time.Sleep(61 * time.Second)
		synctest.Wait()
		reps, _, fetches := hub.get()
		if !c.Blocked() || fetches != 0 || !reps[1].Blocked || reps[0].Blocked {
			t.Fatalf("blocked %v, fetches %d, reports %v; want blocked acknowledged in the second report and nothing fetched", c.Blocked(), fetches, reps)
		}
		hub.set(func(f *fakeHub) { f.env.Blocked = false })
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if _, _, fetches = hub.get(); c.Blocked() || fetches != 1 {
			t.Fatalf("after unblocking: blocked %v, fetches %d; want the desired state fetched", c.Blocked(), fetches)
		}
		stop()
		if len(blocked) != 3 || blocked[0] || !blocked[1] || blocked[2] {
			t.Errorf("OnBlocked calls %v; want [false true false]", blocked)
		}
	})
}

func TestChannelCursor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &fakeHub{env: Envelope{PollInterval: 60 * time.Second}}
		var sinces []Cursor
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		c := &Channel{Hub: hub, Logger: quiet(), Collect: func(_ context.Context, since Cursor) (*Report, error) {
			sinces = append(sinces, since)
			return &Report{Runs: []Run{{ID: "r-1", Ended: t0}, {ID: "r-2", Ended: t0.Add(time.Second)}}}, nil
		}}
		hub.set(func(f *fakeHub) { f.fail = &HTTPError{Op: "report", Status: 503} })
		stop := runChannel(t, c)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		hub.set(func(f *fakeHub) { f.fail = nil })
		time.Sleep(130 * time.Second)
		synctest.Wait()
		stop()
		// Failed attempts do not move the cursor; the accepted one does.
		last := sinces[len(sinces)-1]
		if !sinces[1].Ended.IsZero() || last.ID != "r-2" {
			t.Fatalf("cursors %v; want zero until a report is accepted, then r-2", sinces)
		}
	})
}

func TestEncodeReportBounded(t *testing.T) {
	rep := &Report{HostID: "h"}
	const n = 12000
	for i := range n {
		rep.Runs = append(rep.Runs, Run{ID: "r-" + strings.Repeat("x", 20), Error: strings.Repeat("e", 2000), Ended: time.Unix(int64(i), 0)})
	}
	b, err := EncodeReport(rep, MaxReportBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxReportBytes || !rep.Truncated || rep.RunsOmitted == 0 || len(rep.Runs)+rep.RunsOmitted != n {
		t.Fatalf("%d bytes, truncated %v, %d runs + %d omitted", len(b), rep.Truncated, len(rep.Runs), rep.RunsOmitted)
	}
	small := &Report{HostID: "h", Runs: []Run{{ID: "r"}}}
	if _, err := EncodeReport(small, MaxReportBytes); err != nil || small.Truncated {
		t.Fatalf("a small report was cut: %v", err)
	}
}

// TestEncodeReportCutOrder: audit entries go before runs, runs before
// plans, pending operations last of all.
func TestEncodeReportCutOrder(t *testing.T) {
	entry := json.RawMessage(`{"what":"` + strings.Repeat("a", 1000) + `"}`)
	build := func(audit, runs, plans, pending int) *Report {
		rep := &Report{HostID: "h"}
		for i := range audit {
			rep.Audit = append(rep.Audit, AuditEntry{Seq: int64(i + 1), Entry: entry})
		}
		for i := range runs {
			rep.Runs = append(rep.Runs, Run{ID: strings.Repeat("r", 1000), Ended: time.Unix(int64(i), 0)})
		}
		for i := range plans {
			rep.Plans = append(rep.Plans, Plan{JobID: fmt.Sprint("p", i), Trigger: strings.Repeat("t", 1000), Status: "succeeded"})
		}
		for range pending {
			rep.Pending = append(rep.Pending, PendingOp{ID: "p", OpBlobB64: strings.Repeat("b", 1000)})
		}
		return rep
	}
	for _, tc := range []struct {
		name                                     string
		rep                                      *Report
		limit                                    int
		wantAudit, wantRuns, wantPlans, wantPend bool // kept in part or whole
	}{
		{"audit cut first", build(100, 10, 10, 10), 40 << 10, true, true, true, true},
		{"then runs", build(100, 100, 10, 10), 40 << 10, false, true, true, true},
		{"then plans", build(100, 100, 100, 10), 40 << 10, false, false, true, true},
		{"pending last", build(100, 100, 100, 100), 40 << 10, false, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nAudit, nRuns, nPlans, nPend := len(tc.rep.Audit), len(tc.rep.Runs), len(tc.rep.Plans), len(tc.rep.Pending)
			b, err := EncodeReport(tc.rep, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			r := tc.rep
			if len(b) > tc.limit || !r.Truncated || len(r.Audit)+r.AuditOmitted != nAudit || len(r.Runs)+r.RunsOmitted != nRuns ||
				len(r.Plans)+r.PlansOmitted != nPlans || len(r.Pending)+r.PendingOmitted != nPend {
				t.Fatalf("%d bytes; audit %d+%d runs %d+%d plans %d+%d pending %d+%d", len(b), len(r.Audit), r.AuditOmitted,
					len(r.Runs), r.RunsOmitted, len(r.Plans), r.PlansOmitted, len(r.Pending), r.PendingOmitted)
			}
			if (len(r.Audit) > 0) != tc.wantAudit || (len(r.Runs) > 0) != tc.wantRuns || (len(r.Plans) > 0) != tc.wantPlans || (len(r.Pending) > 0) != tc.wantPend {
				t.Errorf("kept audit %d runs %d plans %d pending %d", len(r.Audit), len(r.Runs), len(r.Plans), len(r.Pending))
			}
			if r.PlansOmitted > 0 && (r.RunsOmitted != nRuns || r.AuditOmitted != nAudit) {
				t.Errorf("plans cut before the audit and the runs were")
			}
			if r.PendingOmitted > 0 && (r.RunsOmitted != nRuns || r.AuditOmitted != nAudit || r.PlansOmitted != nPlans || len(r.Guests) != 0) {
				t.Errorf("pending operations cut before everything else was")
			}
		})
	}
}

// TestCutPlansStayForTheNextReport: a plan a report had no room for is
// sent with the next one; a plan sent is not sent again.
func TestCutPlansStayForTheNextReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &fakeHub{env: Envelope{PollInterval: 60 * time.Second}}
		c := &Channel{Hub: hub, HostID: "h", Logger: quiet(), Collect: func(context.Context, Cursor) (*Report, error) {
			// The host parts fill most of the 4 MiB: one plan fits beside them, not two.
			return &Report{Guests: []Guest{{VMID: 100, Name: strings.Repeat("g", MaxReportBytes-300<<10)}}}, nil
		}}
		for i := range 2 {
			big := make([]string, maxPlanChanges)
			for j := range big {
				big[j] = strings.Repeat("c", 900)
			}
			c.addPlan(Plan{JobID: fmt.Sprint("p", i), Status: "succeeded", Changes: big})
		}
		stop := runChannel(t, c)
		synctest.Wait()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		stop()
		reps, _, _ := hub.get()
		if len(reps) < 3 {
			t.Fatalf("%d reports", len(reps))
		}
		var sent []string
		for _, r := range reps {
			for _, p := range r.Plans {
				sent = append(sent, p.JobID)
			}
		}
		if strings.Join(sent, ",") != "p0,p1" || reps[0].PlansOmitted != 1 || len(reps[0].Guests) != 1 {
			t.Errorf("plans sent %v (first report omitted %d, guests %d); want p0 then p1, each once, the guest kept", sent, reps[0].PlansOmitted, len(reps[0].Guests))
		}
	})
}
