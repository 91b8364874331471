package proxmox

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
)

// redacted is what every printable form of a secret shows instead of it.
const redacted = "[REDACTED]"

// TokenSecret is the secret half of a PVE API token. It redacts itself in
// every form that could reach a log, an error, a run record or a Starlark
// value: fmt (%v, %s, %q, %#v), slog, JSON and text encoding. Only Reveal
// gives the secret, and only the Client's request signer calls it.
type TokenSecret string

// String implements fmt.Stringer with a redacted value.
func (TokenSecret) String() string { return redacted }

// GoString implements fmt.GoStringer with a redacted value (%#v).
func (TokenSecret) GoString() string { return redacted }

// LogValue implements slog.LogValuer with a redacted value.
func (TokenSecret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (and so JSON) with a
// redacted value.
func (TokenSecret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format implements fmt.Formatter so that no verb, not even %x, prints the
// secret.
func (TokenSecret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Reveal returns the secret itself. Call it only to build the Authorization
// header.
func (s TokenSecret) Reveal() string { return string(s) }

// Token is a PVE API token: the id USER@REALM!TOKENID and its secret.
// Printing a Token shows the id and a redacted secret.
type Token struct {
	ID     string      // USER@REALM!TOKENID, e.g. felhom-agent@pve!agent
	Secret TokenSecret // the UUID secret
}

// tokenIDPattern follows PVE's userid (user@realm) plus "!tokenid".
var tokenIDPattern = regexp.MustCompile(`^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]*$`)

// ParseToken parses the form PVE shows when a token is created and that the
// Authorization header carries: USER@REALM!TOKENID=SECRET. The error never
// contains the secret.
func ParseToken(s string) (Token, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || secret == "" {
		return Token{}, fmt.Errorf("API token must have the form USER@REALM!TOKENID=SECRET")
	}
	if !tokenIDPattern.MatchString(id) {
		return Token{}, fmt.Errorf("API token id %q must have the form USER@REALM!TOKENID", id)
	}
	return Token{ID: id, Secret: TokenSecret(secret)}, nil
}

// User returns the USER@REALM part of the token id.
func (t Token) User() string { u, _, _ := strings.Cut(t.ID, "!"); return u }

// IsZero reports whether no token is set.
func (t Token) IsZero() bool { return t.ID == "" && t.Secret == "" }

// String shows the id and a redacted secret.
func (t Token) String() string { return t.ID + "=" + redacted }

// GoString shows the id and a redacted secret.
func (t Token) GoString() string {
	return fmt.Sprintf("proxmox.Token{ID: %q, Secret: %s}", t.ID, redacted)
}

// LogValue implements slog.LogValuer: the id only.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalText encodes the id and a redacted secret.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText parses USER@REALM!TOKENID=SECRET, so a Token can be read
// from JSON configuration and flags.
func (t *Token) UnmarshalText(b []byte) error {
	p, err := ParseToken(string(b))
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// authorization is the value of the Authorization header for t.
func (t Token) authorization() string {
	return "PVEAPIToken=" + t.ID + "=" + t.Secret.Reveal()
}
