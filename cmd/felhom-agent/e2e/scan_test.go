package e2e

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestSecretScanCatches proves the scan can fail: a leak of each kind of
// registered secret is found, the report does not repeat the secret, and
// only the exact allowed line is exempt.
func TestSecretScanCatches(t *testing.T) {
	const token = "felhom-agent@pve!agent=5f1c9a4e-3b7d-4c2a-8e6f-0d9b1a2c3e4f"
	registerTokenSecret(token)
	_, secret, _ := strings.Cut(token, "=")
	info := `{"endpoint":"https://127.0.0.1:1","token":"` + token + `"}`
	tests := []struct {
		name string
		text string
		hits int // lines with a secret
	}{
		{"clean", "run finished status=succeeded\n", 0},
		{"the token secret", "token=" + secret + "\n", 1},
		{"the token secret upper-cased", strings.ToUpper(secret) + "\n", 1},
		{"the hub public key", "keys: " + hubPubB64() + "\n", 1},
		{"the hub seed, raw base64", base64.RawStdEncoding.EncodeToString(hubPriv.Seed()) + "\n", 1},
		{"two lines", "a " + secret + "\nb " + hubPubB64() + "\n", 2},
		{"the allowed info line", info + "\n", 0},
		{"the info line with more on it", info + " \n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &capture{test: t.Name(), label: "sample", text: func() string { return tt.text }, allow: map[string]bool{info: true}}
			hits := scan(c)
			if len(hits) != tt.hits {
				t.Fatalf("scan found %d secrets (%q); want %d", len(hits), hits, tt.hits)
			}
			for _, h := range hits {
				if strings.Contains(h, secret) || strings.Contains(h, hubPubB64()) {
					t.Errorf("the report repeats the secret: %q", h)
				}
			}
		})
	}
}
