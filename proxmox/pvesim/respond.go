package pvesim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is a handler's answer in PVE's terms; writeResponse turns it
// into the wire form of pve-http-server (AnyEvent.pm, Formatter/Standard.pm).
type response struct {
	status  int               // HTTP status; 0 means 200
	message string            // error text as PVE died with it, trailing newline included
	errors  map[string]string // per-parameter errors (400)
	data    any               // success payload
	total   int               // the envelope's "total" (task list and log), when > 0
	bare    bool              // no body: authentication failures are not formatted
	// plain is pveproxy's own error() answer (a body it refuses before
	// any handler runs): since libpve-http-server-perl 5.2.0 the message
	// is the body, as text without a Content-Type (pve-http-server commit
	// 9b59e1f "add error message into http body"); before it, no body.
	plain bool
}

// serverError is pveproxy's error(): status with msg as reason phrase
// and, since 5.2.0, as a plain-text body.
func serverError(status int, msg string) response {
	return response{status: status, message: msg, plain: true}
}

func ok(data any) response { return response{status: http.StatusOK, data: data} }

// die is a plain Perl die in a handler: a 500 with the text as message.
func die(format string, args ...any) response {
	return response{status: http.StatusInternalServerError, message: fmt.Sprintf(format, args...) + "\n"}
}

// paramError is PVE's raise_param_exc.
func paramError(errs map[string]string) response {
	return response{status: http.StatusBadRequest, message: msgParamFailed, errors: errs}
}

// permError is PVE's raise_perm_exc; what "" gives the bare text.
func permError(what string) response {
	msg := "Permission check failed"
	if what != "" {
		msg += " (" + what + ")"
	}
	return response{status: http.StatusForbidden, message: msg + "\n"}
}

func (r response) failed() bool { return r.status >= 400 }

// reason is the HTTP reason phrase PVE sends: the first line of the
// message, or the standard text.
func (r response) reason() string {
	first, _, _ := strings.Cut(r.message, "\n")
	first = strings.TrimRight(first, "\r")
	if first == "" || strings.ContainsAny(first, "\r\n") {
		return http.StatusText(r.status)
	}
	return first
}

// body encodes the JSON envelope: {"data": ...} on success, and on failure
// {"data": null, "message": ..., "errors": {...}}, where "message" exists
// only since PVE 8.4 (LegacyErrors leaves it out).
func (r response) body(legacy bool) []byte {
	if r.bare || (r.plain && legacy) {
		return nil
	}
	if r.plain {
		return []byte(r.message)
	}
	env := map[string]any{"data": r.data}
	if r.failed() {
		env["data"] = nil
		if !legacy {
			msg := r.message
			if msg == "" {
				msg = http.StatusText(r.status)
			}
			env["message"] = msg
		}
		if len(r.errors) > 0 {
			env["errors"] = r.errors
		}
	} else if r.total > 0 {
		env["total"] = r.total
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Perl's to_json leaves <, > and & alone
	if err := enc.Encode(env); err != nil {
		// Only a handler bug can get here; say so in PVE's shape.
		return []byte(`{"data":null,"message":"internal error - unable to encode response\n"}`)
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// writeResponse sends resp. Errors carry PVE's reason phrase, which
// net/http cannot set, so they are written on the hijacked connection with
// "Connection: close" (PVE also ends keep-alive after an error). Without a
// hijackable HTTP/1.x connection (HTTP/2, recorders) the standard phrase is
// used instead; the body still carries the message.
func writeResponse(w http.ResponseWriter, resp response, legacy bool, now time.Time) {
	if resp.status == 0 {
		resp.status = http.StatusOK
	}
	body := resp.body(legacy)
	h := w.Header()
	h.Set("Server", "pve-api-daemon/3.0")
	h.Set("Cache-Control", "max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", now.UTC().Format(http.TimeFormat))
	if body != nil && !resp.plain {
		h.Set("Content-Type", "application/json;charset=UTF-8")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if resp.failed() {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, rw, err := hj.Hijack(); err == nil {
				defer conn.Close()
				writeRaw(rw.Writer, resp.status, resp.reason(), h, body, now)
				return
			}
		}
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
}

func writeRaw(bw *bufio.Writer, status int, reason string, h http.Header, body []byte, now time.Time) {
	fmt.Fprintf(bw, "HTTP/1.1 %03d %s\r\n", status, reason)
	h.Set("Connection", "close")
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	_, _ = bw.Write(body)
	_ = bw.Flush()
}

// dropConnection closes the client's connection without any response, the
// way a crashed proxy or a cut cable looks to a client.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
