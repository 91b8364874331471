package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// PendingOp is a destructive call waiting for an operator's signature
// (docs/safety.md): what would be done and the exact bytes to sign.
type PendingOp struct {
	ID       string    `json:"id"`
	Run      string    `json:"run"`
	Playbook string    `json:"playbook"`
	Guest    int       `json:"guest"`
	What     string    `json:"what"`
	Blob     string    `json:"blob"` // the canonical op JSON, to be signed byte for byte
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	State    string    `json:"state"` // open, approved, refused
	Detail   string    `json:"detail,omitempty"`
	NewRun   string    `json:"new_run,omitempty"`
}

// ApproveRequest submits a signed operation: the blob exactly as signed
// and its armoured SSH signature.
type ApproveRequest struct {
	Blob      string `json:"blob"`
	Signature string `json:"signature"`
}

// ApproveResult says what an approval did.
type ApproveResult struct {
	Pending string `json:"pending,omitempty"`
	Run     string `json:"run,omitempty"`
	Resumed bool   `json:"resumed,omitempty"` // the parked run goes on
	Rotated bool   `json:"rotated,omitempty"` // the allow-list was rotated
	Keys    int    `json:"keys,omitempty"`
	Signer  string `json:"signer,omitempty"`
}

// Approvals is the optional part of a [Backend] that serves the safety
// gate: GET /v1/pending[?all=1], GET /v1/pending/{id} and POST
// /v1/approve. A refused approval is a *BadRequestError (400) with Field
// "signature".
type Approvals interface {
	Pending(ctx context.Context, all bool) ([]PendingOp, error)
	Approve(ctx context.Context, req ApproveRequest) (ApproveResult, error)
}

func (s *server) pendingList(w http.ResponseWriter, r *http.Request) {
	if s.approvals == nil {
		s.fail(w, r, fmt.Errorf("pending operations: %w", ErrNotFound))
		return
	}
	ops, err := s.approvals.Pending(r.Context(), r.URL.Query().Get("all") == "1")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ops == nil {
		ops = []PendingOp{}
	}
	writeJSON(w, http.StatusOK, struct {
		Pending []PendingOp `json:"pending"`
	}{ops})
}

func (s *server) pendingOne(w http.ResponseWriter, r *http.Request) {
	if s.approvals == nil {
		s.fail(w, r, fmt.Errorf("pending operations: %w", ErrNotFound))
		return
	}
	ops, err := s.approvals.Pending(r.Context(), true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, p := range ops {
		if p.ID == r.PathValue("id") {
			writeJSON(w, http.StatusOK, p)
			return
		}
	}
	s.fail(w, r, fmt.Errorf("pending operation %q: %w", r.PathValue("id"), ErrNotFound))
}

func (s *server) approve(w http.ResponseWriter, r *http.Request) {
	if s.approvals == nil {
		s.fail(w, r, fmt.Errorf("approvals: %w", ErrNotFound))
		return
	}
	var req ApproveRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, &BadRequestError{Field: "body", Msg: err.Error()})
		return
	}
	if req.Blob == "" || req.Signature == "" {
		s.fail(w, r, &BadRequestError{Field: "blob", Msg: "blob and signature are both required"})
		return
	}
	res, err := s.approvals.Approve(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// Pending lists the open pending operations (every one with all).
func (c *Client) Pending(ctx context.Context, all bool) ([]PendingOp, error) {
	q := url.Values{}
	if all {
		q.Set("all", "1")
	}
	var out struct{ Pending []PendingOp }
	err := c.do(ctx, "GET", "/v1/pending", q, nil, &out)
	return out.Pending, err
}

// PendingOne returns the open pending operation id.
func (c *Client) PendingOne(ctx context.Context, id string) (PendingOp, error) {
	var p PendingOp
	err := c.do(ctx, "GET", "/v1/pending/"+url.PathEscape(id), nil, nil, &p)
	return p, err
}

// Approve submits a signed operation.
func (c *Client) Approve(ctx context.Context, req ApproveRequest) (ApproveResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ApproveResult{}, err
	}
	var out ApproveResult
	err = c.do(ctx, "POST", "/v1/approve", nil, body, &out)
	return out, err
}
