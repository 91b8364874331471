package selfsigned

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
)

// Server is a handler served over TLS with a fresh self-signed
// certificate (see [Serve]), HTTP/1.1 only.
type Server struct {
	// URL is "https://HOST:PORT", the listener's address.
	URL string
	// SHA256 is the SHA-256 of the certificate's DER encoding: what a
	// client pins.
	SHA256 [32]byte
	// CAPEM is the certificate as PEM, to trust as a CA.
	CAPEM []byte

	srv  *http.Server
	done chan struct{}
	err  error
}

// Serve serves h over TLS on addr ("" means "127.0.0.1:0", a free
// loopback port) with a new [Certificate] named subject for dnsNames
// besides the loopback names. It returns once the listener is ready;
// Close stops it.
//
// It speaks HTTP/1.1 only, so reason phrases reach clients as the
// handler writes them (HTTP/2 has none), and its own log is silenced:
// clients that refuse the certificate on purpose, and connections a test
// drops, would fill it with handshake errors.
func Serve(addr string, h http.Handler, subject pkix.Name, dnsNames ...string) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cert, der, err := Certificate(time.Now(), subject, dnsNames...) // verified by real clocks, whatever a simulator's Now says
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	sv := &Server{
		URL:    "https://" + ln.Addr().String(),
		SHA256: sha256.Sum256(der),
		CAPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		done:   make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			// An empty map disables HTTP/2.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			ErrorLog:     log.New(io.Discard, "", 0),
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{cert},
				NextProtos:   []string{"http/1.1"},
				MinVersion:   tls.VersionTLS12,
			},
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

// Close stops the server at once, closing open connections, and returns
// the error serving stopped with, if any.
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
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		Timeout:   30 * time.Second,
	}
}
