package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
)

// NotifyFlags configure the agent's notifications: a signed JSON webhook
// and/or mail through an SMTP relay, on a run's failure or timeout and on
// a missed timer tick, and for the playbooks' notify.send. Neither set
// means nobody is told (the metrics still are).
type NotifyFlags struct {
	WebhookURL   string   `name:"webhook-url" help:"URL that receives each notification as a JSON POST, signed with the agent's Ed25519 key (STATE_DIR/notify.key; its public half is logged at start and in notify.pub) like a hub trigger." placeholder:"URL" config:"notify.webhook.url"`
	SMTPAddr     string   `name:"smtp-addr" help:"host:port of the SMTP relay that mails notifications (STARTTLS when offered)." placeholder:"HOST:PORT" config:"notify.smtp.addr"`
	SMTPFrom     string   `name:"smtp-from" help:"Sender address of notification mail." placeholder:"ADDR" config:"notify.smtp.from"`
	SMTPTo       []string `name:"smtp-to" sep:"none" help:"Recipients of notification mail, comma-separated (in the config file, a list); repeatable." placeholder:"ADDR,..." config:"notify.smtp.to"`
	SMTPUsername string   `name:"smtp-username" help:"User for PLAIN authentication at the relay; empty sends unauthenticated." config:"notify.smtp.username"`
	SMTPPassword string   `name:"smtp-password" help:"Password for the relay (prefer the environment or the config file: flags show in ps)." config:"notify.smtp.password"`
}

// notifier builds the notifier the flags ask for, with its signing key in
// stateDir; nil when no channel is configured. Errors name the key.
func (f *NotifyFlags) notifier(stateDir string, logger *slog.Logger) (*notify.Notifier, error) {
	if f.WebhookURL == "" && f.SMTPAddr == "" {
		return nil, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	cfg := notify.Config{
		WebhookURL: f.WebhookURL,
		SMTP: notify.SMTPConfig{Addr: f.SMTPAddr, From: f.SMTPFrom, To: splitLists(f.SMTPTo),
			Username: f.SMTPUsername, Password: notify.Secret(f.SMTPPassword)},
		Journal: filepath.Join(stateDir, notify.JournalFile),
		Logger:  logger.With("part", "notify"),
	}
	if f.WebhookURL != "" {
		u, err := url.Parse(f.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("notify.webhook.url: want an http(s) URL")
		}
		key, created, err := notify.LoadOrCreateKey(stateDir)
		if err != nil {
			return nil, fmt.Errorf("notify.webhook.url: %w (state_dir %s)", err, stateDir)
		}
		cfg.Key = key
		what := "notification webhook signing key"
		if created {
			what = "notification webhook signing key generated"
		}
		// The public half, for the receiver: as hub.keys takes a key.
		logger.Info(what, "key_id", key.ID, "public_key", key.Public(), "verify_with", key.ID+"="+key.Public(),
			"file", filepath.Join(stateDir, notify.PublicKeyFile))
	}
	return notify.New(cfg)
}

// splitLists reads each value of a list flag with splitList.
func splitLists(vs []string) []string {
	var out []string
	for _, v := range vs {
		out = append(out, splitList(v)...)
	}
	return out
}

// splitList reads a list flag: a JSON array (the configuration file's
// form) or comma-separated.
func splitList(s string) []string {
	s = strings.TrimSpace(s)
	var out []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &out) == nil {
		return out
	}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
