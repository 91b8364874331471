package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

func TestCheckNode(t *testing.T) {
	cluster := proxmox.ClusterStatus{Name: "felhom", Quorate: true, Members: []proxmox.ClusterMember{
		{Name: "pve1", NodeID: 1, Online: true, Local: true}, {Name: "pve2", NodeID: 2, Online: true}, {Name: "pve3", NodeID: 3},
	}}
	single := proxmox.ClusterStatus{Quorate: true, Members: []proxmox.ClusterMember{{Name: "demo", Online: true, Local: true}}}
	for _, tc := range []struct {
		name string
		st   proxmox.ClusterStatus
		node string
		err  string // "" means ok
	}{
		{"the local member", cluster, "pve1", ""},
		{"another member", cluster, "pve2", `proxmox.node is "pve2", but the API endpoint is node "pve1" of cluster felhom`},
		{"no member", cluster, "pve9", `cluster felhom has no node "pve9" (members: pve1, pve2, pve3)`},
		{"single node", single, "demo", ""},
		{"single node, wrong name", single, "pve", `proxmox.node is "pve", but this Proxmox VE host is node "demo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := checkNode(tc.st, tc.node)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("checkNode = %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("checkNode = %v; want %q", err, tc.err)
			}
			if ch.Members != len(tc.st.Members) || ch.Name != tc.st.Name {
				t.Errorf("cluster health = %+v", ch)
			}
		})
	}
	if ch, _ := checkNode(cluster, "pve1"); len(ch.Offline) != 1 || ch.Offline[0] != "pve3" {
		t.Errorf("offline = %v; want [pve3]", ch.Offline)
	}
}
