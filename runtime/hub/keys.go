package hub

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Keys maps a key id (the X-Felhom-Key header) to the Ed25519 public key
// that must have signed the request. A nil or empty Keys accepts nothing.
//
// Public keys are not secret in the cryptographic sense, but the project
// treats hub keys as configuration secrets: every printable form of Keys
// (fmt verbs, %#v, slog, JSON and text encoding) shows the key ids only.
type Keys map[string]ed25519.PublicKey

// keyIDPattern is what a key id may look like: printable, free of the
// separators of the "ID=BASE64,ID=BASE64" form, and at most 32 characters,
// shorter than a base64 Ed25519 key (43 or 44), so that a key pasted where
// the id belongs is never accepted as an id and then quoted in an error.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,31}$`)

// ParseKeys parses the environment form of hub.keys,
// "ID=BASE64[,ID=BASE64]...", where BASE64 is the standard base64 (padding
// optional) of a 32-byte Ed25519 public key. Blanks around entries are
// ignored; an empty string gives empty Keys. Errors name the entry's
// position and key id, never the key material.
func ParseKeys(s string) (Keys, error) {
	keys := Keys{}
	if strings.TrimSpace(s) == "" {
		return keys, nil
	}
	for i, entry := range strings.Split(s, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), "=")
		id = strings.TrimSpace(id)
		if !ok {
			if id == "" {
				return nil, fmt.Errorf("hub keys: entry %d is empty, want ID=BASE64", i+1)
			}
			return nil, fmt.Errorf("hub keys: entry %d: want ID=BASE64", i+1)
		}
		if err := keys.add(id, strings.TrimSpace(b64)); err != nil {
			return nil, fmt.Errorf("hub keys: entry %d: %w", i+1, err)
		}
	}
	return keys, nil
}

// KeysFromMap builds Keys from the configuration file's form of hub.keys, a
// JSON object {"ID": "BASE64", ...}. Errors name the key id, never the key
// material.
func KeysFromMap(m map[string]string) (Keys, error) {
	keys := Keys{}
	// Sorted so that the first error reported is the same on every start.
	for _, id := range slices.Sorted(maps.Keys(m)) {
		if err := keys.add(id, strings.TrimSpace(m[id])); err != nil {
			return nil, fmt.Errorf("hub keys: %w", err)
		}
	}
	return keys, nil
}

// add validates one id and key and adds them to k.
func (k Keys) add(id, b64 string) error {
	if !keyIDPattern.MatchString(id) {
		// An invalid id may be key material in the wrong place: never quote it.
		return fmt.Errorf("invalid key id (%d characters): want 1 to 32 of A-Z a-z 0-9 . _ : -, starting with a letter or digit", len(id))
	}
	if _, dup := k[id]; dup {
		return fmt.Errorf("key id %q: given twice", id)
	}
	if b64 == "" {
		return fmt.Errorf("key id %q: public key is empty", id)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Accept the unpadded form too; report the padded decoder's error,
		// which names a byte offset and no key material.
		var err2 error
		if raw, err2 = base64.RawStdEncoding.DecodeString(b64); err2 != nil {
			return fmt.Errorf("key id %q: public key is not standard base64: %w", id, err)
		}
	}
	if len(raw) != ed25519.PublicKeySize {
		return fmt.Errorf("key id %q: public key is %d bytes, want a %d-byte Ed25519 public key", id, len(raw), ed25519.PublicKeySize)
	}
	k[id] = ed25519.PublicKey(raw)
	return nil
}

// IDs returns the key ids in sorted order.
func (k Keys) IDs() []string { return slices.Sorted(maps.Keys(k)) }

// String shows the key ids only: "hub.Keys[a b]".
func (k Keys) String() string { return "hub.Keys[" + strings.Join(k.IDs(), " ") + "]" }

// GoString shows the key ids only (%#v).
func (k Keys) GoString() string { return k.String() }

// Format implements fmt.Formatter so that no verb, not even %x or %d,
// prints key material.
func (k Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue implements slog.LogValuer: the key ids only.
func (k Keys) LogValue() slog.Value { return slog.AnyValue(k.IDs()) }

// MarshalText implements encoding.TextMarshaler (and so JSON) with the key
// ids only. It is deliberately not the inverse of UnmarshalText.
func (k Keys) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads Keys from a flag, an environment variable or a
// configuration value: the "ID=BASE64[,ID=BASE64]" form of [ParseKeys], or
// a JSON object {"ID": "BASE64"} as in the configuration file.
func (k *Keys) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	var parsed Keys
	var err error
	if strings.HasPrefix(s, "{") {
		var m map[string]string
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			// The JSON error may quote a piece of the input; keep it out.
			return fmt.Errorf("hub keys: want a JSON object of key id to base64 public key")
		}
		parsed, err = KeysFromMap(m)
	} else {
		parsed, err = ParseKeys(s)
	}
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}
