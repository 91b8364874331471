package proxmox_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

var tokenTests = []struct {
	in     string
	wantID string
	bad    string // part of the error; "" when valid
}{
	{in: "felhom-agent@pve!agent=" + testSecret, wantID: "felhom-agent@pve!agent"},
	{in: "  root@pam!ci-01=abc \n", wantID: "root@pam!ci-01"},
	{in: "a.b@ldap-corp!tok_1=s=with=equals", wantID: "a.b@ldap-corp!tok_1"},
	{in: "felhom-agent@pve!agent", bad: "must have the form USER@REALM!TOKENID=SECRET"},
	{in: "felhom-agent@pve!agent=", bad: "must have the form USER@REALM!TOKENID=SECRET"},
	{in: "felhom-agent@pve=" + testSecret, bad: `id "felhom-agent@pve"`},
	{in: "felhom-agent!agent=" + testSecret, bad: `id "felhom-agent!agent"`},
	{in: "@pve!agent=" + testSecret, bad: `id "@pve!agent"`},
	{in: "a b@pve!agent=" + testSecret, bad: `id "a b@pve!agent"`},
	{in: "felhom-agent@pve!1agent=" + testSecret, bad: `id "felhom-agent@pve!1agent"`},
}

func TestParseToken(t *testing.T) {
	for _, tt := range tokenTests {
		tok, err := proxmox.ParseToken(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("ParseToken(%q) error = %v; want one containing %q", tt.in, err, tt.bad)
			}
			if err != nil && strings.Contains(err.Error(), testSecret) {
				t.Errorf("ParseToken(%q) error shows the secret: %v", tt.in, err)
			}
			continue
		}
		if err != nil || tok.ID != tt.wantID || tok.Secret == "" {
			t.Errorf("ParseToken(%q) = %#v, %v; want id %q", tt.in, tok, err, tt.wantID)
		}
	}
}

func TestTokenParts(t *testing.T) {
	if u := testToken.User(); u != "felhom-agent@pve" {
		t.Errorf("User() = %q", u)
	}
	if testToken.IsZero() || !(proxmox.Token{}).IsZero() {
		t.Error("IsZero wrong")
	}
	if testToken.Secret.Reveal() != testSecret {
		t.Error("Reveal does not return the secret")
	}
}

// TestTokenRedaction checks every printable form of a token and of a
// configuration holding one.
func TestTokenRedaction(t *testing.T) {
	cfg := testConfig("https://pve:8006")
	var forms []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		forms = append(forms,
			fmt.Sprintf(verb, testToken), fmt.Sprintf(verb, testToken.Secret),
			fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg))
	}
	for _, v := range []any{testToken, testToken.Secret, cfg} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, string(b))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("config", "token", testToken, "secret", testToken.Secret, "cfg", cfg)
	}
	forms = append(forms, buf.String())
	for _, s := range forms {
		if strings.Contains(s, testSecret) || strings.Contains(s, fmt.Sprintf("%x", testSecret)) {
			t.Errorf("secret printed: %s", s)
		}
	}
	if s := fmt.Sprint(testToken); s != "felhom-agent@pve!agent=[REDACTED]" {
		t.Errorf("Token prints %q", s)
	}
}

func TestTokenFromJSON(t *testing.T) {
	var cfg proxmox.Config
	in := `{"endpoint":"https://pve:8006","node":"pve1","token":"felhom-agent@pve!agent=` + testSecret + `"}`
	if err := json.Unmarshal([]byte(in), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token.ID != testUser || cfg.Token.Secret.Reveal() != testSecret {
		t.Errorf("token = %v", cfg.Token)
	}
	err := json.Unmarshal([]byte(`{"token":"nobody=`+testSecret+`"}`), &cfg)
	if err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("bad token error = %v; want an error without the secret", err)
	}
}

// FuzzParseToken checks that ParseToken never panics, never shows the
// secret in an error, and that what it accepts prints redacted.
func FuzzParseToken(f *testing.F) {
	for _, tt := range tokenTests {
		f.Add(tt.in)
	}
	// The fixed parts of ParseToken's errors, which may contain a "secret"
	// by coincidence.
	const fixed = "API token must have the form USER@REALM!TOKENID=SECRET API token id  must have the form USER@REALM!TOKENID"
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := proxmox.ParseToken(s)
		if err != nil {
			id, secret, _ := strings.Cut(strings.TrimSpace(s), "=")
			msg := strings.ReplaceAll(err.Error(), fmt.Sprintf("%q", id), "")
			if len(secret) > 3 && strings.Contains(msg, secret) && !strings.Contains(fixed, secret) {
				t.Errorf("error %q shows the secret %q", err, secret)
			}
			return
		}
		if tok.ID == "" || tok.Secret == "" || tok.String() != tok.ID+"=[REDACTED]" {
			t.Errorf("ParseToken(%q) = %q", s, tok)
		}
	})
}
