package channel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

func planBlob(t testing.TB, host, trigger, params string) []byte {
	t.Helper()
	b := `{"op":"felhom.plan","target":{"host_id":"` + host + `"},"trigger":"` + trigger + `"`
	if params != "" {
		b += `,"params":` + params
	}
	return []byte(b + "}")
}

func TestParsePlanRequest(t *testing.T) {
	for _, tc := range []struct {
		name, blob string
		want       string // error; "" for accepted
	}{
		{"ok", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"backup","params":{"vmids":[101]}}`, ""},
		{"no params", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"backup"}`, ""},
		{"other host", `{"op":"felhom.plan","target":{"host_id":"h2"},"trigger":"backup"}`, `target.host_id: it is for host "h2", this is "h"`},
		{"no host", `{"op":"felhom.plan","trigger":"backup"}`, `target.host_id`},
		{"signed-op fields", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"backup","nonce":"0123456789abcdef"}`, `unknown field "nonce"`},
		{"guest in target", `{"op":"felhom.plan","target":{"host_id":"h","guest_id":1},"trigger":"backup"}`, `unknown field "guest_id"`},
		{"bad trigger", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"../x"}`, `trigger: "../x" is not a playbook or trigger name`},
		{"no trigger", `{"op":"felhom.plan","target":{"host_id":"h"}}`, `trigger: "" is not`},
		{"params a list", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"b","params":[1]}`, "params: not a JSON object"},
		{"trailing", `{"op":"felhom.plan","target":{"host_id":"h"},"trigger":"b"} {}`, "plan request: trailing data after the JSON value"},
		{"other op", `{"op":"backup","target":{"host_id":"h"},"trigger":"b"}`, `op is "backup"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParsePlanRequest([]byte(tc.blob), "h")
			if tc.want == "" {
				if err != nil || r.Trigger == "" || len(r.Params) == 0 {
					t.Fatalf("= %+v, %v; want accepted", r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
}

// TestParseJobsPlan: a plan job needs no signature and is told apart by
// its op; a signed job's blob is untouched by the check.
func TestParseJobsPlan(t *testing.T) {
	plan := base64.StdEncoding.EncodeToString(planBlob(t, "h", "backup", ""))
	signed := base64.StdEncoding.EncodeToString([]byte(`{"op":"backup"}`))
	body := `{"jobs":[{"job_id":"p","op_blob_b64":"` + plan + `"},{"job_id":"s","op_blob_b64":"` + signed + `"},` +
		`{"job_id":"ps","op_blob_b64":"` + plan + `","sig_armored":"S"}]}`
	jobs, err := ParseJobs([]byte(body))
	if err != nil || len(jobs) != 3 {
		t.Fatalf("ParseJobs = %v, %v", jobs, err)
	}
	if j := jobs[0]; j.Kind != JobKindPlan || j.Err != nil || !strings.Contains(string(j.Blob), `"trigger":"backup"`) {
		t.Errorf("unsigned plan job = %+v; want a plan job", j)
	}
	if j := jobs[1]; j.Kind != "" || j.Err == nil || !strings.Contains(j.Err.Error(), "not signed") {
		t.Errorf("unsigned signed-op job = %+v; want refused as not signed", j)
	}
	if j := jobs[2]; j.Kind != JobKindPlan || j.Err != nil {
		t.Errorf("plan job with a signature = %+v; want a plan job (the signature is not needed)", j)
	}
}

func TestChannelPlanJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &jobsHub{fakeHub: fakeHub{env: Envelope{PollInterval: 60 * time.Second, HasSignedOps: true}}}
		hub.queue = []Job{
			{ID: "p1", Kind: JobKindPlan, Blob: planBlob(t, "h", "backup", `{"vmids":[101]}`)},
			{ID: "p2", Kind: JobKindPlan, Blob: planBlob(t, "h", "nope", "")},
			{ID: "p3", Kind: JobKindPlan, Blob: planBlob(t, "other", "backup", "")},
			{ID: "s1", Blob: []byte("op"), Sig: []byte("sig")},
		}
		var mu sync.Mutex
		planned := map[string]int{}
		store := &memStore{}
		c := &Channel{Hub: hub, HostID: "h", Store: store, Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			Jobs: func(context.Context, Job) (JobOutcome, error) {
				return JobOutcome{Outcome: JobAccepted, Run: "r-1"}, nil
			},
			Plans: func(_ context.Context, r PlanRequest) (*Plan, error) {
				mu.Lock()
				defer mu.Unlock()
				planned[r.Trigger]++
				if r.Trigger == "nope" {
					return nil, errors.New(`trigger "nope": no playbook answers it`)
				}
				steps := make([]PlanStep, 250)
				for i := range steps {
					steps[i] = PlanStep{What: "vzdump 101 → usb-backup (snapshot, zstd)", Method: "POST", Path: "/nodes/pve/vzdump", Outcome: "OK"}
				}
				return &Plan{Playbook: "backup", Status: "succeeded", Steps: steps, Params: map[string]any{"vmids": []any{101}},
					Result: json.RawMessage(`{"backed_up":[101]}`)}, nil
			}}
		stop := runChannel(t, c)
		// One plan per fetch: p1 now, the signed job too; p2 and p3 wait.
		synctest.Wait()
		hub.jmu.Lock()
		clears := strings.Join(hub.clears, ",")
		hub.jmu.Unlock()
		if clears != "p1,s1" {
			t.Fatalf("cleared %q after the first fetch; want p1 (one plan per fetch) and s1", clears)
		}
		for range 3 {
			time.Sleep(61 * time.Second)
			synctest.Wait()
		}
		hub.jmu.Lock()
		clears = strings.Join(hub.clears, ",")
		hub.jmu.Unlock()
		if clears != "p1,s1,p2,p3" {
			t.Fatalf("cleared %q; want every job cleared, one plan per fetch", clears)
		}
		mu.Lock()
		if planned["backup"] != 1 || planned["nope"] != 1 {
			t.Errorf("plans made %v; want backup once, nope once (p3 refused before the handler)", planned)
		}
		mu.Unlock()
		reps, _, _ := hub.get()
		outcomes := map[string]JobOutcome{}
		var plans []Plan
		for _, r := range reps {
			for _, o := range r.Jobs {
				outcomes[o.JobID] = o
			}
			plans = append(plans, r.Plans...)
		}
		if o := outcomes["p1"]; o.Outcome != JobPlanned || o.Kind != JobKindPlan {
			t.Errorf("p1 outcome %+v; want planned, kind plan", o)
		}
		if o := outcomes["p2"]; o.Outcome != JobRefused || o.Kind != JobKindPlan || !strings.Contains(o.Reason, `"nope": no playbook answers it`) {
			t.Errorf("p2 outcome %+v; want refused naming the trigger", o)
		}
		if o := outcomes["p3"]; o.Outcome != JobRefused || !strings.Contains(o.Reason, `for host "other"`) {
			t.Errorf("p3 outcome %+v; want refused naming the host", o)
		}
		if o := outcomes["s1"]; o.Kind != "" || o.Outcome != JobAccepted {
			t.Errorf("s1 outcome %+v; want a signed job accepted", o)
		}
		if len(plans) != 1 {
			t.Fatalf("%d plans reported; want p1's once", len(plans))
		}
		p := plans[0]
		if p.JobID != "p1" || p.Trigger != "backup" || p.Playbook != "backup" || p.Status != "succeeded" ||
			len(p.Steps) != maxPlanSteps || p.StepsOmitted != 50 || !p.Truncated || p.At.IsZero() {
			t.Errorf("plan = %+v; want p1's, steps cut to %d with 50 omitted", p, maxPlanSteps)
		}
		if s := c.Stats(); s.JobsPlanned != 1 || s.JobsRefused != 2 || s.JobsAccepted != 1 {
			t.Errorf("stats %+v; want 1 planned, 2 refused, 1 accepted", s)
		}
		// A plan job sent again (its DELETE lost, or after a restart) is
		// only cleared again: planned once.
		stop()
		restartWith(t, hub, c, Job{ID: "p1", Kind: JobKindPlan, Blob: planBlob(t, "h", "backup", "")})
		mu.Lock()
		defer mu.Unlock()
		if planned["backup"] != 1 {
			t.Errorf("p1 planned %d times across a restart; want once", planned["backup"])
		}
		if st, _, _ := store.LoadState(t.Context()); len(st.Plans) != 0 {
			t.Errorf("state keeps %d plans after they were reported; want none", len(st.Plans))
		}
	})
}

// TestChannelPlanInterrupted: a plan cut short by the channel stopping
// leaves its job queued and undecided.
func TestChannelPlanInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := &jobsHub{fakeHub: fakeHub{env: Envelope{PollInterval: 60 * time.Second, HasSignedOps: true}}}
		hub.queue = []Job{{ID: "p1", Kind: JobKindPlan, Blob: planBlob(t, "h", "backup", "")}}
		started := make(chan struct{})
		c := &Channel{Hub: hub, HostID: "h", Logger: quiet(),
			Collect: func(context.Context, Cursor) (*Report, error) { return &Report{}, nil },
			Jobs:    func(context.Context, Job) (JobOutcome, error) { return JobOutcome{}, nil },
			Plans: func(ctx context.Context, _ PlanRequest) (*Plan, error) {
				close(started)
				<-ctx.Done()
				return &Plan{Status: PlanNotPlanned, Error: ctx.Err().Error()}, nil
			}}
		stop := runChannel(t, c)
		<-started
		stop()
		if len(hub.clears) != 0 || len(c.st.Jobs) != 0 || len(c.st.Plans) != 0 {
			t.Errorf("clears %v, jobs %v, plans %v; want the interrupted plan job undecided and queued", hub.clears, c.st.Jobs, c.st.Plans)
		}
	})
}

func TestPlanBound(t *testing.T) {
	p := Plan{Status: "failed", Error: strings.Repeat("e", 5000), Result: json.RawMessage(`"` + strings.Repeat("r", 20000) + `"`),
		Changes: make([]string, 300), Assumptions: []string{strings.Repeat("a", 1000)},
		Params: map[string]any{"big": strings.Repeat("p", 9000)}}
	p.bound()
	b, _ := json.Marshal(p)
	if !p.Truncated || len(p.Changes) != maxPlanChanges || len(p.Error) > maxPlanError+len(clip.Ellipsis) || len(p.Result) > maxPlanResult ||
		len(p.Assumptions[0]) > maxPlanText+len(clip.Ellipsis) || p.Params != nil || !json.Valid(p.Result) || len(b) > 64<<10 {
		t.Errorf("bound plan: %d bytes, truncated %v, %d changes, error %d, result %d, params %v", len(b), p.Truncated, len(p.Changes), len(p.Error), len(p.Result), p.Params)
	}
	small := Plan{Status: "succeeded"}
	small.bound()
	if small.Truncated || small.Steps == nil || small.Changes == nil || small.Assumptions == nil {
		t.Errorf("a small plan: %+v; want untouched, lists empty not null", small)
	}
}
