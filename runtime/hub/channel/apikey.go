package channel

import (
	"fmt"
	"log/slog"
)

const redacted = "[redacted]"

// APIKey is the host's bearer key for the hub (hub.api_key). It redacts
// itself wherever it is printed, logged or marshalled: fmt's verbs, slog,
// JSON and text all show "[redacted]"; only [APIKey.Reveal] gives the
// secret, for the Authorization header.
type APIKey string

// String is "[redacted]".
func (APIKey) String() string { return redacted }

// GoString is "[redacted]" (%#v).
func (APIKey) GoString() string { return redacted }

// LogValue is "[redacted]".
func (APIKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText is "[redacted]", so JSON shows it redacted too.
func (APIKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format writes "[redacted]" for every verb, %x and %q included.
func (APIKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Reveal returns the secret. Call it only to build the request header.
func (k APIKey) Reveal() string { return string(k) }
