package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 15, 3, 0, 0, 0, time.UTC)

// fakeBackend is an in-memory Backend. It is not a Waiter; wrap it in
// waitingBackend for that.
type fakeBackend struct {
	mu        sync.Mutex
	runs      map[string]*Run
	order     []string // run ids, oldest first
	logs      map[string][]LogLine
	changed   chan struct{} // closed and replaced on every change
	playbooks []Playbook
	filter    ListFilter // the last Runs filter
	failRuns  error      // returned by Runs
	failLogs  int        // Logs fails from this call on (0: never)
	logCalls  int
}

func newFake() *fakeBackend {
	return &fakeBackend{
		runs: map[string]*Run{}, logs: map[string][]LogLine{}, changed: make(chan struct{}),
		playbooks: []Playbook{
			{Name: "backup", File: "backup.star", Version: "v1", Schedule: "0 3 * * *", NextRun: &t0,
				Triggers: []string{"backup"}, Params: []Param{{Name: "storage", Type: "string", Default: json.RawMessage(`"usb"`)}}},
			{Name: "broken", File: "broken.star", LoadError: "broken.star:3:1: undefined: x"},
		},
	}
}

// notify wakes waiters; called with mu held.
func (f *fakeBackend) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeBackend) addRun(id, playbook, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id] = &Run{ID: id, Playbook: playbook, Source: "cli", Status: status, Created: t0}
	f.order = append(f.order, id)
	f.notify()
}

func (f *fakeBackend) log(id string, msgs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		l := f.logs[id]
		f.logs[id] = append(l, LogLine{Seq: int64(len(l) + 1), Time: t0, Level: "INFO", Msg: m})
	}
	f.notify()
}

func (f *fakeBackend) finish(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := t0.Add(time.Minute)
	f.runs[id].Status, f.runs[id].Ended = status, &end
	f.notify()
}

func (f *fakeBackend) Runs(_ context.Context, flt ListFilter) ([]Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filter = flt
	if f.failRuns != nil {
		return nil, f.failRuns
	}
	var out []Run
	for _, id := range slices.Backward(f.order) {
		if r := f.runs[id]; flt.Playbook == "" || r.Playbook == flt.Playbook {
			out = append(out, *r)
		}
	}
	return out, nil
}

func (f *fakeBackend) Run(_ context.Context, id string) (Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	if !ok {
		return Run{}, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	return *r, nil
}

func (f *fakeBackend) Logs(_ context.Context, id string, after int64, limit int) ([]LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logCalls++
	if f.failLogs > 0 && f.logCalls >= f.failLogs {
		return nil, errors.New("disk I/O error")
	}
	if _, ok := f.runs[id]; !ok {
		return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
	}
	var out []LogLine
	for _, l := range f.logs[id] {
		if l.Seq > after && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *fakeBackend) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.runs[id]
	switch {
	case !ok:
		return fmt.Errorf("run %q: %w", id, ErrNotFound)
	case r.Finished():
		return fmt.Errorf("run %s already %s: %w", id, r.Status, ErrConflict)
	}
	r.Status = "cancelling"
	f.notify()
	return nil
}

func (f *fakeBackend) Playbooks(context.Context) ([]Playbook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.playbooks), nil
}

func (f *fakeBackend) Start(_ context.Context, req TriggerRequest) (Run, error) {
	if req.Playbook != "backup" {
		return Run{}, fmt.Errorf("playbook %q: %w", req.Playbook, ErrNotFound)
	}
	params := map[string]json.RawMessage{"storage": json.RawMessage(`"usb"`)}
	for k, v := range req.Params {
		var s string
		if k != "storage" {
			return Run{}, &BadRequestError{Field: "params." + k, Msg: "is not a parameter of backup"}
		}
		if json.Unmarshal(v, &s) != nil {
			return Run{}, &BadRequestError{Field: "params.storage", Msg: "must be a string"}
		}
		params[k] = v
	}
	f.mu.Lock()
	id := fmt.Sprintf("r-%d", len(f.order)+1)
	f.mu.Unlock()
	f.addRun(id, "backup", "queued")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[id].Source = "api"
	f.runs[id].Params, _ = json.Marshal(params)
	return *f.runs[id], nil
}

// waitingBackend is a fakeBackend that is also a Waiter.
type waitingBackend struct{ *fakeBackend }

func (w waitingBackend) WaitChange(ctx context.Context, id string, after int64) error {
	for {
		w.mu.Lock()
		r, ok := w.runs[id]
		news := !ok || r.Finished()
		if logs := w.logs[id]; len(logs) > 0 && logs[len(logs)-1].Seq > after {
			news = true
		}
		ch := w.changed
		w.mu.Unlock()
		if news {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

var _ Waiter = waitingBackend{}

// serve serves b on a fresh socket and returns a client of it and the
// socket's path. The directory is short: unix socket paths are limited to
// 107 bytes, which t.TempDir can exceed.
func serve(t *testing.T, b Backend, h http.Handler) (*Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = NewHandler(b, nil)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	c := NewClient(path)
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-done
	})
	return c, path
}
