package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits of the server.
const (
	maxRequestBody = 1 << 20 // bytes of a TriggerRequest
	maxListLimit   = 1000    // runs in one list answer
	defaultLogPage = 1000    // log lines when ?limit= is absent
	maxLogPage     = 10000   // log lines in one answer
)

// NewHandler returns the local API over b (see the package doc for the
// routes). logger receives internal failures at Error, with the detail the
// client does not get; a nil logger discards.
func NewHandler(b Backend, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{b: b, log: logger, poll: followPoll}
	if w, ok := b.(Waiter); ok {
		s.wait = w
	}
	if ts, ok := b.(TriggerStarter); ok {
		s.triggers = ts
	}
	if m, ok := b.(GuestTokenMinter); ok {
		s.minter = m
	}
	if p, ok := b.(Planner); ok {
		s.planner = p
	}
	if ap, ok := b.(Approvals); ok {
		s.approvals = ap
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/runs", s.runs)
	mux.HandleFunc("POST /v1/runs", s.start)
	mux.HandleFunc("GET /v1/runs/{id}", s.run)
	mux.HandleFunc("GET /v1/runs/{id}/logs", s.logs)
	mux.HandleFunc("GET /v1/runs/{id}/follow", s.follow)
	mux.HandleFunc("POST /v1/runs/{id}/cancel", s.cancel)
	mux.HandleFunc("POST /v1/runs/{id}/resume", s.resume(false))
	mux.HandleFunc("POST /v1/runs/{id}/abandon", s.resume(true))
	mux.HandleFunc("GET /v1/playbooks", s.playbooks)
	mux.HandleFunc("POST /v1/guests/{vmid}/token", s.mintToken)
	mux.HandleFunc("POST /v1/plan", s.plan)
	mux.HandleFunc("GET /v1/pending", s.pendingList)
	mux.HandleFunc("GET /v1/pending/{id}", s.pendingOne)
	mux.HandleFunc("POST /v1/approve", s.approve)
	return mux
}

type server struct {
	b    Backend
	wait Waiter // nil: poll
	// triggers starts runs by trigger name; nil refuses such requests.
	triggers TriggerStarter
	minter   GuestTokenMinter // nil: no guest API
	planner  Planner          // nil: plans are refused
	// approvals serves the safety gate; nil answers 404.
	approvals Approvals
	log       *slog.Logger
	poll      time.Duration // follow's polling interval without a Waiter
}

func (s *server) runs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 0, 1, maxListLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if limit == 0 {
		limit = DefaultListLimit
	}
	runs, err := s.b.Runs(r.Context(), ListFilter{Playbook: q.Get("playbook"), Status: q.Get("status"), Limit: int(limit),
		Before: q.Get("before")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page := RunsPage{Runs: runs}
	if page.Runs == nil {
		page.Runs = []Run{}
	}
	for i := range page.Runs {
		page.Runs[i].Result = nil
	}
	if len(runs) == int(limit) {
		page.Next = runs[len(runs)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *server) run(w http.ResponseWriter, r *http.Request) {
	run, err := s.b.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := intParam(q, "after", 0, 0, 1<<62)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	limit, err := intParam(q, "limit", defaultLogPage, 1, maxLogPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lines, err := s.b.Logs(r.Context(), r.PathValue("id"), after, int(limit))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if lines == nil {
		lines = []LogLine{}
	}
	writeJSON(w, http.StatusOK, struct {
		Lines []LogLine `json:"lines"`
	}{lines})
}

func (s *server) mintToken(w http.ResponseWriter, r *http.Request) {
	vmid, err := strconv.Atoi(r.PathValue("vmid"))
	if err != nil || vmid < 100 || vmid > 999999999 {
		s.fail(w, r, &BadRequestError{Field: "vmid", Msg: "want a guest id, 100 to 999999999"})
		return
	}
	if s.minter == nil {
		s.fail(w, r, fmt.Errorf("this agent serves no guest API: %w", ErrUnavailable))
		return
	}
	tok, err := s.minter.MintGuestToken(r.Context(), vmid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tok)
}

func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.b.Cancel(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.b.Run(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, run)
}

// resume answers runs resume (abandon false) and runs abandon.
func (s *server) resume(abandon bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rs, ok := s.b.(Resumer)
		if !ok {
			s.fail(w, r, ErrNotFound)
			return
		}
		id := r.PathValue("id")
		run, err := s.b.Run(r.Context(), id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if abandon {
			err = rs.Abandon(r.Context(), run.ID)
		} else {
			err = rs.Resume(r.Context(), run.ID)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if run, err = s.b.Run(r.Context(), run.ID); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, run)
	}
}

func (s *server) playbooks(w http.ResponseWriter, r *http.Request) {
	pbs, err := s.b.Playbooks(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if pbs == nil {
		pbs = []Playbook{}
	}
	writeJSON(w, http.StatusOK, struct {
		Playbooks []Playbook `json:"playbooks"`
	}{pbs})
}

func (s *server) start(w http.ResponseWriter, r *http.Request) {
	req, err := decodeTrigger(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The run is started and recorded by the backend; a client hanging up
	// half-way must not leave that undone.
	ctx := context.WithoutCancel(r.Context())
	if req.Trigger != "" {
		if s.triggers == nil {
			s.fail(w, r, &BadRequestError{Field: "trigger", Msg: "starting by trigger is not supported by this agent"})
			return
		}
		runs, err := s.triggers.StartTrigger(ctx, req)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, struct {
			Runs []Run `json:"runs"`
		}{runs})
		return
	}
	run, err := s.b.Start(ctx, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/runs/"+url.PathEscape(run.ID))
	writeJSON(w, http.StatusAccepted, run)
}

// decodeTrigger reads one TriggerRequest, refusing unknown fields and
// trailing data, with errors naming the field where JSON tells it.
func decodeTrigger(body io.Reader) (TriggerRequest, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return TriggerRequest{}, &BadRequestError{Msg: fmt.Sprintf("request body over %d bytes", tooLarge.Limit)}
		}
		return TriggerRequest{}, fmt.Errorf("reading request body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var req TriggerRequest
	if err := dec.Decode(&req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return req, &BadRequestError{Field: typeErr.Field, Msg: "must be a JSON " + jsonKind(typeErr.Type.Kind().String())}
		}
		// encoding/json reports an unknown field only in its message.
		if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name, err := strconv.Unquote(rest); err == nil {
				return req, &BadRequestError{Field: name, Msg: "unknown field"}
			}
		}
		return req, &BadRequestError{Msg: "malformed JSON request: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, &BadRequestError{Msg: "malformed JSON request: data after the object"}
	}
	switch {
	case req.Playbook == "" && req.Trigger == "":
		return req, &BadRequestError{Field: "playbook", Msg: "is required"}
	case req.Playbook != "" && req.Trigger != "":
		return req, &BadRequestError{Field: "trigger", Msg: "give a playbook or a trigger, not both"}
	case req.Source != "" && req.Source != "api" && req.Source != "cli":
		return req, &BadRequestError{Field: "source", Msg: `must be "api" or "cli"`}
	case req.Version != "" && req.Playbook == "":
		return req, &BadRequestError{Field: "version", Msg: "is for a request by playbook name"}
	}
	return req, nil
}

// jsonKind names a Go kind as the JSON value it decodes from.
func jsonKind(kind string) string {
	switch kind {
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return kind
}

// intParam parses the query parameter name as an integer in [min, max],
// or returns def when it is absent.
func intParam(q url.Values, name string, def, min, max int64) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min || n > max {
		return 0, &BadRequestError{Field: name, Msg: fmt.Sprintf("must be an integer from %d to %d", min, max)}
	}
	return n, nil
}

// fail answers err: the Backend's error kinds as documented, anything else
// as a 500 whose detail goes to the log only.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := s.classify(r, err)
	writeJSON(w, e.Status, e)
}

// classify turns err into the Error the client sees.
func (s *server) classify(r *http.Request, err error) *Error {
	var bad *BadRequestError
	var amb *AmbiguousError
	switch {
	case errors.As(err, &bad):
		return &Error{Status: http.StatusBadRequest, Message: bad.Error(), Field: bad.Field}
	case errors.As(err, &amb):
		return &Error{Status: http.StatusBadRequest, Message: amb.Error(), Field: "id"}
	case errors.Is(err, ErrNotFound):
		return &Error{Status: http.StatusNotFound, Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return &Error{Status: http.StatusConflict, Message: err.Error()}
	case errors.Is(err, ErrTooMany):
		return &Error{Status: http.StatusTooManyRequests, Message: err.Error()}
	case errors.Is(err, ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Message: err.Error()}
	}
	s.log.Error("local API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return &Error{Status: http.StatusInternalServerError, Message: "internal error; the agent's log has the detail"}
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// plan answers POST /v1/plan: the plan of a run of req.Playbook.
func (s *server) plan(w http.ResponseWriter, r *http.Request) {
	req, err := decodeTrigger(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.planner == nil {
		s.fail(w, r, fmt.Errorf("this agent does not plan runs: %w", ErrUnavailable))
		return
	}
	if req.Playbook == "" {
		s.fail(w, r, &BadRequestError{Field: "playbook", Msg: "a plan needs the playbook's name"})
		return
	}
	out, err := s.planner.Plan(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
