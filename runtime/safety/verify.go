package safety

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/hiddeco/sshsig"
)

// The verifier's refusals, one per stage, for errors.Is; the error
// returned wraps one of them with what was wrong.
var (
	ErrMalformed     = errors.New("malformed")                           // the armour or the blob does not parse
	ErrNamespace     = errors.New("wrong signature namespace")           // not felhom-op-v1
	ErrUnknownSigner = errors.New("key not allowed")                     // the signer's key is not on the allow-list
	ErrBadSignature  = errors.New("signature does not verify")           // forged, or over other bytes
	ErrTarget        = errors.New("not for this target")                 // another host
	ErrNotYetValid   = errors.New("not yet valid")                       // issued in the future, beyond the skew
	ErrExpired       = errors.New("expired")                             // past expires_at
	ErrNotCovered    = errors.New("does not cover this operation")       // role, op, guest or params differ
	ErrReplay        = errors.New("replayed: its nonce was used before") // the nonce is recorded
	// ErrNonceUnrecorded is not a refusal of the operation: its nonce
	// could not be recorded (an I/O error), so it is not accepted now and
	// may be offered again.
	ErrNonceUnrecorded = errors.New("the nonce could not be recorded, so the operation is not accepted")
)

// DefaultSkew is how far in the future issued_at may be (the operator's
// clock ahead of the host's). Expiry gets no grace.
const DefaultSkew = 2 * time.Minute

// Verifier checks signed operations for one host.
type Verifier struct {
	Keys   *KeyRing
	Nonces NonceStore
	// HostID is this host's target id: hub.host_id, or the node name.
	HostID string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Skew is the allowed clock skew for issued_at; 0 means DefaultSkew.
	Skew time.Duration
}

// Verified is an operation that passed every check, with the key that
// signed it.
type Verified struct {
	Op
	// Raw is the blob as received (what was signed).
	Raw    []byte
	Signer OperatorKey
}

// Verify checks a received blob and its armoured SSHSIG signature, in
// this order, stopping at the first refusal: the armour; the namespace;
// the signer's public key against the allow-list (by key material); the
// signature over the raw received bytes (never re-canonicalised); the blob
// itself; the target host; the time window; expect (nil: no further
// check) — what the caller binds, such as the role, the op, the guest and
// the params; and last the nonce, recorded durably. A refusal at any stage
// before the nonce leaves the nonce unused, so an invalid signature never
// consumes one.
func (v *Verifier) Verify(blob, armored []byte, expect func(*Verified) error) (*Verified, error) {
	sig, err := sshsig.Unarmor(bytes.TrimSpace(armored))
	if err != nil {
		return nil, fmt.Errorf("%w: the signature is not an armoured SSH signature: %w", ErrMalformed, err)
	}
	if sig.Namespace != Namespace {
		return nil, fmt.Errorf("%w: %q, want %q (ssh-keygen -Y sign -n %s)", ErrNamespace, sig.Namespace, Namespace, Namespace)
	}
	key, ok := v.Keys.List().Find(sig.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s %s is not in the operator allow-list", ErrUnknownSigner, sig.PublicKey.Type(), fingerprint(sig))
	}
	if err := sshsig.Verify(bytes.NewReader(blob), sig, key.Key, sig.HashAlgorithm, Namespace); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	op, err := parseOp(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: the signed operation: %w", ErrMalformed, err)
	}
	if op.Target.HostID != v.HostID {
		return nil, fmt.Errorf("%w: it is for host %q, this is %q", ErrTarget, op.Target.HostID, v.HostID)
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	skew := v.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	if op.IssuedAt.After(now.Add(skew)) {
		return nil, fmt.Errorf("%w: issued at %s, later than now (%s) by more than %s", ErrNotYetValid, op.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if !now.Before(op.ExpiresAt) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, op.ExpiresAt.UTC().Format(time.RFC3339))
	}
	ver := &Verified{Op: *op, Raw: append([]byte(nil), blob...), Signer: key}
	if key.Role == RoleRecovery && op.Op != OpRotateKeys {
		return nil, fmt.Errorf("%w: a recovery key may only sign %s, not %q", ErrNotCovered, OpRotateKeys, op.Op)
	}
	if expect != nil {
		if err := expect(ver); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotCovered, err)
		}
	}
	if err := v.Nonces.Use(op.Nonce, op.ExpiresAt); err != nil {
		if errors.Is(err, ErrReplay) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrNonceUnrecorded, err)
	}
	return ver, nil
}

func fingerprint(sig *sshsig.Signature) string {
	return OperatorKey{Key: sig.PublicKey}.Fingerprint()
}

// Rotate accepts a verified rotation (op OpRotateKeys, params
// {"authorized_keys": TEXT}) and makes TEXT the allow-list in force.
func (v *Verifier) Rotate(ver *Verified) (*AllowList, error) {
	if ver.Op.Op != OpRotateKeys {
		return nil, fmt.Errorf("%q is not a rotation", ver.Op.Op)
	}
	var p struct {
		AuthorizedKeys string `json:"authorized_keys"`
	}
	if err := jsonStrict(ver.Params, &p); err != nil {
		return nil, fmt.Errorf("rotation params: %w", err)
	}
	return v.Keys.rotate(p.AuthorizedKeys)
}
