// Package notifytest holds the receivers that notification tests deliver
// to: a webhook that verifies the agent's signature and hands over each
// event, and a loopback SMTP relay that records its sessions. It is for
// tests only; nothing in the agent binary imports it.
package notifytest

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
)

// wait is how long WaitMails and Next wait at most: a ceiling for a
// broken test, never a timed assertion.
const wait = 20 * time.Second

// Webhook is a receiver of the notifier's signed webhook: each request is
// verified with the hub's scheme (runtime/hub.Verifier) against the key
// Key returns, and its event is handed over on Events.
type Webhook struct {
	// URL is the receiver's address ("http://127.0.0.1:PORT").
	URL string
	// Events carries every verified event, in the order they arrived.
	Events chan notify.Event

	mu    sync.Mutex
	calls int
	err   error
}

// NewWebhook serves a webhook receiver for the test's lifetime. key
// returns the public key to verify with, as notify.PublicKeyFile holds it
// ("ID=BASE64"); it is asked on every request, since an agent may write
// it only once it runs. The first failFirst requests are answered 503
// unread, to exercise retries; an unverifiable one is answered 401 and
// kept (Err).
func NewWebhook(t testing.TB, key func() (string, error), failFirst int) *Webhook {
	t.Helper()
	w := &Webhook{Events: make(chan notify.Event, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.calls++
		n := w.calls
		w.mu.Unlock()
		if n <= failFirst {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ev, err := verify(r, key)
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Events <- ev
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

func verify(r *http.Request, key func() (string, error)) (notify.Event, error) {
	var ev notify.Event
	k, err := key()
	if err != nil {
		return ev, err
	}
	keys, err := hub.ParseKeys(strings.TrimSpace(k))
	if err != nil {
		return ev, err
	}
	body, _, err := (&hub.Verifier{Keys: keys}).Verify(r)
	if err != nil {
		return ev, err
	}
	return ev, json.Unmarshal(body, &ev)
}

// Calls returns how many requests arrived.
func (w *Webhook) Calls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// Err returns why the last refused request was refused; nil if none was.
func (w *Webhook) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Next returns the next verified event, failing the test if none comes.
func (w *Webhook) Next(t testing.TB) notify.Event {
	t.Helper()
	select {
	case ev := <-w.Events:
		return ev
	case <-time.After(wait):
		t.Fatalf("no webhook event (%d requests; last refusal: %v)", w.Calls(), w.Err())
		return notify.Event{}
	}
}

// Relay is a loopback SMTP relay that accepts every mail, offering PLAIN
// authentication and no STARTTLS, and records every session's lines.
type Relay struct {
	// Addr is its "127.0.0.1:PORT".
	Addr string

	mu    sync.Mutex
	log   strings.Builder
	mails int
	more  chan struct{} // a mail was accepted
}

// NewRelay serves a relay for the test's lifetime.
func NewRelay(t testing.TB) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &Relay{Addr: ln.Addr().String(), more: make(chan struct{}, 1)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go r.session(conn)
		}
	}()
	return r
}

func (r *Relay) session(conn net.Conn) {
	defer conn.Close()
	rd := bufio.NewReader(conn)
	say := func(s string) { conn.Write([]byte(s + "\r\n")) }
	say("220 relay ESMTP")
	inData := false
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		r.mu.Lock()
		r.log.WriteString(line)
		r.mu.Unlock()
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case inData:
			if strings.TrimRight(line, "\r\n") == "." {
				inData = false
				r.mu.Lock()
				r.mails++
				r.mu.Unlock()
				select {
				case r.more <- struct{}{}:
				default:
				}
				say("250 queued")
			}
		case strings.HasPrefix(cmd, "EHLO"):
			say("250-relay")
			say("250 AUTH PLAIN")
		case strings.HasPrefix(cmd, "AUTH"):
			say("235 ok")
		case strings.HasPrefix(cmd, "DATA"):
			inData = true
			say("354 go on")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

// WaitMails waits until the relay has accepted n mails and returns every
// line it was sent, failing the test if they do not come.
func (r *Relay) WaitMails(t testing.TB, n int) string {
	t.Helper()
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		got, log := r.mails, r.log.String()
		r.mu.Unlock()
		if got >= n {
			return log
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("the relay accepted %d mails; want %d. It was sent:\n%s", got, n, log)
		}
	}
}
