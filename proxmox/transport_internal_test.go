package proxmox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPathOf(t *testing.T) {
	tests := []struct {
		segments       []string
		escaped, plain string
	}{
		{[]string{"nodes", "pve1", "lxc", "101"}, "/nodes/pve1/lxc/101", "/nodes/pve1/lxc/101"},
		{[]string{"content", "usb:backup/vzdump-lxc-101.tar.zst"}, "/content/usb:backup%2Fvzdump-lxc-101.tar.zst", "/content/usb:backup/vzdump-lxc-101.tar.zst"},
		{[]string{"tasks", "UPID:pve1:00000001:00000002:00000003:vzdump::a@pve!t:"}, "/tasks/UPID:pve1:00000001:00000002:00000003:vzdump::a@pve%21t:", "/tasks/UPID:pve1:00000001:00000002:00000003:vzdump::a@pve!t:"},
		{[]string{"snapshot", "..", "."}, "/snapshot/%2E%2E/%2E", "/snapshot/../."},
		{[]string{"a b?c#d"}, "/a%20b%3Fc%23d", "/a b?c#d"},
	}
	for _, tt := range tests {
		p := pathOf(tt.segments...)
		if p.escaped != tt.escaped || p.plain != tt.plain {
			t.Errorf("pathOf(%q) = %q, %q; want %q, %q", tt.segments, p.escaped, p.plain, tt.escaped, tt.plain)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	c := &Client{backoffMin: 100 * time.Millisecond, backoffMax: 700 * time.Millisecond}
	caps := []time.Duration{100, 200, 400, 700, 700, 700}
	for i, limit := range caps {
		limit *= time.Millisecond
		for range 200 {
			if d := c.backoff(i + 1); d < limit/2 || d > limit {
				t.Fatalf("backoff(%d) = %v; want within [%v, %v]", i+1, d, limit/2, limit)
			}
		}
	}
	// A huge attempt number must not overflow into a negative delay.
	if d := c.backoff(1000); d < 350*time.Millisecond || d > 700*time.Millisecond {
		t.Errorf("backoff(1000) = %v", d)
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&APIError{Status: 502}, true},
		{&APIError{Status: 503}, true},
		{&APIError{Status: 595}, true},
		{&APIError{Status: 596}, true},
		{&APIError{Status: 500, Message: "CT is locked (backup)"}, false},
		{&APIError{Status: 500, Message: "Internal Server Error"}, false},
		{&APIError{Status: 504}, false},
		{&APIError{Status: 401}, false},
		{fmt.Errorf("GET /x: %w", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), true},
		{fmt.Errorf("GET /x: %w", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{fmt.Errorf("GET /x: %w", io.EOF), true},
		{fmt.Errorf("GET /x: reading response: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("GET /x: %w", context.DeadlineExceeded), false},
		{fmt.Errorf("GET /x: %w", &FingerprintError{Expected: "A", Got: "B"}), false},
		{errors.New("GET /x: decoding response envelope: invalid character"), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}

func TestPollTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&APIError{Status: 503}, true},
		{&APIError{Status: 504}, true},
		{&APIError{Status: 403, Message: "Permission check failed"}, false},
		{&APIError{Status: 500, Message: "no such task"}, false},
		{fmt.Errorf("GET /x: %w", io.EOF), true},
		{fmt.Errorf("GET /x: no answer within 30s: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("GET /x: %w", &net.DNSError{Err: "no such host", Name: "pve"}), true},
		{fmt.Errorf("GET /x: %w", &FingerprintError{Expected: "A", Got: "B"}), false},
		{errors.New("GET /x: decoding response: unexpected end of JSON input"), false},
	}
	for _, tt := range tests {
		if got := pollTransient(tt.err); got != tt.want {
			t.Errorf("pollTransient(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}

var apiErrorTests = []struct {
	status     int
	statusLine string
	body       string
	wantMsg    string
}{
	{500, "500 CT is locked (backup)", `{"data":null}`, "CT is locked (backup)"},
	{500, "500 Internal Server Error", `{"data":null,"message":"CT is locked (backup)\n"}`, "CT is locked (backup)"},
	{400, "400 Parameter verification failed.", `{"data":null,"errors":{"vmid":"VM 200 already exists"}}`, "Parameter verification failed."},
	{403, "403 Permission check failed (/vms/1, VM.Audit)", ``, "Permission check failed (/vms/1, VM.Audit)"},
	{502, "502", `<html>Bad Gateway</html>`, "Bad Gateway"},
	{599, "599", `{"message": 42}`, "42"},
	{599, "599", `{"message": ""}`, "HTTP 599"},
	{400, "400 x", `{"errors": ["not", "a", "map"]}`, "x"},
}

func TestParseAPIErrorMessage(t *testing.T) {
	for _, tt := range apiErrorTests {
		e := parseAPIError("GET", "/x", tt.status, tt.statusLine, []byte(tt.body))
		if e.Message != tt.wantMsg || e.Status != tt.status {
			t.Errorf("parseAPIError(%d, %q, %s) = %+v; want message %q", tt.status, tt.statusLine, tt.body, e, tt.wantMsg)
		}
	}
}

// FuzzParseAPIError checks that any error answer gives an *APIError with a
// message, and a permission only for a 403.
func FuzzParseAPIError(f *testing.F) {
	for _, tt := range apiErrorTests {
		f.Add(tt.status, tt.statusLine, []byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, status int, statusLine string, body []byte) {
		e := parseAPIError("GET", "/x", status, statusLine, body)
		if e == nil || e.Message == "" || strings.TrimSpace(e.Message) != e.Message {
			t.Fatalf("parseAPIError(%d, %q, %q) = %+v", status, statusLine, body, e)
		}
		if e.Permission != nil && status != 403 {
			t.Errorf("permission on a %d", status)
		}
		_ = e.Error()
	})
}
