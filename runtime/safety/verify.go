package safety

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
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

	mu   sync.Mutex
	held map[string]chan struct{} // nonces claimed and not yet spent or released
}

// Verified is an operation that passed every check, with the key that
// signed it.
type Verified struct {
	Op
	// Raw is the blob as received (what was signed); Armored its
	// armoured signature, so that a run can keep both (sealed) and have
	// them checked again after a restart ([Verifier.Recheck]).
	Raw     []byte
	Armored []byte
	Signer  OperatorKey
}

// Verify checks a received blob and its armoured SSHSIG signature, in
// this order, stopping at the first refusal: the armour; the namespace;
// the signer's public key against the allow-list (by key material); the
// signature over the raw received bytes (never re-canonicalised); the blob
// itself; the target host; the time window; expect (nil: no further
// check) — what the caller binds, such as the role, the op, the guest and
// the params; and last the nonce, recorded durably. A refusal at any stage
// before the nonce leaves the nonce unused, so an invalid signature never
// consumes one. Verify is [Verifier.Check], [Verifier.Claim] and
// [NonceClaim.Spend] in one, for an acceptance with nothing to do between
// the checks and the spending.
func (v *Verifier) Verify(blob, armored []byte, expect func(*Verified) error) (*Verified, error) {
	ver, err := v.Check(blob, armored, expect)
	if err != nil {
		return nil, err
	}
	c, err := v.Claim(context.Background(), ver)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	if err := c.Spend(); err != nil {
		return nil, err
	}
	return ver, nil
}

// Check is every check of [Verifier.Verify] but the last: nothing is
// spent. A nonce recorded before is refused here already (ErrReplay), but
// only [NonceClaim.Spend] makes an acceptance exclusive: a caller that
// acts on a checked operation claims its nonce first, does what may still
// refuse it (start a run, say), then spends the nonce before anything the
// operation allows can happen.
func (v *Verifier) Check(blob, armored []byte, expect func(*Verified) error) (*Verified, error) {
	ver, err := v.check(blob, armored, expect)
	if err != nil {
		return nil, err
	}
	if v.Nonces.Seen(ver.Nonce) {
		return nil, ErrReplay
	}
	return ver, nil
}

// Recheck checks again an operation accepted before (its nonce spent, by
// the run that carries it): the signature against the allow-list now in
// force, the target, the time window and expect — everything but the
// nonce. A run that resumes or runs after a restart carries its
// signature only while Recheck passes: a key removed from the allow-list
// meanwhile, or an expired operation, no longer covers it.
func (v *Verifier) Recheck(blob, armored []byte, expect func(*Verified) error) (*Verified, error) {
	return v.check(blob, armored, expect)
}

func (v *Verifier) check(blob, armored []byte, expect func(*Verified) error) (*Verified, error) {
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
	ver := &Verified{Op: *op, Raw: bytes.Clone(blob), Armored: bytes.Clone(armored), Signer: key}
	if key.Role == RoleRecovery && op.Op != OpRotateKeys {
		return nil, fmt.Errorf("%w: a recovery key may only sign %s, not %q", ErrNotCovered, OpRotateKeys, op.Op)
	}
	if expect != nil {
		if err := expect(ver); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotCovered, err)
		}
	}
	return ver, nil
}

// NonceClaim is one acceptance's exclusive hold on a checked operation's
// nonce ([Verifier.Claim]): Spend records the nonce durably, Release lets
// it go unspent (the acceptance did not happen). Exactly one of them
// takes effect; Release after Spend does nothing.
type NonceClaim struct {
	v     *Verifier
	ver   *Verified
	done  chan struct{}
	spent bool
	once  sync.Once
}

// Claim holds ver's nonce for one acceptance. While it is held, another
// Claim of the same nonce waits (or until ctx ends) for it to be spent —
// then it is refused, ErrReplay — or released, when it may take it: two
// concurrent acceptances of one signed blob never both go on, and one
// that could not go on (the agent was stopping) spends nothing.
func (v *Verifier) Claim(ctx context.Context, ver *Verified) (*NonceClaim, error) {
	for {
		v.mu.Lock()
		if v.held == nil {
			v.held = map[string]chan struct{}{}
		}
		busy, ok := v.held[ver.Nonce]
		if !ok {
			if v.Nonces.Seen(ver.Nonce) {
				v.mu.Unlock()
				return nil, ErrReplay
			}
			c := &NonceClaim{v: v, ver: ver, done: make(chan struct{})}
			v.held[ver.Nonce] = c.done
			v.mu.Unlock()
			return c, nil
		}
		v.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another acceptance of the same operation: %w", context.Cause(ctx))
		}
	}
}

// Spend records the claimed nonce durably (the verifier's NonceStore):
// from then on the operation is accepted and every other acceptance of
// it a replay. An I/O error wraps ErrNonceUnrecorded: nothing is
// accepted, and the claim is still held (Release it).
func (c *NonceClaim) Spend() error {
	if c.spent {
		return nil
	}
	if err := c.v.Nonces.Use(c.ver.Nonce, c.ver.ExpiresAt); err != nil {
		if errors.Is(err, ErrReplay) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNonceUnrecorded, err)
	}
	c.spent = true
	c.release()
	return nil
}

// Release gives the claim up; an unspent nonce stays unused.
func (c *NonceClaim) Release() { c.release() }

func (c *NonceClaim) release() {
	c.once.Do(func() {
		c.v.mu.Lock()
		delete(c.v.held, c.ver.Nonce)
		c.v.mu.Unlock()
		close(c.done)
	})
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
