package pvesim

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// PipeTransport serves h over in-memory connections (net.Pipe) and returns
// a transport whose every request, to any host and over http or https,
// reaches h through a real HTTP/1.1 exchange: keep-alive connections, a
// server goroutine per connection, request and response bodies streamed.
// Give it to proxmox.WithTransport.
//
// It exists for testing/synctest bubbles: a goroutine blocked on a loopback
// socket is not durably blocked, so a bubble cannot reach an httptest TLS
// server, but it can reach this one, and the simulator's lazy task clock
// (Sim.Now unset reads time.Now) then runs on the bubble's fake time. The
// "https" is only a name: nothing is encrypted, so the Client's TLS trust
// settings are not used.
//
// Call stop before the bubble ends: it closes the server, its connections
// and the transport's idle connections, so their goroutines exit.
func PipeTransport(h http.Handler) (rt *http.Transport, stop func()) {
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		select {
		case ln.conns <- server:
			return client, nil
		case <-ln.done:
			client.Close()
			server.Close()
			return nil, net.ErrClosed
		case <-ctx.Done():
			client.Close()
			server.Close()
			return nil, ctx.Err()
		}
	}
	rt = &http.Transport{
		DialContext:         dial,
		DialTLSContext:      dial,
		MaxIdleConnsPerHost: 64,
	}
	return rt, func() {
		_ = srv.Close()
		<-served
		rt.CloseIdleConnections()
	}
}

// pipeListener is a net.Listener whose connections come from dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
