package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Everything the suite sees of the product — every process's stdout and
// stderr, every HTTP answer, every run record — is captured here, and
// scanned for the secrets registered below: the sim's API token secret and
// the hub's key material in every printable encoding. The one exception is
// the sim command's info line, which prints the token on purpose; it is
// excluded exactly (the line, not the stream).

type capture struct {
	test  string
	label string
	text  func() string
	allow map[string]bool // exact lines the scan skips
}

var captures struct {
	sync.Mutex
	list    []*capture
	secrets map[string]string // value -> name
}

// addSecret registers value (named name) for the scan.
func addSecret(name, value string) {
	if len(value) < 8 {
		return // too short to be meaningful; would match by accident
	}
	captures.Lock()
	defer captures.Unlock()
	if captures.secrets == nil {
		captures.secrets = map[string]string{}
	}
	captures.secrets[value] = name
}

// registerHubSecrets adds the hub's public key, private key and seed in
// standard, raw, URL-safe base64 and hex.
func registerHubSecrets() {
	for name, b := range map[string][]byte{"hub public key": hubPub, "hub private key": hubPriv, "hub key seed": hubPriv.Seed()} {
		addSecret(name+" (base64)", base64.StdEncoding.EncodeToString(b))
		addSecret(name+" (raw base64)", base64.RawStdEncoding.EncodeToString(b))
		addSecret(name+" (url base64)", base64.RawURLEncoding.EncodeToString(b))
		addSecret(name+" (hex)", hex.EncodeToString(b))
	}
}

// registerTokenSecret adds the secret part of a PVE API token.
func registerTokenSecret(token string) {
	if _, secret, ok := strings.Cut(token, "="); ok {
		addSecret("API token secret", secret)
		addSecret("API token secret (upper case)", strings.ToUpper(secret))
	}
}

// captureStream registers a process stream.
func captureStream(t testing.TB, label string, s *stream) *capture {
	c := &capture{test: t.Name(), label: label, text: s.String, allow: map[string]bool{}}
	captures.Lock()
	captures.list = append(captures.list, c)
	captures.Unlock()
	return c
}

// captureBytes registers a finished piece of output (an HTTP answer, a
// record) and scans it at once, failing t on a hit.
func captureBytes(t testing.TB, label string, b []byte) {
	t.Helper()
	text := string(b)
	c := &capture{test: t.Name(), label: label, text: func() string { return text }}
	captures.Lock()
	captures.list = append(captures.list, c)
	captures.Unlock()
	for _, h := range scan(c) {
		t.Errorf("secret scan: %s", h)
	}
}

// allowLine exempts one exact line of c from the scan.
func (c *capture) allowLine(line string) {
	captures.Lock()
	defer captures.Unlock()
	c.allow[line] = true
}

// scan returns one description per secret found in c, never the secret
// itself.
func scan(c *capture) []string {
	captures.Lock()
	secrets := make(map[string]string, len(captures.secrets))
	for v, n := range captures.secrets {
		secrets[v] = n
	}
	allow := make(map[string]bool, len(c.allow))
	for l := range c.allow {
		allow[l] = true
	}
	captures.Unlock()
	var hits []string
	for i, line := range strings.Split(c.text(), "\n") {
		if allow[line] {
			continue
		}
		// One hit per line; every secret on it is masked in the report.
		var names []string
		masked := line
		for v, name := range secrets {
			if strings.Contains(line, v) {
				names = append(names, name)
				masked = strings.ReplaceAll(masked, v, "[SECRET]")
			}
		}
		for v := range secrets { // a shorter encoding may overlap a longer one
			masked = strings.ReplaceAll(masked, v, "[SECRET]")
		}
		if len(names) > 0 {
			slices.Sort(names)
			hits = append(hits, fmt.Sprintf("%s found in %s (test %s), line %d: %s",
				strings.Join(names, ", "), c.label, c.test, i+1, clipLine(masked)))
		}
	}
	return hits
}

func clipLine(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// scanOwned scans the streams of p (which has exited), failing t on a hit.
func scanOwned(t testing.TB, p *proc) {
	for _, c := range []*capture{p.outCap, p.errCap} {
		for _, h := range scan(c) {
			t.Errorf("secret scan: %s", h)
		}
	}
}

// scanAll scans every capture of the whole suite, prints the hits and the
// coverage to w, and returns the number of hits.
func scanAll(w io.Writer) int {
	captures.Lock()
	list := append([]*capture(nil), captures.list...)
	nSecrets := len(captures.secrets)
	captures.Unlock()
	var hits []string
	var bytes int
	var largest *capture
	largestN := 0
	for _, c := range list {
		n := len(c.text())
		bytes += n
		if n > largestN {
			largest, largestN = c, n
		}
		hits = append(hits, scan(c)...)
	}
	fmt.Fprintf(w, "\n=== secret scan: %d captures, %d bytes, %d secret encodings, %d hits\n", len(list), bytes, nSecrets, len(hits))
	if largest != nil {
		fmt.Fprintf(w, "largest capture: %s (test %s), %d bytes\n", largest.label, largest.test, largestN)
	}
	for _, h := range hits {
		fmt.Fprintf(w, "LEAK: %s\n", h)
	}
	summary.Lock()
	summary.figures = append(summary.figures, figure{"(suite)", "secret scan: captures / bytes / hits",
		fmt.Sprintf("%d / %d / %d", len(list), bytes, len(hits))})
	summary.Unlock()
	return len(hits)
}
