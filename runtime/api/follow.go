package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

const (
	// followPoll is how often a follow stream looks for news when the
	// Backend is not a Waiter.
	followPoll = 250 * time.Millisecond
	// followPage is how many log lines one Logs call fetches while following.
	followPage = 500
)

// follow answers GET /v1/runs/{id}/follow with an NDJSON stream of
// FollowEvent: the log lines after ?after=, then each new line as it is
// written, then the finished run. An unknown run is a plain 404 answer;
// once streaming has begun, a failure ends the stream with an error event.
func (s *server) follow(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	after, err := intParam(r.URL.Query(), "after", 0, 0, 1<<62)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.b.Run(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if fm, ok := s.b.(FollowMarker); ok && !run.Finished() {
		defer fm.Following(run.ID)()
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	send := func(ev FollowEvent) bool {
		return enc.Encode(ev) == nil && rc.Flush() == nil
	}
	for {
		// run was read before the log is drained: if it had finished then,
		// every line it wrote is already in the log and is sent below.
		for {
			lines, err := s.b.Logs(ctx, id, after, followPage)
			if err != nil {
				s.streamFailed(r, send, err)
				return
			}
			for i := range lines {
				if !send(FollowEvent{Log: &lines[i]}) {
					return // the client went away
				}
				after = lines[i].Seq
			}
			if len(lines) < followPage {
				break
			}
		}
		if run.Finished() {
			send(FollowEvent{Run: &run})
			return
		}
		if err := s.waitChange(ctx, id, after); err != nil {
			if ctx.Err() == nil {
				s.streamFailed(r, send, err)
			}
			return
		}
		if run, err = s.b.Run(ctx, id); err != nil {
			s.streamFailed(r, send, err)
			return
		}
	}
}

// waitChange waits for news of run id: through the Backend's Waiter if it
// has one, else for one polling interval.
func (s *server) waitChange(ctx context.Context, id string, after int64) error {
	if s.wait != nil {
		return s.wait.WaitChange(ctx, id, after)
	}
	t := time.NewTimer(s.poll)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamFailed ends a follow stream with an error event, unless the
// failure is only the client going away.
func (s *server) streamFailed(r *http.Request, send func(FollowEvent) bool, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return
	}
	send(FollowEvent{Error: s.classify(r, err)})
}
