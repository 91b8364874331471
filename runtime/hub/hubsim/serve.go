package hubsim

import (
	"crypto/x509/pkix"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/internal/selfsigned"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Server is a Sim served over TLS (HTTP/1.1 only).
type Server struct {
	// URL is "https://127.0.0.1:PORT", the agent's hub.url.
	URL string
	// Fingerprint is the SHA-256 of the certificate ("AB:CD:..."), the
	// agent's hub.fingerprint.
	Fingerprint string
	// CAPEM is the self-signed certificate, to trust as a CA (hub.ca_file).
	CAPEM []byte

	tls *selfsigned.Server
}

// Start serves s over TLS on addr ("" means a free loopback port) with a
// fresh self-signed certificate for 127.0.0.1, ::1 and localhost.
func (s *Sim) Start(addr string) (*Server, error) {
	sv, err := selfsigned.Serve(addr, s, pkix.Name{CommonName: "hub-sim", Organization: []string{"felhom hub simulator"}})
	if err != nil {
		return nil, fmt.Errorf("hubsim: %w", err)
	}
	return &Server{URL: sv.URL, Fingerprint: proxmox.FormatFingerprint(sv.SHA256[:]), CAPEM: sv.CAPEM, tls: sv}, nil
}

// Close stops the server, closing open connections.
func (sv *Server) Close() error { return sv.tls.Close() }
