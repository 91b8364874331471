package channel

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// jobsHub is a fakeHub with a jobs queue.
type jobsHub struct {
	fakeHub
	jmu      sync.Mutex
	queue    []Job
	clears   []string
	clearErr error
	fetched  int
}

func (h *jobsHub) Jobs(context.Context) ([]Job, error) {
	h.jmu.Lock()
	defer h.jmu.Unlock()
	h.fetched++
	return append([]Job(nil), h.queue...), nil
}

func (h *jobsHub) ClearJob(_ context.Context, id string) error {
	h.jmu.Lock()
	defer h.jmu.Unlock()
	if h.clearErr != nil {
		return h.clearErr
	}
	h.clears = append(h.clears, id)
	for i, j := range h.queue {
		if j.ID == id {
			h.queue = append(h.queue[:i], h.queue[i+1:]...)
			break
		}
	}
	return nil
}

func TestChannelJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &jobsHub{fakeHub: fakeHub{env: Envelope{PollInterval: 60 * time.Second, HasSignedOps: true}}}
		hub.queue = []Job{
			{ID: "good", Blob: []byte("op"), Sig: []byte("sig")},
			{ID: "forged", Blob: []byte("op"), Sig: []byte("bad")},
			{ID: "later", Blob: []byte("op"), Sig: []byte("io")},
			{ID: "broken", Err: errors.New("op_blob_b64 is not base64")},
		}
		var mu sync.Mutex
		calls := map[string]int{}
		ioFails := true
		store := &memStore{}
		c := &Channel{Hub: hub, Store: store, Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			Jobs: func(_ context.Context, j Job) (JobOutcome, error) {
				mu.Lock()
				defer mu.Unlock()
				calls[j.ID]++
				switch string(j.Sig) {
				case "sig":
					return JobOutcome{Outcome: JobAccepted, Run: "r-1", RunStatus: "running"}, nil
				case "io":
					if ioFails {
						return JobOutcome{}, errors.New("the nonce could not be recorded")
					}
					return JobOutcome{Outcome: JobAccepted, Run: "r-2"}, nil
				}
				return JobOutcome{Outcome: JobRefused, Reason: "signature does not verify"}, nil
			}}
		stop := runChannel(t, c)
		synctest.Wait()
		hub.jmu.Lock()
		clears := append([]string(nil), hub.clears...)
		hub.jmu.Unlock()
		if strings.Join(clears, ",") != "good,forged,broken" {
			t.Fatalf("cleared %v; want the accepted and the refused ones, not the undecided one", clears)
		}
		mu.Lock()
		if calls["broken"] != 0 || calls["good"] != 1 {
			t.Errorf("handler calls %v; want a malformed job refused without it, each other once", calls)
		}
		mu.Unlock()
		// The next report carries the three outcomes and the note about the undecided one.
		time.Sleep(61 * time.Second)
		synctest.Wait()
		reps, _, _ := hub.get()
		if len(reps) != 2 {
			t.Fatalf("%d reports", len(reps))
		}
		if len(reps[0].Jobs) != 0 {
			t.Errorf("first report jobs %v; want none (decided after it)", reps[0].Jobs)
		}
		got := map[string]JobOutcome{}
		for _, o := range reps[1].Jobs {
			got[o.JobID] = o
		}
		if got["good"].Outcome != JobAccepted || got["good"].Run != "r-1" || got["forged"].Outcome != JobRefused ||
			!strings.Contains(got["broken"].Reason, "malformed job: op_blob_b64") || len(got) != 3 {
			t.Errorf("second report jobs %+v", reps[1].Jobs)
		}
		if !strings.Contains(reps[1].Errors["jobs"], "job later: the nonce could not be recorded") {
			t.Errorf("errors %v; want the undecided job named", reps[1].Errors)
		}
		// The undecided job is decided on a later fetch, then the hub sends
		// "good" again (as if its DELETE had been lost): only cleared again.
		mu.Lock()
		ioFails = false
		mu.Unlock()
		hub.jmu.Lock()
		hub.queue = append(hub.queue, Job{ID: "good", Blob: []byte("op"), Sig: []byte("sig")})
		hub.jmu.Unlock()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		time.Sleep(61 * time.Second)
		synctest.Wait()
		reps, _, _ = hub.get()
		mu.Lock()
		if calls["good"] != 1 || calls["later"] != 3 {
			t.Errorf("handler calls %v; want good once, later three times (undecided twice)", calls)
		}
		mu.Unlock()
		n := 0
		for _, r := range reps {
			for _, o := range r.Jobs {
				if o.JobID == "good" {
					n++
				}
			}
		}
		if n != 1 {
			t.Errorf("good reported %d times; want once", n)
		}
		if last := reps[len(reps)-1]; len(last.Jobs) != 1 || last.Jobs[0].JobID != "later" || last.Jobs[0].Run != "r-2" {
			t.Errorf("last report jobs %v; want only the late one's outcome", last.Jobs)
		}
		if s := c.Stats(); s.JobsAccepted != 2 || s.JobsRefused != 2 {
			t.Errorf("stats %+v; want 2 accepted, 2 refused", s)
		}
		stop()
		// The outcomes survive a restart: a new channel on the same state
		// clears a resent job without deciding it again.
		restartWith(t, hub, c, Job{ID: "forged", Blob: []byte("op"), Sig: []byte("bad")})
		mu.Lock()
		defer mu.Unlock()
		if calls["forged"] != 1 {
			t.Errorf("forged decided %d times across a restart; want once", calls["forged"])
		}
	})
}

// TestChannelJobsWaiting: a job its handler says cannot be decided yet
// (JobWaiting: not valid yet) is neither cleared nor recorded as decided;
// each report while it waits carries it as waiting with its reason; once
// the handler decides it, it is reported once and cleared.
func TestChannelJobsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &jobsHub{fakeHub: fakeHub{env: Envelope{PollInterval: 60 * time.Second, HasSignedOps: true}}}
		hub.queue = []Job{{ID: "future", Blob: []byte("op"), Sig: []byte("sig")}}
		var mu sync.Mutex
		valid, calls := false, 0
		c := &Channel{Hub: hub, Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			Jobs: func(context.Context, Job) (JobOutcome, error) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if !valid {
					return JobOutcome{Outcome: JobWaiting, Reason: "not yet valid: issued at ..."}, nil
				}
				return JobOutcome{Outcome: JobAccepted, Run: "r-1"}, nil
			}}
		stop := runChannel(t, c)
		defer stop()
		synctest.Wait()
		for range 2 {
			time.Sleep(61 * time.Second)
			synctest.Wait()
		}
		hub.jmu.Lock()
		if len(hub.clears) != 0 {
			t.Errorf("cleared %v while the job waits; want none", hub.clears)
		}
		hub.jmu.Unlock()
		reps, _, _ := hub.get()
		for i, r := range reps[1:] {
			if len(r.Jobs) != 1 || r.Jobs[0].JobID != "future" || r.Jobs[0].Outcome != JobWaiting || !strings.Contains(r.Jobs[0].Reason, "not yet valid") {
				t.Errorf("report %d jobs %+v; want future waiting, with its reason", i+1, r.Jobs)
			}
		}
		if s := c.Stats(); s.JobsAccepted != 0 || s.JobsRefused != 0 {
			t.Errorf("stats %+v; a waiting job is not decided", s)
		}
		mu.Lock()
		valid = true
		mu.Unlock()
		for range 3 {
			time.Sleep(61 * time.Second)
			synctest.Wait()
		}
		hub.jmu.Lock()
		if strings.Join(hub.clears, ",") != "future" {
			t.Errorf("cleared %v; want future once it was accepted", hub.clears)
		}
		hub.jmu.Unlock()
		reps, _, _ = hub.get()
		accepted := 0
		for _, r := range reps {
			for _, o := range r.Jobs {
				if o.Outcome == JobAccepted {
					accepted++
				}
			}
		}
		if last := reps[len(reps)-1]; accepted != 1 || len(last.Jobs) != 0 {
			t.Errorf("accepted reported %d times, last report %+v; want once, then nothing", accepted, last.Jobs)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 4 {
			t.Errorf("handler called %d times; want 4 (waiting three times, then accepted)", calls)
		}
	})
}

func TestChannelJobsBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &jobsHub{fakeHub: fakeHub{env: Envelope{PollInterval: 60 * time.Second, HasSignedOps: true, Blocked: true}}}
		hub.queue = []Job{{ID: "j", Blob: []byte("op"), Sig: []byte("sig")}}
		c := &Channel{Hub: hub, Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			Jobs: func(context.Context, Job) (JobOutcome, error) {
				t.Error("a job was decided while the hub blocks the host")
				return JobOutcome{}, nil
			}}
		stop := runChannel(t, c)
		synctest.Wait()
		stop()
		if hub.fetched != 0 {
			t.Errorf("jobs fetched %d times while blocked", hub.fetched)
		}
	})
}

func TestParseJobs(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(`{"op":"x"}`))
	for _, tc := range []struct {
		name, body string
		wantErr    string // of the answer
		jobErr     string // of the first job
		id         string
	}{
		{name: "ok", body: `{"jobs":[{"job_id":"job-1","op_blob_b64":"` + b64 + `","sig_armored":"S"}]}`, id: "job-1"},
		{name: "integer id", body: `{"jobs":[{"job_id":17,"op_blob_b64":"` + b64 + `","sig_armored":"S"}]}`, id: "17"},
		{name: "empty", body: `{"jobs":[]}`},
		{name: "unsigned", body: `{"jobs":[{"job_id":"a","op_blob_b64":"` + b64 + `"}]}`, id: "a", jobErr: "not signed"},
		{name: "not base64", body: `{"jobs":[{"job_id":"a","op_blob_b64":"%%%","sig_armored":"S"}]}`, id: "a", jobErr: "not base64"},
		{name: "path in id", body: `{"jobs":[{"job_id":"../x","op_blob_b64":"a","sig_armored":"S"}]}`, wantErr: "jobs[0].job_id"},
		{name: "no id", body: `{"jobs":[{"op_blob_b64":"a","sig_armored":"S"}]}`, wantErr: "is missing"},
		{name: "id float", body: `{"jobs":[{"job_id":1.5,"op_blob_b64":"a","sig_armored":"S"}]}`, wantErr: "not an integer"},
		{name: "jobs not a list", body: `{"jobs":"x"}`, wantErr: "jobs"},
		{name: "trailing", body: `{"jobs":[]} x`, wantErr: "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs, err := ParseJobs([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.id == "" {
				if len(jobs) != 0 {
					t.Fatalf("jobs = %v", jobs)
				}
				return
			}
			j := jobs[0]
			if j.ID != tc.id {
				t.Errorf("id = %q; want %q", j.ID, tc.id)
			}
			if tc.jobErr == "" && (j.Err != nil || string(j.Blob) != `{"op":"x"}` || string(j.Sig) != "S") {
				t.Errorf("job = %+v", j)
			}
			if tc.jobErr != "" && (j.Err == nil || !strings.Contains(j.Err.Error(), tc.jobErr)) {
				t.Errorf("job err = %v; want %q", j.Err, tc.jobErr)
			}
		})
	}
}

func TestClientJobs(t *testing.T) {
	var deletes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/hosts/h1/jobs":
			w.Write([]byte(`{"jobs":[{"job_id":"job-1","op_blob_b64":"eA==","sig_armored":"S"}]}`))
		case r.Method == http.MethodDelete && r.URL.Path == "/api/v1/hosts/h1/jobs/job-1":
			deletes = append(deletes, r.URL.Path)
			w.Write([]byte(`{}`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such job"}`))
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	c, err := NewClient(Config{URL: srv.URL, HostID: "h1", APIKey: APIKey("k")})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := c.Jobs(t.Context())
	if err != nil || len(jobs) != 1 || string(jobs[0].Blob) != "x" {
		t.Fatalf("Jobs = %+v, %v", jobs, err)
	}
	if err := c.ClearJob(t.Context(), "job-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.ClearJob(t.Context(), "gone"); err != nil {
		t.Errorf("ClearJob of a job already gone = %v; want nil (idempotent)", err)
	}
	if err := c.ClearJob(t.Context(), "../x"); err == nil {
		t.Error("ClearJob accepted a path as a job id")
	}
	if len(deletes) != 1 {
		t.Errorf("deletes = %v", deletes)
	}
}

// restartWith queues jobs at hub and runs a new channel on c's state, host,
// jobs and plans until it is idle: what an agent restarted on the same
// state directory does with what the hub still holds.
func restartWith(t *testing.T, hub *jobsHub, c *Channel, jobs ...Job) {
	t.Helper()
	hub.jmu.Lock()
	hub.queue = jobs
	hub.jmu.Unlock()
	c2 := &Channel{Hub: hub, HostID: c.HostID, Store: c.Store, Logger: quiet(), Jobs: c.Jobs, Plans: c.Plans,
		Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil }}
	stop := runChannel(t, c2)
	synctest.Wait()
	stop()
}
