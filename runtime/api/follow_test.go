package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestFollowLive follows a run over the socket, through the Waiter, while
// lines are appended, and ends when the run finishes.
func TestFollowLive(t *testing.T) {
	b := newFake()
	b.addRun("r-1", "backup", "running")
	b.log("r-1", "one", "two")
	c, _ := serve(t, waitingBackend{b}, nil)

	got := make(chan LogLine)
	type result struct {
		run Run
		err error
	}
	done := make(chan result, 1)
	go func() {
		run, err := c.Follow(context.Background(), "r-1", func(l LogLine) error { got <- l; return nil })
		done <- result{run, err}
	}()
	next := func(want string) {
		t.Helper()
		if l := <-got; l.Msg != want {
			t.Fatalf("Follow line = %+v; want %q", l, want)
		}
	}
	next("one")
	next("two")
	b.log("r-1", "three") // appended while following
	next("three")
	b.log("r-1", "four", "five")
	b.finish("r-1", "succeeded")
	next("four")
	next("five")
	r := <-done
	if r.err != nil || r.run.Status != "succeeded" || !r.run.Finished() {
		t.Errorf("Follow = %+v, %v; want the finished run", r.run, r.err)
	}
}

// TestFollowPolling runs the stream without a Waiter in a synctest bubble,
// so the polling interval passes in fake time.
func TestFollowPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.addRun("r-1", "backup", "running")
		b.log("r-1", "one")
		h := NewHandler(b, nil)
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/runs/r-1/follow", nil))
		}()
		synctest.Wait() // the handler sent "one" and sleeps until the next poll
		b.log("r-1", "two")
		time.Sleep(followPoll)
		synctest.Wait()
		b.log("r-1", "three")
		b.finish("r-1", "failed")
		time.Sleep(followPoll)
		<-done
		if ct := w.Header().Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("Content-Type = %q", ct)
		}
		got := events(t, w.Body.String())
		if want := "log one|log two|log three|run failed"; got != want {
			t.Errorf("follow stream = %s; want %s", got, want)
		}
	})
}

// TestFollowCancelled checks that a client going away ends the stream
// without a final event.
func TestFollowCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newFake()
		b.addRun("r-1", "backup", "running")
		h := NewHandler(b, nil)
		w := httptest.NewRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/runs/r-1/follow", nil).WithContext(ctx))
		}()
		synctest.Wait()
		cancel()
		<-done
		if got := events(t, w.Body.String()); got != "" {
			t.Errorf("cancelled follow stream = %s; want nothing", got)
		}
	})
}

// events summarises an NDJSON follow stream as "log MSG|run STATUS|error MSG".
func events(t *testing.T, stream string) string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(stream))
	for sc.Scan() {
		var ev FollowEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		switch {
		case ev.Log != nil:
			out = append(out, "log "+ev.Log.Msg)
		case ev.Run != nil:
			out = append(out, "run "+ev.Run.Status)
		case ev.Error != nil:
			out = append(out, fmt.Sprintf("error %d %s", ev.Error.Status, ev.Error.Message))
		}
	}
	return strings.Join(out, "|")
}

func TestFollowEnds(t *testing.T) {
	b := newFake()
	b.addRun("done", "backup", "running")
	b.log("done", "a", "b")
	b.finish("done", "succeeded")
	b.addRun("busy", "backup", "running")
	b.log("busy", "a")
	// Many lines: the stream drains them in pages.
	b.addRun("long", "backup", "running")
	for i := range followPage*2 + 3 {
		b.log("long", fmt.Sprint(i))
	}
	b.finish("long", "succeeded")
	c, _ := serve(t, waitingBackend{b}, nil)
	ctx := context.Background()

	t.Run("finished run", func(t *testing.T) {
		var msgs []string
		run, err := c.Follow(ctx, "done", func(l LogLine) error { msgs = append(msgs, l.Msg); return nil })
		if err != nil || run.Status != "succeeded" || strings.Join(msgs, ",") != "a,b" {
			t.Errorf("Follow(done) = %+v, %v, lines %v", run, err, msgs)
		}
	})
	t.Run("paged", func(t *testing.T) {
		var seqs []int64
		_, err := c.Follow(ctx, "long", func(l LogLine) error { seqs = append(seqs, l.Seq); return nil })
		if err != nil || len(seqs) != followPage*2+3 || seqs[len(seqs)-1] != int64(followPage*2+3) {
			t.Errorf("Follow(long) = %v, %d lines", err, len(seqs))
		}
	})
	t.Run("unknown run", func(t *testing.T) {
		_, err := c.Follow(ctx, "nope", func(LogLine) error { return nil })
		wantError(t, "Follow(nope)", err, 404, "", "not found")
	})
	t.Run("callback error", func(t *testing.T) {
		stop := errors.New("stop")
		_, err := c.Follow(ctx, "busy", func(LogLine) error { return stop })
		if !errors.Is(err, stop) {
			t.Errorf("Follow with failing callback = %v; want %v", err, stop)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		_, err := c.Follow(ctx, "busy", func(LogLine) error { cancel(); return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Follow after cancel = %v; want context.Canceled", err)
		}
	})
}

func TestFollowBackendFails(t *testing.T) {
	b := newFake()
	b.addRun("r-1", "backup", "running")
	b.log("r-1", "one")
	b.failLogs = 2 // the first page works, then the store breaks
	c, _ := serve(t, waitingBackend{b}, nil)
	var msgs []string
	_, err := c.Follow(context.Background(), "r-1", func(l LogLine) error {
		msgs = append(msgs, l.Msg)
		b.log("r-1", "never seen") // wakes the stream, whose next Logs fails
		return nil
	})
	wantError(t, "Follow with failing Logs", err, 500, "", "internal error")
	if strings.Join(msgs, ",") != "one" {
		t.Errorf("lines before the failure = %v; want [one]", msgs)
	}
}
