package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Rejection is a hub request refused before anything started. It keeps
// apart what the client may see (Status, Public, Field) and what only the
// agent's log may hold (Cause).
//
// Invariant: Public and Field never contain key material, request bodies,
// parameter values or internal error text.
type Rejection struct {
	Status int    // HTTP status: 400, 401, 404, 413, 429 or 503
	Public string // the message the client sees
	Field  string // the request field or parameter at fault, if any
	Cause  error  // the detailed reason, for the log; may be nil
}

// Error describes the rejection for the log, cause included.
func (r *Rejection) Error() string {
	s := fmt.Sprintf("hub request rejected (%d %s)", r.Status, r.Public)
	if r.Field != "" {
		s += " field " + r.Field
	}
	if r.Cause != nil {
		s += ": " + r.Cause.Error()
	}
	return s
}

// Unwrap returns the cause.
func (r *Rejection) Unwrap() error { return r.Cause }

// Write answers the client with r's status and the JSON body
// {"error": Public, "field": Field}.
func (r *Rejection) Write(w http.ResponseWriter) {
	writeJSON(w, r.Status, errorBody{Error: r.Public, Field: r.Field})
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func reject(status int, public string, cause error) *Rejection {
	return &Rejection{Status: status, Public: public, Cause: cause}
}

// writeJSON answers with status and v as JSON. The values written here are
// plain structs that always encode.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
