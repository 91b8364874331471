package pvesim

import (
	"crypto/x509/pkix"
	"fmt"
	"net/http"

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
	tls *selfsigned.Server
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
// node's pveproxy listens on its own address. The certificate is like
// pveproxy's self-signed one: a single ECDSA P-256 certificate that is
// its own CA.
func (s *Sim) StartNode(node, addr string) (*Server, error) {
	sv, err := selfsigned.Serve(addr, s.NodeHandler(node),
		pkix.Name{CommonName: DefaultNode + ".local", Organization: []string{"PVE Cluster Node"}}, DefaultNode)
	if err != nil {
		return nil, fmt.Errorf("pvesim: Start: %w", err)
	}
	fp := proxmox.FormatFingerprint(sv.SHA256[:])
	_ = s.with(func(st *state) error { st.nodeByName(node).fingerprint = fp; return nil })
	return &Server{
		Info: Info{Endpoint: sv.URL, Node: node, Token: DefaultTokenID + "=" + DefaultTokenSecret, Fingerprint: fp, CAPEM: sv.CAPEM},
		tls:  sv,
	}, nil
}

// ClientConfig is how a proxmox.Client reaches this server as an operator
// would configure it: the endpoint, the node, the default token and the
// certificate's fingerprint pinned.
func (i Info) ClientConfig() (proxmox.Config, error) {
	tok, err := proxmox.ParseToken(i.Token)
	if err != nil {
		return proxmox.Config{}, fmt.Errorf("pvesim: the server's token: %w", err)
	}
	return proxmox.Config{Endpoint: i.Endpoint, Node: i.Node, Token: tok, Fingerprint: i.Fingerprint}, nil
}

// Close stops the server at once, closing open connections.
func (sv *Server) Close() error { return sv.tls.Close() }

// Client returns an HTTP client that trusts exactly this server's
// certificate.
func (sv *Server) Client() *http.Client { return sv.tls.Client() }
