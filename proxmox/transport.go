package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBody bounds what the Client reads of one response. The largest
// answers it asks for (cluster resources, long task logs) stay far below.
const maxBody = 32 << 20

// apiPath is a request path below /api2/json: escaped for the URL, plain
// for errors, logs and observers.
type apiPath struct {
	escaped string
	plain   string
}

// pathOf joins path segments, escaping each one, so that a value such as
// a volid ("local:backup/x.tar.zst") stays one segment. "." and ".." are
// escaped too: nothing the caller passes can walk up the API tree.
func pathOf(segments ...string) apiPath {
	var esc, plain strings.Builder
	for _, s := range segments {
		esc.WriteByte('/')
		plain.WriteByte('/')
		switch s {
		case ".":
			esc.WriteString("%2E")
		case "..":
			esc.WriteString("%2E%2E")
		default:
			esc.WriteString(url.PathEscape(s))
		}
		plain.WriteString(s)
	}
	return apiPath{escaped: esc.String(), plain: plain.String()}
}

// envelope is PVE's JSON success body. Total is set by paged lists (the
// task log) and is "" when absent.
type envelope struct {
	Data  json.RawMessage `json:"data"`
	Total num             `json:"total"`
}

// do sends one API request and returns the decoded envelope. GETs are
// retried on transient failures within the read retry budget (see
// [Config.ReadRetryBudget]); other methods are sent exactly once.
func (c *Client) do(ctx context.Context, method string, p apiPath, params url.Values) (envelope, error) {
	if c.readOnly && method != http.MethodGet {
		return envelope{}, fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrReadOnly, ErrNotSent)
	}
	retries, budget := 0, time.Duration(0)
	if method == http.MethodGet {
		retries, budget = c.cfg.readRetries(), c.cfg.readRetryBudget()
	}
	first := time.Now()
	obs := observerFrom(ctx)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		status, env, err := c.attempt(ctx, method, p, params)
		took := time.Since(start)
		if obs != nil {
			obs.Request(RequestInfo{Method: method, Path: p.plain, Attempt: attempt, Status: status, Took: took, Err: err})
		}
		if c.log.Enabled(ctx, slog.LevelDebug) { // on every request: no attributes made for nothing
			c.logRequest(ctx, method, p.plain, attempt, status, took, err)
		}
		if err == nil {
			return env, nil
		}
		if budget == 0 || (retries >= 0 && attempt > retries) || ctx.Err() != nil || !retryable(err) {
			return envelope{}, err
		}
		delay := c.backoff(attempt)
		wake := time.Now().Add(delay)
		if wake.Sub(first) > budget {
			return envelope{}, &RetryError{Attempts: attempt, Took: time.Since(first), Err: err}
		}
		if dl, ok := ctx.Deadline(); ok && !wake.Before(dl) {
			// The caller's deadline would end the wait: say so now rather
			// than sleep into it.
			return envelope{}, &RetryError{Attempts: attempt, Took: time.Since(first), Deadline: true, Err: err}
		}
		if serr := sleepCtx(ctx, delay); serr != nil {
			return envelope{}, fmt.Errorf("%s %s: %w (while retrying after: %w)", method, p.plain, serr, err)
		}
	}
}

// logRequest writes one request's debug line. It is a function of its own
// so that its attributes take no room in do's frame: do is on the stack of
// every builtin call that talks to Proxmox, which runs on a run's
// goroutine near the depth its stack is sized for (runtime/engine's
// runStackHint).
//
//go:noinline
func (c *Client) logRequest(ctx context.Context, method, path string, attempt, status int, took time.Duration, err error) {
	attrs := []slog.Attr{slog.String("method", method), slog.String("path", path), slog.Int("attempt", attempt),
		slog.Int("status", status), slog.Duration("took", took)}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "proxmox api request", attrs...)
}

// RetryError is a read that kept failing transiently until its retry
// budget (or the caller's deadline) ran out. Err is the last failure,
// which errors.Is and errors.As see through: an *APIError with its status,
// a refused connection.
type RetryError struct {
	Attempts int           // requests sent
	Took     time.Duration // from the first request to giving up
	Deadline bool          // the caller's deadline, not the budget, ended the retries
	Err      error
}

func (e *RetryError) Error() string {
	why := "read retry budget (proxmox.read_retry_budget) spent"
	if e.Deadline {
		why = "deadline reached"
	}
	return fmt.Sprintf("%v (%d attempts in %s, %s)", e.Err, e.Attempts, e.Took.Round(time.Millisecond), why)
}

func (e *RetryError) Unwrap() error { return e.Err }

// IsUnreachable reports whether err says the API could not be reached or
// answered only that it is unavailable — the transient failures reads
// retry, a request that timed out, a host that cannot be dialled — as
// opposed to an answer (a 401 for a bad token, a 400) or a TLS trust
// failure, which are configuration problems that waiting does not fix.
func IsUnreachable(err error) bool {
	if err == nil {
		return false
	}
	if retryable(err) {
		return true
	}
	if _, ok := errors.AsType[*APIError](err); ok {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, target := range []error{syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ETIMEDOUT} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// attempt performs one HTTP exchange. It returns the HTTP status (0 when
// no response arrived) and either the envelope or the error.
func (c *Client) attempt(ctx context.Context, method string, p apiPath, params url.Values) (int, envelope, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.timeout())
	defer cancel()

	target := c.base + p.escaped
	var body io.Reader
	form := method == http.MethodPost || method == http.MethodPut
	if form {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		target += "?" + params.Encode()
	}
	// wrote records whether any of the request left for the server: from
	// then on a failed mutation may have been applied.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), method, target, body)
	if err != nil {
		return 0, envelope{}, fmt.Errorf("%s %s: building request: %w", method, p.plain, err)
	}
	req.Header.Set("Authorization", c.cfg.Token.authorization())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "felhom-agent")
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, envelope{}, c.transportError(ctx, method, p, err, wrote.Load())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		// The status line arrived, so the request reached PVE.
		return resp.StatusCode, envelope{}, c.transportError(ctx, method, p, fmt.Errorf("reading response: %w", err), true)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseAPIError(method, p.plain, resp.StatusCode, resp.Status, raw)
		if node, ok := IsUnknownNode(e); ok && node == c.cfg.Node {
			// PVE's words alone read as a problem of the request; it is
			// the configuration's.
			return resp.StatusCode, envelope{}, fmt.Errorf("proxmox.node %q is not a node of this host (set proxmox.node to the host's node name): %w", node, e)
		}
		return resp.StatusCode, envelope{}, e
	}
	// From here PVE has accepted the request: a mutation whose answer
	// cannot be read may have been applied.
	unreadable := func(format string, args ...any) error {
		err := fmt.Errorf(format, args...)
		if method != http.MethodGet {
			return fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrAmbiguous, err)
		}
		return fmt.Errorf("%s %s: %w", method, p.plain, err)
	}
	if len(raw) > maxBody {
		return resp.StatusCode, envelope{}, unreadable("response larger than %d bytes", maxBody)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		if cerr := actx.Err(); cerr != nil {
			// The per-request timeout cut the answer short (a body that
			// ended with the connection): the timeout is the cause.
			return resp.StatusCode, envelope{}, c.transportError(ctx, method, p, fmt.Errorf("reading response: %w", cerr), true)
		}
		return resp.StatusCode, envelope{}, unreadable("decoding response envelope: %w", err)
	}
	return resp.StatusCode, env, nil
}

// transportError wraps a failure without an HTTP answer. A mutation whose
// request was (partly) written may have been applied: that is ErrAmbiguous,
// so the caller checks state instead of trying again.
func (c *Client) transportError(ctx context.Context, method string, p apiPath, err error, wrote bool) error {
	// *url.Error repeats method and URL; the prefix below says it better.
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("no answer within %s: %w", c.cfg.timeout(), err)
	}
	if method != http.MethodGet && wrote {
		return fmt.Errorf("%s %s: %w: %w", method, p.plain, ErrAmbiguous, err)
	}
	return fmt.Errorf("%s %s: %w", method, p.plain, err)
}

// retryable reports whether a failed read is worth repeating: PVE's
// proxy and gateway statuses, and connections refused, reset or closed
// before the answer was complete. An answer with a PVE message, even a 500
// ("CT is locked (backup)"), is the answer; TLS trust failures and
// timeouts are not retried either.
func retryable(err error) bool {
	if ae, ok := errors.AsType[*APIError](err); ok {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, 595, 596:
			return true
		}
		return false
	}
	for _, target := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// backoff is the jittered delay before retry number attempt (1-based):
// backoffMin doubled per attempt, capped at backoffMax, then shortened by a
// random amount of up to half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.backoffMin
	for i := 1; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	d = min(d, c.backoffMax)
	half := d / 2
	return d - half + rand.N(half+1)
}

// sleepCtx waits d or until ctx ends, whichever is first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// parseAPIError turns an error answer into an *APIError. PVE 8.4+ puts the
// message in the body; older hosts send it only as the reason phrase of the
// status line, so that is the fallback. A body that is not JSON (a proxy's
// HTML page) still gives an error with the reason phrase.
func parseAPIError(method, path string, status int, statusLine string, body []byte) *APIError {
	var b struct {
		Message text            `json:"message"`
		Errors  map[string]text `json:"errors"`
	}
	_ = json.Unmarshal(body, &b)
	msg := strings.TrimSpace(string(b.Message))
	if msg == "" {
		msg = strings.TrimSpace(strings.TrimPrefix(statusLine, strconv.Itoa(status)))
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	if msg == "" {
		msg = "HTTP " + strconv.Itoa(status)
	}
	e := &APIError{Method: method, Path: path, Status: status, Message: msg}
	if len(b.Errors) > 0 {
		e.Errors = make(map[string]string, len(b.Errors))
		for k, v := range b.Errors {
			e.Errors[k] = strings.TrimSpace(string(v))
		}
	}
	if status == http.StatusForbidden {
		if p, ok := ParsePermission(msg); ok {
			e.Permission = p
		}
	}
	return e
}

// get sends a GET and decodes the envelope's data into out.
func (c *Client) get(ctx context.Context, p apiPath, q url.Values, out any) error {
	env, err := c.do(ctx, http.MethodGet, p, q)
	if err != nil {
		return err
	}
	if err := decodeData(env.Data, out); err != nil {
		return fmt.Errorf("GET %s: decoding response: %w", p.plain, err)
	}
	return nil
}
