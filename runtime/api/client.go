package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client talks to a serving agent's local API over its unix socket. Its
// methods mirror the routes; a request fails with an *Error when the agent
// answers with one (errors.Is(err, ErrNotFound) and ErrConflict work), and
// with a "is the agent running?" error when nothing listens on the socket.
// A Client is safe for concurrent use; requests end when their ctx does.
type Client struct {
	socket string
	hc     *http.Client
}

// baseURL is the URL prefix of every request; the host is never resolved.
const baseURL = "http://felhom-agent"

// NewClient returns a client of the local API at socketPath. It connects
// lazily, on the first request.
func NewClient(socketPath string) *Client {
	c := &Client{socket: socketPath}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &connectError{path: socketPath, err: err}
			}
			return conn, nil
		},
		MaxIdleConnsPerHost: 4,
	}}
	return c
}

// connectError is a failure to reach the socket at all.
type connectError struct {
	path string
	err  error
}

func (e *connectError) Error() string {
	return fmt.Sprintf("is the agent running? cannot connect to %s: %v", e.path, e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// UnreachableSocket is the socket path err says nothing could be reached
// at (no agent listens there), or "" when err is not such a failure.
func UnreachableSocket(err error) string {
	if ce, ok := errors.AsType[*connectError](err); ok {
		return ce.path
	}
	return ""
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}

// Runs lists one page of runs matching f, newest first (without their
// results: Run has them).
func (c *Client) Runs(ctx context.Context, f ListFilter) ([]Run, error) {
	p, err := c.RunsPage(ctx, f)
	return p.Runs, err
}

// RunsPage lists one page of runs matching f, newest first, with the
// cursor of the next page.
func (c *Client) RunsPage(ctx context.Context, f ListFilter) (RunsPage, error) {
	q := url.Values{}
	if f.Playbook != "" {
		q.Set("playbook", f.Playbook)
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Before != "" {
		q.Set("before", f.Before)
	}
	var out RunsPage
	err := c.do(ctx, "GET", "/v1/runs", q, nil, &out)
	return out, err
}

// Run returns one run.
func (c *Client) Run(ctx context.Context, id string) (Run, error) {
	var run Run
	path, err := runPath(id, "")
	if err == nil {
		err = c.do(ctx, "GET", path, nil, nil, &run)
	}
	return run, err
}

// Logs returns up to limit lines of run id's log with Seq > after (limit 0:
// the server's default page).
func (c *Client) Logs(ctx context.Context, id string, after int64, limit int) ([]LogLine, error) {
	q := url.Values{}
	if after != 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct{ Lines []LogLine }
	path, err := runPath(id, "/logs")
	if err == nil {
		err = c.do(ctx, "GET", path, q, nil, &out)
	}
	return out.Lines, err
}

// MintGuestToken asks the agent for a new token for guest vmid
// (GuestTokenMinter).
func (c *Client) MintGuestToken(ctx context.Context, vmid int) (GuestToken, error) {
	var tok GuestToken
	err := c.do(ctx, "POST", "/v1/guests/"+strconv.Itoa(vmid)+"/token", nil, nil, &tok)
	return tok, err
}

// Cancel asks run id to stop and returns the run as it was then; the run
// ends shortly after (Follow it to see when). A finished run is ErrConflict.
func (c *Client) Cancel(ctx context.Context, id string) (Run, error) {
	var run Run
	path, err := runPath(id, "/cancel")
	if err == nil {
		err = c.do(ctx, "POST", path, nil, nil, &run)
	}
	return run, err
}

// Resume resumes interrupted run id from its journal; with abandon it
// replays the run to where it stopped and undoes it instead. It returns
// the run as it was then; a run that is not interrupted is ErrConflict.
func (c *Client) Resume(ctx context.Context, id string, abandon bool) (Run, error) {
	var run Run
	verb := "/resume"
	if abandon {
		verb = "/abandon"
	}
	path, err := runPath(id, verb)
	if err == nil {
		err = c.do(ctx, "POST", path, nil, nil, &run)
	}
	return run, err
}

// Playbooks lists the playbooks the agent knows, with their load errors.
func (c *Client) Playbooks(ctx context.Context) ([]Playbook, error) {
	var out struct{ Playbooks []Playbook }
	err := c.do(ctx, "GET", "/v1/playbooks", nil, nil, &out)
	return out.Playbooks, err
}

// Trigger starts a run of req.Playbook and returns it as recorded. A
// refused parameter is an *Error with Status 400 and Field "params.NAME".
func (c *Client) Trigger(ctx context.Context, req TriggerRequest) (Run, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Run{}, fmt.Errorf("trigger %s: %w", req.Playbook, err)
	}
	var run Run
	err = c.do(ctx, "POST", "/v1/runs", nil, body, &run)
	return run, err
}

// Plan asks the agent what a run of req.Playbook would do, changing
// nothing (see [Planner]); the answer is the plan's JSON object.
func (c *Client) Plan(ctx context.Context, req TriggerRequest) (json.RawMessage, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", req.Playbook, err)
	}
	var out json.RawMessage
	err = c.do(ctx, "POST", "/v1/plan", nil, body, &out)
	return out, err
}

// StartTrigger starts a run of every playbook that answers req.Trigger
// and returns them as recorded. No playbook answering is ErrNotFound; a
// refused parameter is an *Error with Status 400 and Field "params.NAME",
// and then nothing started.
func (c *Client) StartTrigger(ctx context.Context, req TriggerRequest) ([]Run, error) {
	if req.Trigger == "" {
		return nil, errors.New("start by trigger: the trigger name is empty")
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("trigger %s: %w", req.Trigger, err)
	}
	var out struct{ Runs []Run }
	err = c.do(ctx, "POST", "/v1/runs", nil, body, &out)
	return out.Runs, err
}

// Follow calls fn with each line of run id's log, from the first, as it is
// written, and returns the run once it has finished. It returns early with
// fn's error if fn fails, and with ctx's error when ctx ends.
func (c *Client) Follow(ctx context.Context, id string, fn func(LogLine) error) (Run, error) {
	path, err := runPath(id, "/follow")
	if err != nil {
		return Run{}, err
	}
	resp, err := c.send(ctx, "GET", path, nil, nil)
	if err != nil {
		return Run{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev FollowEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return Run{}, ctx.Err()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return Run{}, fmt.Errorf("following run %s: the agent ended the stream before the run finished", id)
			}
			return Run{}, fmt.Errorf("following run %s: %w", id, err)
		}
		switch {
		case ev.Log != nil:
			if err := fn(*ev.Log); err != nil {
				return Run{}, err
			}
		case ev.Run != nil:
			return *ev.Run, nil
		case ev.Error != nil:
			if ev.Error.Status == 0 {
				ev.Error.Status = http.StatusInternalServerError
			}
			return Run{}, ev.Error
		}
	}
}

// runPath is the path of run id's resource, with suffix. An empty id would
// name the list instead, so it is refused before any request.
func runPath(id, suffix string) (string, error) {
	if id == "" {
		return "", errors.New("run id is empty")
	}
	return "/v1/runs/" + url.PathEscape(id) + suffix, nil
}

// do sends a request and decodes a successful JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decoding the agent's answer: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a 2xx response, or the answer's *Error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := baseURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ce *connectError
		if errors.As(err, &ce) {
			return nil, ce // already says all; the URL would only confuse
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s %s via %s: %w", method, path, c.socket, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	apiErr := &Error{}
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Message == "" {
		// Not one of ours (the mux's own 404/405): keep its text.
		apiErr = &Error{Message: strings.TrimSpace(string(raw))}
		if apiErr.Message == "" {
			apiErr.Message = http.StatusText(resp.StatusCode)
		}
	}
	apiErr.Status = resp.StatusCode
	return nil, apiErr
}
