package safety

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Namespace is the SSHSIG namespace of every signed operation: a signature
// made for another purpose (git commits, files) never verifies here.
const Namespace = "felhom-op-v1"

// OpRotateKeys is the op that rewrites the operator allow-list (its params
// are {"authorized_keys": "..."}); the only op a recovery key may sign.
const OpRotateKeys = "rotate-operator-keys"

// OpPlan is the op of the hub's plan requests (docs/hub-protocol.md, "Plan
// jobs"): a question, never a run. A signed operation naming it is refused
// as malformed, whoever signed it, so a plan request can never be turned
// into an operation that runs. It holds a '.', which no playbook name or
// trigger may.
const OpPlan = "felhom.plan"

// Op is the signed operation: what an operator allows, for one host and
// guest, once, within a time window. On the wire it is canonical JSON
// ([Op.Canonical]); the verifier reads the bytes it received and never
// re-canonicalises them.
type Op struct {
	// Op names what runs: a playbook name or a trigger, resolved as every
	// other front end resolves it; or OpRotateKeys.
	Op string `json:"op"`
	// Target binds the host and the guest.
	Target Target `json:"target"`
	// Params are the run's parameters as the playbook declares them.
	Params json.RawMessage `json:"params"`
	// Nonce makes the signature usable once; it is recorded durably when
	// the operation is accepted.
	Nonce string `json:"nonce"`
	// IssuedAt and ExpiresAt bound when it may be accepted (RFC 3339).
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// KeyID is advisory (who the operator meant to sign with); the key
	// that verifies is found by its material, never by this name.
	KeyID string `json:"key_id"`
}

// Target is the host and guest an [Op] is for.
type Target struct {
	HostID  string `json:"host_id"`  // hub.host_id, or the node name without a hub
	GuestID int    `json:"guest_id"` // the vmid; 0 when the operation has no guest
}

// Canonical is the op's canonical JSON: keys sorted at every level, no
// insignificant whitespace, no trailing newline, UTF-8, times in UTC to the
// second. It is what the agent offers to sign and what `felhom-agent sign`
// signs; the hub stores it opaquely.
func (o Op) Canonical() ([]byte, error) {
	o.IssuedAt = o.IssuedAt.UTC().Truncate(time.Second)
	o.ExpiresAt = o.ExpiresAt.UTC().Truncate(time.Second)
	if len(o.Params) == 0 {
		o.Params = json.RawMessage("{}")
	}
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("signed op: %w", err)
	}
	return CanonicalJSON(raw)
}

// CanonicalJSON rewrites one JSON value canonically (see [Op.Canonical]);
// numbers keep their literal form.
func CanonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not one JSON value: something follows it")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps marshal with sorted keys
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// nonceRE is what a nonce may be: long enough to be unguessable, short
// enough to record, and plain.
var nonceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// NewNonce returns 128 random bits in hex.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// parseOp reads a received blob strictly: one JSON object of exactly the
// Op fields, each of its type.
func parseOp(blob []byte) (*Op, error) {
	dec := json.NewDecoder(bytes.NewReader(blob))
	dec.DisallowUnknownFields()
	var o Op
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("something follows the JSON object")
	}
	switch {
	case o.Op == "":
		return nil, errors.New("op is empty")
	case o.Op == OpPlan:
		return nil, fmt.Errorf("op %q asks for a plan, which is never a signed operation", OpPlan)
	case o.Target.HostID == "":
		return nil, errors.New("target.host_id is empty")
	case o.Target.GuestID < 0:
		return nil, errors.New("target.guest_id is negative")
	case !nonceRE.MatchString(o.Nonce):
		return nil, errors.New("nonce must be 16 to 128 characters of [A-Za-z0-9_-]")
	case o.IssuedAt.IsZero() || o.ExpiresAt.IsZero():
		return nil, errors.New("issued_at and expires_at are required")
	case !o.ExpiresAt.After(o.IssuedAt):
		return nil, errors.New("expires_at is not after issued_at")
	}
	if len(o.Params) == 0 || string(o.Params) == "null" {
		o.Params = json.RawMessage("{}")
	}
	if o.Params[0] != '{' {
		return nil, errors.New("params is not a JSON object")
	}
	return &o, nil
}

// jsonStrict decodes one JSON object into v, refusing unknown fields.
func jsonStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
