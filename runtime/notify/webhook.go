package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
)

// sendWebhook POSTs ev, signed as the hub signs triggers.
func (n *Notifier) sendWebhook(ctx context.Context, ev *Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	u, err := url.Parse(n.cfg.WebhookURL)
	if err != nil {
		return fmt.Errorf("notify.webhook.url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	for k, v := range hub.Sign(n.cfg.Key.Private, n.cfg.Key.ID, http.MethodPost, path, body, n.cfg.Now()) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "felhom-agent")
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		// The URL may carry a token in its query: say where without it.
		return fmt.Errorf("POST %s://%s%s: %w", u.Scheme, u.Host, u.Path, unwrapURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s://%s%s: HTTP %d", u.Scheme, u.Host, u.Path, resp.StatusCode)
	}
	return nil
}

// unwrapURL drops a *url.Error's URL (which may hold a secret query).
func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
