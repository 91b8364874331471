package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
)

// NewHandler returns the hub endpoints, POST /v1/triggers and
// GET /v1/runs/{id}, verifying every request with v and answering from b.
// Mount it at the root of the agent's TCP listener (the signed path is the
// request's own). logger receives one line per request: rejections at Warn
// with their cause, accepted triggers at Info; never parameter values or
// key material. A nil logger discards.
func NewHandler(v *Verifier, b Backend, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{v: v, b: b, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/triggers", h.trigger)
	mux.HandleFunc("GET /v1/runs/{id}", h.run)
	return mux
}

type handler struct {
	v   *Verifier
	b   Backend
	log *slog.Logger
}

// trigger answers POST /v1/triggers.
func (h *handler) trigger(w http.ResponseWriter, r *http.Request) {
	body, keyID, err := h.v.Verify(r)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	t, err := ParseTrigger(body)
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	// A hub that hangs up mid-request must not cancel a trigger half-way:
	// the backend records the id with its runs, and the retry finds them.
	runs, existing, err := h.b.StartTrigger(context.WithoutCancel(r.Context()), keyID, t)
	if err != nil {
		var pe *ParamError
		switch {
		case errors.As(err, &pe):
			err = &Rejection{Status: http.StatusBadRequest, Field: "params." + pe.Param,
				Public: fmt.Sprintf("parameter %s: %s", pe.Param, pe.Msg), Cause: err}
		case errors.Is(err, ErrBlocked):
			err = &Rejection{Status: http.StatusForbidden,
				Public: "this host is blocked by the hub: it accepts no hub-started work", Cause: err}
		case errors.Is(err, ErrUnknownTrigger):
			err = &Rejection{Status: http.StatusNotFound, Field: "trigger",
				Public: fmt.Sprintf("no playbook answers trigger %q", t.Name), Cause: err}
		case errors.Is(err, ErrUnavailable):
			w.Header().Set("Retry-After", "30")
			err = &Rejection{Status: http.StatusServiceUnavailable,
				Public: "the agent cannot record runs now (its run store cannot write; see /healthz); nothing was accepted, retry with the same id", Cause: err}
		}
		if qf, ok := errors.AsType[*QueueFullError](err); ok {
			w.Header().Set("Retry-After", "60")
			err = &Rejection{Status: http.StatusTooManyRequests, Field: "trigger",
				Public: qf.Error() + "; nothing was accepted, retry with the same id", Cause: err}
		}
		h.refuse(w, r, err)
		return
	}
	if runs == nil {
		runs = []RunRef{}
	}
	status := http.StatusAccepted
	if existing {
		status = http.StatusOK
	}
	ids := make([]string, len(runs))
	for i, run := range runs {
		ids[i] = run.ID
	}
	h.log.Info("hub trigger", "key", keyID, "trigger", t.Name, "trigger_id", t.ID,
		"runs", ids, "repeated", existing)
	writeJSON(w, status, struct {
		Runs []RunRef `json:"runs"`
	}{runs})
}

// run answers GET /v1/runs/{id}.
func (h *handler) run(w http.ResponseWriter, r *http.Request) {
	if _, _, err := h.v.Verify(r); err != nil {
		h.refuse(w, r, err)
		return
	}
	id := r.PathValue("id")
	st, err := h.b.TriggeredRun(r.Context(), id)
	if err != nil {
		if errors.Is(err, ErrUnknownRun) {
			err = &Rejection{Status: http.StatusNotFound, Public: "no such run", Cause: err}
		}
		h.refuse(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// refuse answers a failed request: a *Rejection as it says, anything else
// as a bare 500, logging the cause either way.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	var rj *Rejection
	if !errors.As(err, &rj) {
		h.log.Error("hub request failed", "method", r.Method, "path", clipped(r.URL.Path),
			"remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		return
	}
	h.log.Warn("hub request rejected", "method", r.Method, "path", clipped(r.URL.Path),
		"remote", r.RemoteAddr, "status", rj.Status, "err", rj)
	rj.Write(w)
}
