package notify

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
)

func TestKeyIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreateKey(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey (first) = %v, created %v", err, created)
	}
	k2, created, err := LoadOrCreateKey(dir)
	if err != nil || created || k2.Public() != k1.Public() || k2.ID != k1.ID {
		t.Fatalf("LoadOrCreateKey (again) = %v, %v, created %v; want the same key", k2, err, created)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if strings.TrimSpace(string(pub)) != k1.ID+"="+k1.Public() {
		t.Errorf("public key file = %q", pub)
	}
	seed := base64.StdEncoding.EncodeToString(k1.Private.Seed())
	for _, s := range []string{k1.String(), k1.GoString()} {
		if strings.Contains(s, seed) {
			t.Errorf("the key's text shows its seed: %s", s)
		}
	}
}

// TestWebhookSignedAndRetried: the receiver verifies the hub's signature
// scheme with the agent's public key; a 503 is retried with backoff.
func TestWebhookSignedAndRetried(t *testing.T) {
	key, _, err := LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := hub.ParseKeys(key.ID + "=" + key.Public())
	if err != nil {
		t.Fatal(err)
	}
	v := &hub.Verifier{Keys: keys}
	var calls atomic.Int32
	got := make(chan Event, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body, _, err := v.Verify(r)
		if err != nil {
			t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Error(err)
		}
		got <- ev
	}))
	defer srv.Close()
	journal := filepath.Join(t.TempDir(), JournalFile)
	n, err := New(Config{WebhookURL: srv.URL + "/hooks/felhom?token=s3cret", Key: key, Journal: journal, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(Event{Kind: KindRunFailed, Playbook: "backup", Run: "r-1", Status: "failed", Error: "guest 101: disk on fire",
		LogTail: []string{"INFO run started", "ERROR vzdump failed"}})
	select {
	case ev := <-got:
		if ev.Playbook != "backup" || ev.Run != "r-1" || ev.Status != "failed" || ev.Error == "" || len(ev.LogTail) != 2 || ev.ID == "" {
			t.Errorf("webhook got %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook")
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := n.Stats(); st.Delivered != 1 || st.Retries != 1 {
		t.Errorf("Stats = %+v; want 1 delivered after 1 retry", st)
	}
	b, _ := os.ReadFile(journal)
	if !strings.Contains(string(b), `"result":"delivered"`) || !strings.Contains(string(b), `"attempts":2`) || strings.Contains(string(b), "s3cret") {
		t.Errorf("journal:\n%s", b)
	}
}

// TestMailThroughRelay: a mail with the event reaches a loopback relay,
// with PLAIN authentication; the password appears nowhere else.
func TestMailThroughRelay(t *testing.T) {
	relay := startRelay(t)
	n, err := New(Config{SMTP: SMTPConfig{Addr: relay.addr, From: "agent@example.org", To: []string{"ops@example.org", "dev@example.org"},
		Username: "agent", Password: "pa55word"}, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(Event{Kind: KindRunTimedOut, Host: "pve1", Playbook: "backup", Run: "r-2", Status: "timed_out", Error: "deadline of 4h passed",
		LogTail: []string{"INFO backing up", ".a line starting with a dot"}})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mail := relay.mail()
	for _, want := range []string{"MAIL FROM:<agent@example.org>", "RCPT TO:<ops@example.org>", "RCPT TO:<dev@example.org>",
		"Subject: [felhom] backup timed_out on pve1 (run r-2)", "error:     deadline of 4h passed", "\r\n  .a line starting with a dot\r\n",
		"felhom-agent runs show r-2"} {
		if !strings.Contains(mail, want) {
			t.Errorf("the relay's transcript lacks %q:\n%s", want, mail)
		}
	}
	if !strings.Contains(mail, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00agent\x00pa55word"))) {
		t.Errorf("no PLAIN authentication:\n%s", mail)
	}
	cfg := Config{SMTP: SMTPConfig{Password: "pa55word"}}
	if shown := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, jsonOf(cfg)); strings.Contains(shown, "pa55word") {
		t.Errorf("the configuration shows the password: %s", shown)
	}
}

// TestFailedForGood: an unreachable relay is retried MaxAttempts times
// and recorded failed; Notify never blocks meanwhile.
func TestFailedForGood(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	journal := filepath.Join(t.TempDir(), JournalFile)
	n, err := New(Config{SMTP: SMTPConfig{Addr: addr, From: "a@b", To: []string{"c@d"}}, Journal: journal,
		Backoff: time.Millisecond, MaxAttempts: 3, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 50 {
		n.Notify(Event{Kind: KindScheduleMissed, Playbook: "backup"})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("50 Notify calls took %v; they must not block", took)
	}
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := n.Stats()
	if st.Failed == 0 || st.Dropped == 0 || st.Delivered != 0 {
		t.Errorf("Stats = %+v; want failures and drops", st)
	}
	b, _ := os.ReadFile(journal)
	if !strings.Contains(string(b), `"result":"failed"`) || !strings.Contains(string(b), `"attempts":3`) || !strings.Contains(string(b), `"result":"dropped"`) {
		t.Errorf("journal:\n%s", b)
	}
}

func TestConfigValidate(t *testing.T) {
	err := (&Config{WebhookURL: "http://x", SMTP: SMTPConfig{Addr: "x:25"}}).Validate()
	for _, want := range []string{"notify.webhook.url", "notify.smtp.from", "notify.smtp.to"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want %s named", err, want)
		}
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// relay is a minimal SMTP server on loopback that records the session.
type relay struct {
	addr string
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
}

func startRelay(t *testing.T) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String(), done: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		defer close(r.done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
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
	}()
	return r
}

func (r *relay) mail() string {
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}
