package hubsim

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/selfsigned"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Server is a Sim served over TLS.
type Server struct {
	// URL is "https://127.0.0.1:PORT", the agent's hub.url.
	URL string
	// Fingerprint is the SHA-256 of the certificate ("AB:CD:..."), the
	// agent's hub.fingerprint.
	Fingerprint string
	// CAPEM is the self-signed certificate, to trust as a CA (hub.ca_file).
	CAPEM []byte

	srv  *http.Server
	done chan struct{}
	err  error
}

// Start serves s over TLS on addr ("" means a free loopback port) with a
// fresh self-signed certificate for 127.0.0.1, ::1 and localhost.
func (s *Sim) Start(addr string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cert, der, err := selfsigned.Certificate(time.Now(), pkix.Name{CommonName: "hub-sim", Organization: []string{"felhom hub simulator"}})
	if err != nil {
		return nil, fmt.Errorf("hubsim: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hubsim: %w", err)
	}
	sum := sha256.Sum256(der)
	sv := &Server{
		URL:         "https://" + ln.Addr().String(),
		Fingerprint: proxmox.FormatFingerprint(sum[:]),
		CAPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		done:        make(chan struct{}),
		srv: &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0), // dropped connections are a fault we inject
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		},
	}
	go func() {
		defer close(sv.done)
		if err := sv.srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			sv.err = err
		}
	}()
	return sv, nil
}

// Close stops the server, closing open connections.
func (sv *Server) Close() error {
	err := sv.srv.Close()
	<-sv.done
	if err == nil {
		err = sv.err
	}
	return err
}
