package notify_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify/notifytest"
)

func TestKeyIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := notify.LoadOrCreateKey(dir)
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKey (first) = %v, created %v", err, created)
	}
	k2, created, err := notify.LoadOrCreateKey(dir)
	if err != nil || created || k2.Public() != k1.Public() || k2.ID != k1.ID {
		t.Fatalf("LoadOrCreateKey (again) = %v, %v, created %v; want the same key", k2, err, created)
	}
	fi, err := os.Stat(filepath.Join(dir, notify.KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	pub, _ := os.ReadFile(filepath.Join(dir, notify.PublicKeyFile))
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
	key, _, err := notify.LoadOrCreateKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hook := notifytest.NewWebhook(t, func() (string, error) { return key.ID + "=" + key.Public(), nil }, 1)
	journal := filepath.Join(t.TempDir(), notify.JournalFile)
	n, err := notify.New(notify.Config{WebhookURL: hook.URL + "/hooks/felhom?token=s3cret", Key: key, Journal: journal, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(notify.Event{Kind: notify.KindRunFailed, Playbook: "backup", Run: "r-1", Status: "failed", Error: "guest 101: disk on fire",
		LogTail: []string{"INFO run started", "ERROR vzdump failed"}})
	if ev := hook.Next(t); ev.Playbook != "backup" || ev.Run != "r-1" || ev.Status != "failed" || ev.Error == "" || len(ev.LogTail) != 2 || ev.ID == "" {
		t.Errorf("webhook got %+v", ev)
	}
	if hook.Calls() != 2 || hook.Err() != nil {
		t.Errorf("the webhook saw %d requests (refusal: %v); want the 503'd one and the signed one", hook.Calls(), hook.Err())
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
	relay := notifytest.NewRelay(t)
	n, err := notify.New(notify.Config{SMTP: notify.SMTPConfig{Addr: relay.Addr, From: "agent@example.org", To: []string{"ops@example.org", "dev@example.org"},
		Username: "agent", Password: "pa55word"}, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify(notify.Event{Kind: notify.KindRunTimedOut, Host: "pve1", Playbook: "backup", Run: "r-2", Status: "timed_out", Error: "deadline of 4h passed",
		LogTail: []string{"INFO backing up", ".a line starting with a dot"}})
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mail := relay.WaitMails(t, 1)
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
	cfg := notify.Config{SMTP: notify.SMTPConfig{Password: "pa55word"}}
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
	journal := filepath.Join(t.TempDir(), notify.JournalFile)
	n, err := notify.New(notify.Config{SMTP: notify.SMTPConfig{Addr: addr, From: "a@b", To: []string{"c@d"}}, Journal: journal,
		Backoff: time.Millisecond, MaxAttempts: 3, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 50 {
		n.Notify(notify.Event{Kind: notify.KindScheduleMissed, Playbook: "backup"})
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
	err := (&notify.Config{WebhookURL: "http://x", SMTP: notify.SMTPConfig{Addr: "x:25"}}).Validate()
	for _, want := range []string{"notify.webhook.url", "notify.smtp.from", "notify.smtp.to"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want %s named", err, want)
		}
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }
