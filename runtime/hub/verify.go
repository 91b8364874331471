package hub

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// Defaults of the zero Verifier.
const (
	DefaultMaxSkew = 300 * time.Second // how far a timestamp may be from the agent's clock
	DefaultMaxBody = 64 << 10          // largest request body read, in bytes
)

// Verifier checks the signature of hub requests. The zero value with Keys
// set is ready to use; it is safe for concurrent use as long as its fields
// are not changed.
type Verifier struct {
	// Keys are the public keys allowed to sign. Nil accepts nothing.
	Keys Keys
	// MaxSkew is how far, in whole seconds, the signed timestamp may lie
	// before or after the agent's clock. Zero means DefaultMaxSkew.
	MaxSkew time.Duration
	// Now is the agent's clock. Nil means time.Now.
	Now func() time.Time
	// MaxBody is the largest body read, in bytes; a larger one is refused
	// with 413. Zero means DefaultMaxBody.
	MaxBody int64
}

// Public messages of rejections: short, stable, and free of internals.
const (
	msgMissingHeader = "missing %s header"
	msgDuplicate     = "more than one %s header"
	msgUnknownKey    = "unknown key id"
	msgBadTimestamp  = "malformed timestamp"
	msgStale         = "timestamp outside the allowed window"
	msgBadSignature  = "malformed signature"
	msgForged        = "signature does not verify"
	msgTooLarge      = "request body too large"
	msgUnreadable    = "cannot read request body"
)

// Verify authenticates r: the key id must be configured, the timestamp
// within MaxSkew of Now, and the signature must verify over r's method,
// decoded URL path (r.URL.Path, no query), timestamp and the SHA-256 of
// the body. It reads and returns the body (which the request no longer
// holds) and the id of the key that signed it.
//
// Any failure is a *Rejection: 401 for a missing, unknown, malformed, forged
// or stale signature, 413 for a body over MaxBody, 400 for a body that
// cannot be read. Header checks come before the body is read, so an
// unauthenticated client cannot make the agent read a body at all.
func (v *Verifier) Verify(r *http.Request) (body []byte, keyID string, err error) {
	keyID, ts, sig, err := v.headers(r)
	if err != nil {
		return nil, "", err
	}
	pub, err := v.key(keyID)
	if err != nil {
		return nil, "", err
	}
	if err := v.fresh(ts); err != nil {
		return nil, "", err
	}
	rawSig, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(rawSig) != ed25519.SignatureSize {
		return nil, "", reject(http.StatusUnauthorized, msgBadSignature,
			fmt.Errorf("key %q: signature is not standard base64 of %d bytes", keyID, ed25519.SignatureSize))
	}
	body, err = v.readBody(r)
	if err != nil {
		return nil, "", err
	}
	// ed25519.Verify takes time independent of where a forged signature
	// differs, so no timing oracle is offered here.
	if !ed25519.Verify(pub, SignedMessage(r.Method, r.URL.Path, ts, body), rawSig) {
		return nil, "", reject(http.StatusUnauthorized, msgForged,
			fmt.Errorf("key %q: signature does not verify over %s %s", keyID, r.Method, r.URL.Path))
	}
	return body, keyID, nil
}

// headers returns the three signature headers, each present exactly once.
func (v *Verifier) headers(r *http.Request) (keyID, ts, sig string, err error) {
	var vals [3]string
	for i, name := range []string{HeaderKey, HeaderTimestamp, HeaderSignature} {
		got := r.Header.Values(name)
		switch {
		case len(got) == 0 || got[0] == "":
			return "", "", "", reject(http.StatusUnauthorized, fmt.Sprintf(msgMissingHeader, name),
				fmt.Errorf("unsigned request: no %s header", name))
		case len(got) > 1:
			return "", "", "", reject(http.StatusUnauthorized, fmt.Sprintf(msgDuplicate, name),
				fmt.Errorf("%d %s headers", len(got), name))
		}
		vals[i] = got[0]
	}
	return vals[0], vals[1], vals[2], nil
}

// key returns the public key configured for id.
func (v *Verifier) key(id string) (ed25519.PublicKey, error) {
	pub, ok := v.Keys[id]
	if !ok {
		return nil, reject(http.StatusUnauthorized, msgUnknownKey,
			fmt.Errorf("key id %q is not configured in hub.keys", clipped(id)))
	}
	if len(pub) != ed25519.PublicKeySize {
		// Only a Keys built by hand can hold this; ed25519.Verify would panic.
		return nil, reject(http.StatusUnauthorized, msgUnknownKey,
			fmt.Errorf("key id %q: configured public key is %d bytes, want %d", id, len(pub), ed25519.PublicKeySize))
	}
	return pub, nil
}

// fresh checks that the decimal unix timestamp ts is within the skew window.
func (v *Verifier) fresh(ts string) error {
	// Digits only (no sign, no blanks) and short enough that the arithmetic
	// below cannot overflow.
	if len(ts) == 0 || len(ts) > 18 {
		return reject(http.StatusUnauthorized, msgBadTimestamp, fmt.Errorf("timestamp %q is not unix seconds", clipped(ts)))
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return reject(http.StatusUnauthorized, msgBadTimestamp, fmt.Errorf("timestamp %q is not unix seconds", clipped(ts)))
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return reject(http.StatusUnauthorized, msgBadTimestamp, fmt.Errorf("timestamp: %w", err))
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	skew := v.MaxSkew
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	max := int64(skew / time.Second)
	if off := now().Unix() - sec; off > max || off < -max {
		return reject(http.StatusUnauthorized, msgStale,
			fmt.Errorf("timestamp %d is %ds off the agent's clock, more than %ds", sec, off, max))
	}
	return nil
}

// readBody reads at most MaxBody bytes of r's body.
func (v *Verifier) readBody(r *http.Request) ([]byte, error) {
	limit := v.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if r.ContentLength > limit {
		return nil, reject(http.StatusRequestEntityTooLarge, msgTooLarge,
			fmt.Errorf("Content-Length %d is over the limit of %d bytes", r.ContentLength, limit))
	}
	if r.Body == nil {
		return []byte{}, nil
	}
	// No ResponseWriter here: the daemon may already have wrapped the body
	// in its own MaxBytesReader, whose error is recognised the same way.
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, reject(http.StatusRequestEntityTooLarge, msgTooLarge,
				fmt.Errorf("body over the limit of %d bytes", tooLarge.Limit))
		}
		return nil, reject(http.StatusBadRequest, msgUnreadable, fmt.Errorf("reading body: %w", err))
	}
	return b, nil
}

// clipped shortens client-supplied text before it reaches the log.
func clipped(s string) string { return clip.String(s, 64) }
