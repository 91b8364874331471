package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
)

// TestServeNotifies: serve, configured with a webhook and a relay, tells
// both of a failed run (with its error and log tail) and passes a
// playbook's notify.send on; the webhook verifies with the public key
// the agent wrote beside its signing key; the relay's password is in no
// output.
func TestServeNotifies(t *testing.T) {
	dir := t.TempDir()
	for name, src := range map[string]string{
		"fails.star": "def run(ctx):\n    log.info(\"backing up\", vmid = 101)\n    fail(\"guest 101: disk on fire\")\n\nplaybook(name = \"fails\", run = run)\n",
		"tells.star": "def run(ctx):\n    return notify.send(\"disk sdc is failing\", level = \"critical\", disk = \"sdc\")\n\nplaybook(name = \"tells\", run = run)\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	events := make(chan notify.Event, 10)
	var hookErr error
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pub, err := os.ReadFile(filepath.Join(state, notify.PublicKeyFile))
		var body []byte
		if err == nil {
			var keys hub.Keys
			if keys, err = hub.ParseKeys(strings.TrimSpace(string(pub))); err == nil {
				body, _, err = (&hub.Verifier{Keys: keys}).Verify(r)
			}
		}
		var ev notify.Event
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		if err != nil {
			mu.Lock()
			hookErr = err
			mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		events <- ev
	}))
	defer hook.Close()
	relay := startTestRelay(t)

	sockDir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "s")
	saved := newServeParser
	defer func() { newServeParser = saved }()
	newServeParser = func() (*kong.Kong, *Globals, error) {
		var cli agentCLI
		p, err := newAgentKong(&cli, io.Discard, io.Discard)
		return p, &cli.Globals, err
	}
	t.Setenv("FELHOM_AGENT_NOTIFY_SMTP_PASSWORD", "pa55word")
	stderr := new(syncBuffer)
	done := make(chan error, 1)
	go func() {
		_, err := runAgentCLI(t, stderr, "--playbooks", dir, "serve", "--sim", "--listen=", "--socket="+sock, "--state-dir="+state,
			"--notify-webhook-url="+hook.URL+"/felhom", "--notify-smtp-addr="+relay.addr, "--notify-smtp-from=agent@example.org",
			"--notify-smtp-to=ops@example.org,dev@example.org", "--notify-smtp-username=agent")
		done <- err
	}()
	cl := api.NewClient(sock)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := cl.Playbooks(ctx); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr)
		case <-ctx.Done():
			t.Fatalf("serve never answered: %s", stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(stderr.String(), "notification webhook signing key generated") || !strings.Contains(stderr.String(), "verify_with=") {
		t.Errorf("serve did not print the webhook key's public half:\n%s", stderr)
	}
	failedRun, err := runAgentCLI(t, nil, "trigger", "fails", "--socket="+sock, "--follow")
	if exitCode(err) != exitFailed {
		t.Fatalf("trigger fails: %v\n%s", err, failedRun)
	}
	if _, err := runAgentCLI(t, nil, "trigger", "tells", "--socket="+sock, "--follow"); err != nil {
		t.Fatal(err)
	}

	got := map[string]notify.Event{}
	for len(got) < 2 {
		select {
		case ev := <-events:
			got[ev.Kind] = ev
		case <-ctx.Done():
			mu.Lock()
			t.Fatalf("webhook got %v; want a failure and a playbook's notification (last refusal: %v)", got, hookErr)
		}
	}
	if ev := got[notify.KindRunFailed]; ev.Playbook != "fails" || ev.Status != "failed" || !strings.Contains(ev.Error, "disk on fire") ||
		!strings.Contains(strings.Join(ev.LogTail, "\n"), "backing up vmid=101") || ev.Host == "" || !strings.HasPrefix(ev.Run, "r-") {
		t.Errorf("failure notification = %+v", ev)
	}
	if ev := got[notify.KindPlaybook]; ev.Playbook != "tells" || ev.Message != "disk sdc is failing" || ev.Level != "critical" || ev.Fields["disk"] != "sdc" {
		t.Errorf("playbook notification = %+v", ev)
	}
	mails := relay.waitMails(t, 2)
	if !strings.Contains(mails, "Subject: [felhom] fails failed on") || !strings.Contains(mails, "disk sdc is failing") || !strings.Contains(mails, "RCPT TO:<dev@example.org>") {
		t.Errorf("the relay got:\n%s", mails)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	journal, _ := os.ReadFile(filepath.Join(state, notify.JournalFile))
	if strings.Count(string(journal), `"result":"delivered"`) != 4 {
		t.Errorf("journal (want 2 events × 2 channels delivered):\n%s", journal)
	}
	if all := stderr.String() + string(journal); strings.Contains(all, "pa55word") {
		t.Errorf("the relay's password appears in the agent's output or journal")
	}
}

// testRelay is a loopback SMTP relay that accepts every mail.
type testRelay struct {
	addr string
	mu   sync.Mutex
	log  strings.Builder
	n    int
}

func startTestRelay(t *testing.T) *testRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &testRelay{addr: ln.Addr().String()}
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

func (r *testRelay) session(conn net.Conn) {
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
				r.n++
				r.mu.Unlock()
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

func (r *testRelay) waitMails(t *testing.T, n int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got, log := r.n, r.log.String()
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return log
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSMTPToForms(t *testing.T) {
	for in, want := range map[string]string{`["a@x","b@x"]`: "a@x b@x", "a@x, b@x": "a@x b@x", "": ""} {
		if got := strings.Join(splitLists([]string{in}), " "); got != want {
			t.Errorf("splitLists(%q) = %q; want %q", in, got, want)
		}
	}
}
