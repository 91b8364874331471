package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// TestPublicReason: /healthz is unauthenticated, so it names the kind of
// problem and never the host's address or messages.
func TestPublicReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("GET /version: %w", &proxmox.FingerprintError{Expected: "AA", Got: "BB"}), "TLS verification of the Proxmox API failed"},
		{fmt.Errorf("GET /version: %w", &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 8006}, Err: syscall.ECONNREFUSED}), "the Proxmox API refused the connection (unreachable)"},
		{fmt.Errorf("probe: %w", context.DeadlineExceeded), "the Proxmox API did not answer in time"},
		{&proxmox.APIError{Method: "GET", Path: "/version", Status: 401, Message: "authentication failure"}, "the Proxmox API refused the token (HTTP 401)"},
		{&proxmox.APIError{Method: "GET", Path: "/version", Status: 500, Message: "secret internals at /etc/pve"}, "the Proxmox API answered HTTP 500"},
		{errors.New("dial tcp 10.0.0.7:8006: no route to host"), "the Proxmox API is unreachable"},
	}
	for _, tt := range tests {
		if got := publicReason(tt.err); got != tt.want {
			t.Errorf("publicReason(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}
