package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// createCases are CreateRuns inputs and what must come of them. They seed
// FuzzCreateRuns too.
var createCases = []struct {
	name     string
	source   Source
	key      string
	playbook string
	params   string
	wantText string // "" for success; else the error must be ErrInvalid and hold this
}{
	{name: "hub trigger with params", source: SourceHub, key: "trig-1", playbook: "backup", params: `{"storage":"usb","only":[101,102]}`},
	{name: "cli run without key or params", source: SourceCLI, playbook: "selftest"},
	{name: "timer tick as key", source: SourceTimer, key: "backup@2026-11-23T03:00:00Z", playbook: "backup", params: `{}`},
	{name: "redacted secret stored as given", source: SourceAPI, key: "k", playbook: "restore", params: `{"password":"<redacted>"}`},
	{name: "unicode names", source: SourceHub, key: "kulcs-é", playbook: "mentés", params: `"ő"`},
	{name: "unknown source", source: "cron", playbook: "backup", wantText: `trigger source "cron"`},
	{name: "empty source", source: "", playbook: "backup", wantText: "trigger source"},
	{name: "key with control character", source: SourceHub, key: "a\nb", playbook: "backup", wantText: "trigger key"},
	{name: "key not UTF-8", source: SourceHub, key: "\xff", playbook: "backup", wantText: "trigger key"},
	{name: "key too long", source: SourceHub, key: strings.Repeat("k", maxName+1), playbook: "backup", wantText: "trigger key is 513 bytes"},
	{name: "empty playbook", source: SourceCLI, playbook: "", wantText: "runs[0].Playbook is empty"},
	{name: "params not JSON", source: SourceHub, key: "t", playbook: "backup", params: `{"token":"s3cret"`, wantText: "runs[0].Params is not valid JSON"},
}

func TestCreateRuns(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	idFormat := regexp.MustCompile(`^r-20261123T193000-[0-9a-f]{8}$`)
	for _, tt := range createCases {
		t.Run(tt.name, func(t *testing.T) {
			var params []byte
			if tt.params != "" {
				params = []byte(tt.params)
			}
			runs, created, err := s.CreateRuns(ctx, Trigger{Source: tt.source, Key: tt.key, At: t0},
				[]NewRun{{Playbook: tt.playbook, Params: params}})
			if tt.wantText != "" {
				checkErr(t, "CreateRuns", err, ErrInvalid, tt.wantText)
				if strings.Contains(fmt.Sprint(err), "s3cret") {
					t.Errorf("CreateRuns error %q quotes the parameters", err)
				}
				return
			}
			if err != nil || !created || len(runs) != 1 {
				t.Fatalf("CreateRuns = %d runs, %v, %v; want 1 run created", len(runs), created, err)
			}
			want := Run{ID: runs[0].ID, Playbook: tt.playbook, Source: tt.source, Key: tt.key,
				Params: params, Status: runstate.Queued, Created: t0}
			if !idFormat.MatchString(want.ID) {
				t.Errorf("ID = %q; want %v", want.ID, idFormat)
			}
			if !equalRun(runs[0], want) {
				t.Errorf("CreateRuns returned %+v; want %+v", runs[0], want)
			}
			if got := get(t, s, want.ID); !equalRun(got, want) {
				t.Errorf("Get = %+v; want %+v", got, want)
			}
		})
	}
}

func TestCreateRunsInput(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	tests := []struct {
		name     string
		runs     []NewRun
		wantText string
	}{
		{"no runs", nil, "no runs to create"},
		{"playbook twice", []NewRun{{Playbook: "a"}, {Playbook: "b"}, {Playbook: "a"}}, `runs[2].Playbook "a" is listed twice`},
		{"bad version", []NewRun{{Playbook: "a", Version: "v\x00"}}, "runs[0].Version"},
		{"bad params of the second run", []NewRun{{Playbook: "a"}, {Playbook: "b", Params: []byte("nope")}}, "runs[1].Params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: tt.name}, tt.runs)
			checkErr(t, "CreateRuns", err, ErrInvalid, tt.wantText)
			// A refused trigger records nothing, not even its key.
			if runs, err := s.RunsByKey(ctx, SourceHub, tt.name); err != nil || len(runs) != 0 {
				t.Errorf("RunsByKey after refusal = %v, %v; want none", ids(runs), err)
			}
		})
	}
	if runs, err := s.List(ctx, Filter{}); err != nil || len(runs) != 0 {
		t.Errorf("List after refusals = %v, %v; want none", ids(runs), err)
	}
}

func TestCreateRunsIdempotent(t *testing.T) {
	ctx := context.Background()
	two := []NewRun{{Playbook: "backup"}, {Playbook: "notify"}}
	tests := []struct {
		name        string
		first, then Trigger
		wantSame    bool
	}{
		{"same hub key", Trigger{Source: SourceHub, Key: "k1"}, Trigger{Source: SourceHub, Key: "k1", At: t0.Add(time.Hour)}, true},
		{"same key from another source", Trigger{Source: SourceHub, Key: "k1"}, Trigger{Source: SourceAPI, Key: "k1"}, false},
		{"another key", Trigger{Source: SourceHub, Key: "k1"}, Trigger{Source: SourceHub, Key: "k2"}, false},
		{"no key", Trigger{Source: SourceCLI}, Trigger{Source: SourceCLI}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			first, created, err := s.CreateRuns(ctx, tt.first, two)
			if err != nil || !created || len(first) != 2 {
				t.Fatalf("first CreateRuns = %v, %v, %v; want 2 runs created", ids(first), created, err)
			}
			if err := s.MarkStarted(ctx, first[0].ID, "v1", "", t0); err != nil {
				t.Fatal(err)
			}
			// The replay names other playbooks: what counts is the key.
			then, created, err := s.CreateRuns(ctx, tt.then, []NewRun{{Playbook: "other"}})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.wantSame {
				if !created || len(then) != 1 || then[0].Playbook != "other" {
					t.Errorf("second CreateRuns = %v, created %v; want 1 new run", ids(then), created)
				}
				return
			}
			if created || !slices.Equal(ids(then), ids(first)) {
				t.Errorf("replay = %v, created %v; want %v, false", ids(then), created, ids(first))
			}
			// The replay returns the runs as they are now.
			if then[0].Status != runstate.Running || then[0].Version != "v1" {
				t.Errorf("replayed run status %s version %q; want running v1", then[0].Status, then[0].Version)
			}
			byKey, err := s.RunsByKey(ctx, tt.first.Source, tt.first.Key)
			if err != nil || !slices.Equal(ids(byKey), ids(first)) {
				t.Errorf("RunsByKey = %v, %v; want %v", ids(byKey), err, ids(first))
			}
		})
	}
}

func TestCreateRunsConcurrentSameKey(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 50
	type answer struct {
		ids     []string
		created bool
		err     error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			runs, created, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "burst"},
				[]NewRun{{Playbook: "backup"}, {Playbook: "notify"}})
			answers[i] = answer{ids(runs), created, err}
		})
	}
	wg.Wait()
	creators := 0
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("call %d: %v", i, a.err)
		}
		if a.created {
			creators++
		}
		if len(a.ids) != 2 || !slices.Equal(a.ids, answers[0].ids) {
			t.Errorf("call %d got runs %v; want the same 2 runs as call 0 (%v)", i, a.ids, answers[0].ids)
		}
	}
	if creators != 1 {
		t.Errorf("%d calls created runs; want exactly 1", creators)
	}
	if all, err := s.List(ctx, Filter{}); err != nil || len(all) != 2 {
		t.Errorf("List = %v, %v; want 2 runs", ids(all), err)
	}
}

func TestTransitions(t *testing.T) {
	ctx := context.Background()
	start := func(s *Store, id string) error { return s.MarkStarted(ctx, id, "", "", t0.Add(time.Second)) }
	finish := func(st runstate.Status) func(*Store, string) error {
		return func(s *Store, id string) error {
			return s.Finish(ctx, id, FinishInfo{Status: st, Error: "e-" + string(st), ErrorKind: "k", At: t0.Add(time.Minute)})
		}
	}
	type step struct {
		do       func(*Store, string) error
		wantIs   error
		wantText string
	}
	tests := []struct {
		name       string
		steps      []step
		wantStatus runstate.Status
		wantError  string
	}{
		{"start then succeed", []step{{do: start}, {do: finish(runstate.Succeeded)}}, runstate.Succeeded, "e-succeeded"},
		{"cancelled while queued", []step{{do: finish(runstate.Cancelled)}}, runstate.Cancelled, "e-cancelled"},
		{"start twice", []step{{do: start}, {do: start, wantIs: ErrStarted, wantText: "status running"}}, runstate.Running, ""},
		{"finish twice, first outcome stands", []step{{do: start}, {do: finish(runstate.TimedOut)},
			{do: finish(runstate.Succeeded), wantIs: ErrFinished, wantText: "status timed_out"}}, runstate.TimedOut, "e-timed_out"},
		{"start after finish", []step{{do: finish(runstate.Failed)}, {do: start, wantIs: ErrFinished}}, runstate.Failed, "e-failed"},
		{"finish with a live status", []step{{do: start}, {do: finish(runstate.Running), wantIs: ErrInvalid, wantText: `status "running" is not a terminal`}}, runstate.Running, ""},
		{"finish with an unknown status", []step{{do: finish("done"), wantIs: ErrInvalid, wantText: `"done"`}}, runstate.Queued, ""},
		{"finish with a bad result", []step{{do: func(s *Store, id string) error {
			return s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded, Result: []byte("{")})
		}, wantIs: ErrInvalid, wantText: "result is not valid JSON"}}, runstate.Queued, ""},
		{"start with a bad version", []step{{do: func(s *Store, id string) error {
			return s.MarkStarted(ctx, id, "a\tb", "", t0)
		}, wantIs: ErrInvalid, wantText: "version"}}, runstate.Queued, ""},
		{"start with a bad origin", []step{{do: func(s *Store, id string) error {
			return s.MarkStarted(ctx, id, "v1", "https://pve1:8006\nnode x", t0)
		}, wantIs: ErrInvalid, wantText: "origin"}}, runstate.Queued, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			id := create(t, s, "backup", t0).ID
			for i, st := range tt.steps {
				checkErr(t, fmt.Sprintf("step %d", i), st.do(s, id), st.wantIs, st.wantText)
			}
			r := get(t, s, id)
			if r.Status != tt.wantStatus || r.Error != tt.wantError {
				t.Errorf("after steps: status %s error %q; want %s %q", r.Status, r.Error, tt.wantStatus, tt.wantError)
			}
			if r.Status.Terminal() != !r.Ended.IsZero() {
				t.Errorf("status %s with Ended %v", r.Status, r.Ended)
			}
		})
	}
}

func TestTransitionsUnknownRun(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	checkErr(t, "MarkStarted", s.MarkStarted(ctx, "r-none", "", "", t0), ErrNotFound, "r-none")
	checkErr(t, "Finish", s.Finish(ctx, "r-none", FinishInfo{Status: runstate.Failed}), ErrNotFound, "r-none")
	_, err := s.Get(ctx, "r-none")
	checkErr(t, "Get", err, ErrNotFound, "r-none")
}

func TestRunRecord(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: "k", At: t0},
		[]NewRun{{Playbook: "backup", Version: "v-queued"}, {Playbook: "notify", Version: "v-n"}})
	if err != nil {
		t.Fatal(err)
	}
	b, n := runs[0].ID, runs[1].ID
	if err := s.MarkStarted(ctx, b, "v-started", "https://pve1:8006 node pve1", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkStarted(ctx, n, "", "", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	res := []byte(`{"backed_up":[101]}`)
	if err := s.Finish(ctx, b, FinishInfo{Status: runstate.Failed, Error: "permission denied", ErrorKind: "permission",
		Result: res, At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	want := Run{ID: b, Playbook: "backup", Version: "v-started", Source: SourceHub, Key: "k", Status: runstate.Failed,
		Error: "permission denied", ErrorKind: "permission", Created: t0, Started: t0.Add(time.Second),
		Ended: t0.Add(time.Minute), Result: res, Origin: "https://pve1:8006 node pve1"}
	if got := get(t, s, b); !equalRun(got, want) {
		t.Errorf("Get(backup) = %+v; want %+v", got, want)
	}
	// MarkStarted with "" keeps the version given at creation.
	if got := get(t, s, n); got.Version != "v-n" || got.Status != runstate.Running || got.Origin != "" {
		t.Errorf("Get(notify) version %q status %s origin %q; want v-n running, no origin", got.Version, got.Status, got.Origin)
	}
	// A zero time means now, not the zero time.
	before := time.Now()
	id := create(t, s, "x", time.Time{}).ID
	if c := get(t, s, id).Created; c.Before(before.Truncate(time.Second)) || c.Location() != time.UTC {
		t.Errorf("Created for a zero At = %v; want now in UTC", c)
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	// Six runs a minute apart, oldest first: a0 b1 a2 b3 a4 b5 (a = backup
	// from the hub, b = monitor from the timer); a2 is running.
	var all []Run
	for i := range 6 {
		pb, src := "backup", SourceHub
		if i%2 == 1 {
			pb, src = "monitor", SourceTimer
		}
		runs, _, err := s.CreateRuns(ctx, Trigger{Source: src, Key: fmt.Sprint(i), At: t0.Add(time.Duration(i) * time.Minute)},
			[]NewRun{{Playbook: pb}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, runs[0])
	}
	if err := s.MarkStarted(ctx, all[2].ID, "", "", t0); err != nil {
		t.Fatal(err)
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i].ID)
		}
		return out
	}
	tests := []struct {
		name     string
		f        Filter
		want     []string
		wantIs   error
		wantText string
	}{
		{name: "all, newest first", f: Filter{}, want: pick(5, 4, 3, 2, 1, 0)},
		{name: "playbook", f: Filter{Playbook: "backup"}, want: pick(4, 2, 0)},
		{name: "source", f: Filter{Source: SourceTimer}, want: pick(5, 3, 1)},
		{name: "status", f: Filter{Status: runstate.Running}, want: pick(2)},
		{name: "limit", f: Filter{Limit: 2}, want: pick(5, 4)},
		{name: "next page", f: Filter{Limit: 2, Before: all[4].ID}, want: pick(3, 2)},
		{name: "last page", f: Filter{Limit: 2, Before: all[1].ID}, want: pick(0)},
		{name: "page of one playbook", f: Filter{Playbook: "monitor", Before: all[5].ID}, want: pick(3, 1)},
		{name: "nothing matches", f: Filter{Playbook: "none"}, want: nil},
		{name: "unknown cursor", f: Filter{Before: "r-gone"}, wantIs: ErrNotFound, wantText: "filter before: run r-gone"},
		{name: "unknown status", f: Filter{Status: "done"}, wantIs: ErrInvalid, wantText: `filter status "done"`},
		{name: "unknown source", f: Filter{Source: "cron"}, wantIs: ErrInvalid, wantText: `filter source "cron"`},
		{name: "negative limit", f: Filter{Limit: -1}, wantIs: ErrInvalid, wantText: "filter limit -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := s.List(ctx, tt.f)
			checkErr(t, "List", err, tt.wantIs, tt.wantText)
			if got := ids(runs); !slices.Equal(got, tt.want) {
				t.Errorf("List(%+v) = %v; want %v", tt.f, got, tt.want)
			}
		})
	}
}

// TestListOrderWithinOneSecond pins the order of runs whose IDs share
// their time prefix: creation time decides, not the random suffix.
func TestListOrderWithinOneSecond(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var want []string
	for i := range 20 {
		want = append(want, create(t, s, "p", t0.Add(time.Duration(i)*time.Millisecond)).ID)
	}
	slices.Reverse(want)
	var got []string
	for f := (Filter{Limit: 3}); ; {
		page, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		f.Before = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged List = %v; want %v", got, want)
	}
}

// TestRunSignature: a run's sealed signature is kept from CreateRuns or
// SetSignature until it ends, and Finish clears it; a terminal run takes
// none.
func TestRunSignature(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceJob, Key: "job-1", At: t0},
		[]NewRun{{Playbook: "decommission", Params: []byte(`{"vmid":101}`), Signature: []byte("sealed-1")}})
	if err != nil {
		t.Fatal(err)
	}
	id := runs[0].ID
	if got, _ := s.Get(ctx, id); string(got.Signature) != "sealed-1" {
		t.Fatalf("Get().Signature = %q; want the one CreateRuns stored", got.Signature)
	}
	if err := s.SetSignature(ctx, id, []byte("sealed-2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, id); string(got.Signature) != "sealed-2" {
		t.Fatalf("after SetSignature: %q", got.Signature)
	}
	if err := s.Finish(ctx, id, FinishInfo{Status: runstate.Succeeded}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, id); got.Signature != nil {
		t.Errorf("after Finish: signature %q; want cleared", got.Signature)
	}
	if err := s.SetSignature(ctx, id, []byte("x")); !errors.Is(err, ErrFinished) {
		t.Errorf("SetSignature on a finished run = %v; want ErrFinished", err)
	}
}
