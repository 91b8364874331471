package pvesim

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
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

// Info is what a client needs to reach a served Sim.
type Info struct {
	Endpoint    string // "https://127.0.0.1:PORT"
	Node        string // the node name
	Token       string // USER@REALM!TOKENID=SECRET of the default token
	Fingerprint string // SHA-256 of the certificate, "AB:CD:..." as PVE shows it
	CAPEM       []byte // the self-signed certificate, to trust as a CA
}

// Server is a Sim served over TLS (HTTP/1.1 only, so error reason phrases
// reach the client as PVE sends them).
type Server struct {
	Info
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
}

// Start serves s over TLS on addr ("" means "127.0.0.1:0", a free loopback
// port) with a fresh self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost. It returns once the listener is ready; Close stops it.
func (s *Sim) Start(addr string) (*Server, error) {
	s.init()
	return s.StartNode(s.st.node.name, addr)
}

// StartNode serves s as node (see NodeHandler) over TLS on addr, like
// Start: a cluster world serves each node on its own listener, as each
// node's pveproxy listens on its own address.
func (s *Sim) StartNode(node, addr string) (*Server, error) {
	handler := s.NodeHandler(node)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cert, certDER, err := selfSignedCert(time.Now()) // verified by real clocks, whatever Now says
	if err != nil {
		return nil, fmt.Errorf("pvesim: Start: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pvesim: Start: %w", err)
	}
	sum := sha256.Sum256(certDER)
	fp := proxmox.FormatFingerprint(sum[:])
	_ = s.with(func(st *state) error { st.nodeByName(node).fingerprint = fp; return nil })

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// An empty map disables HTTP/2: its frames have no reason phrase.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Clients that reject the certificate on purpose (trust tests)
		// would fill the log with handshake errors.
		ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"http/1.1"},
			MinVersion:   tls.VersionTLS12,
		},
	}
	sv := &Server{
		Info: Info{
			Endpoint:    "https://" + ln.Addr().String(),
			Node:        node,
			Token:       DefaultTokenID + "=" + DefaultTokenSecret,
			Fingerprint: fp,
			CAPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		},
		srv:  srv,
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(sv.done)
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			sv.err = err
		}
	}()
	return sv, nil
}

// Close stops the server at once, closing open connections.
func (sv *Server) Close() error {
	err := sv.srv.Close()
	<-sv.done
	if err == nil {
		err = sv.err
	}
	return err
}

// Client returns an HTTP client that trusts exactly this server's
// certificate.
func (sv *Server) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sv.CAPEM)
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: false,
		},
		Timeout: 30 * time.Second,
	}
}

// selfSignedCert makes a certificate like pveproxy's self-signed one: a
// single ECDSA P-256 certificate that is its own CA.
func selfSignedCert(now time.Time) (tls.Certificate, []byte, error) {
	return selfsigned.Certificate(now, pkix.Name{CommonName: DefaultNode + ".local", Organization: []string{"PVE Cluster Node"}}, DefaultNode)
}
