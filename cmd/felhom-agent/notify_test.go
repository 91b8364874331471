package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify/notifytest"
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
	hook := notifytest.NewWebhook(t, func() (string, error) {
		pub, err := os.ReadFile(filepath.Join(state, notify.PublicKeyFile))
		return string(pub), err
	}, 0)
	relay := notifytest.NewRelay(t)

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
			"--notify-webhook-url="+hook.URL+"/felhom", "--notify-smtp-addr="+relay.Addr, "--notify-smtp-from=agent@example.org",
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
		ev := hook.Next(t)
		got[ev.Kind] = ev
	}
	if ev := got[notify.KindRunFailed]; ev.Playbook != "fails" || ev.Status != "failed" || !strings.Contains(ev.Error, "disk on fire") ||
		!strings.Contains(strings.Join(ev.LogTail, "\n"), "backing up vmid=101") || ev.Host == "" || !strings.HasPrefix(ev.Run, "r-") {
		t.Errorf("failure notification = %+v", ev)
	}
	if ev := got[notify.KindPlaybook]; ev.Playbook != "tells" || ev.Message != "disk sdc is failing" || ev.Level != "critical" || ev.Fields["disk"] != "sdc" {
		t.Errorf("playbook notification = %+v", ev)
	}
	mails := relay.WaitMails(t, 2)
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

func TestSMTPToForms(t *testing.T) {
	for in, want := range map[string]string{`["a@x","b@x"]`: "a@x b@x", "a@x, b@x": "a@x b@x", "": ""} {
		if got := strings.Join(splitLists([]string{in}), " "); got != want {
			t.Errorf("splitLists(%q) = %q; want %q", in, got, want)
		}
	}
}
