package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// sendMail sends ev as one plain-text mail through the relay.
func (n *Notifier) sendMail(ctx context.Context, ev *Event) error {
	c := n.cfg.SMTP
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("notify.smtp.addr: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", c.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// net/smtp has no context: closing the connection interrupts it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", c.Addr, err)
	}
	defer cl.Close()
	if ok, _ := cl.Extension("STARTTLS"); ok {
		if err := cl.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", c.Addr, err)
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, string(c.Password), host)); err != nil {
			return fmt.Errorf("smtp %s: authentication as %s: %w", c.Addr, c.Username, err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", c.Addr, err)
	}
	for _, to := range c.To {
		if err := cl.Rcpt(to); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", c.Addr, to, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", c.Addr, err)
	}
	if _, err := w.Write(message(c.From, c.To, ev, n.cfg.Now())); err != nil {
		return fmt.Errorf("smtp %s: %w", c.Addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: %w", c.Addr, err)
	}
	return cl.Quit()
}

// message is the RFC 5322 text of ev's mail, CRLF line ends.
func message(from string, to []string, ev *Event, now time.Time) []byte {
	var b strings.Builder
	hdr := func(k, v string) {
		// No header injection: a value's line breaks become spaces.
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		b.WriteString(k + ": " + v + "\r\n")
	}
	hdr("From", from)
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", ev.Subject())
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+ev.ID+"@felhom-agent>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	// Dot-stuffing is the DATA writer's (textproto.DotWriter).
	for _, line := range strings.Split(ev.Text(), "\n") {
		b.WriteString(line + "\r\n")
	}
	return []byte(b.String())
}
