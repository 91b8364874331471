package hub

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// The headers that carry a hub request's signature.
const (
	HeaderKey       = "X-Felhom-Key"       // key id, as in hub.keys
	HeaderTimestamp = "X-Felhom-Timestamp" // unix seconds, decimal
	HeaderSignature = "X-Felhom-Signature" // standard base64 of the Ed25519 signature
)

// SignedMessage returns the exact bytes a hub request's signature covers:
// method, path, timestamp and the lowercase hex SHA-256 of the body, joined
// by "\n". path is the decoded URL path without the query string.
//
// The joining is unambiguous although a decoded path may hold "\n": the
// method is an HTTP token, the timestamp is digits and the hash has a fixed
// length, so no two requests share a message.
func SignedMessage(method, path, timestamp string, body []byte) []byte {
	sum := sha256.Sum256(body)
	msg := make([]byte, 0, len(method)+len(path)+len(timestamp)+3+2*len(sum))
	msg = append(msg, method...)
	msg = append(msg, '\n')
	msg = append(msg, path...)
	msg = append(msg, '\n')
	msg = append(msg, timestamp...)
	msg = append(msg, '\n')
	return hex.AppendEncode(msg, sum[:])
}

// Sign returns the three headers that authenticate a request of method to
// path with body, signed by priv under keyID at time now. Copy them onto the
// request (for k, v := range h { req.Header[k] = v }). The hub, the end to
// end suite and the tests use it; the agent signs only its own
// notification webhooks with it (runtime/notify), with a key of its own.
func Sign(priv ed25519.PrivateKey, keyID, method, path string, body []byte, now time.Time) http.Header {
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := ed25519.Sign(priv, SignedMessage(method, path, ts, body))
	h := http.Header{}
	h.Set(HeaderKey, keyID)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return h
}
