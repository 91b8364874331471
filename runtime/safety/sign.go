package safety

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Sign signs blob with signer in the felhom-op-v1 namespace and returns the
// armoured signature, byte for byte what `ssh-keygen -Y sign -n
// felhom-op-v1` writes (SHA-512). signer may be a key or an SSH agent's.
func Sign(blob []byte, signer ssh.Signer) ([]byte, error) {
	sig, err := sshsig.Sign(bytes.NewReader(blob), signer, sshsig.HashSHA512, Namespace)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sshsig.Armor(sig), nil
}

// SimOperator is the simulated world's operator: with --sim and in
// `felhom-agent test`, it signs every pending operation at once with a key
// the simulation holds, so examples and playbook tests keep working. Its
// signatures go through the same [Verifier] as an operator's; the gate
// marks its decisions as simulated. The gate's own tests never use it.
type SimOperator struct {
	Signer   ssh.Signer
	Verifier *Verifier
	// Log, when set, is told of each signature (the run log says so).
	Log func(p *Pending)
}

// NewSimOperator makes an operator with a fresh ed25519 key and adds that
// key, operational, to v's allow-list (in memory only).
func NewSimOperator(v *Verifier) (*SimOperator, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	v.Keys.Add(OperatorKey{Key: s.PublicKey(), Role: RoleOperational, Comment: "simulated operator"})
	return &SimOperator{Signer: s, Verifier: v}, nil
}

// SignSimulated makes g's Approver a simulated operator, trusted by a
// verifier of g's own (in memory only): every pending operation of g is
// signed, and its audit says so (Simulated). For --sim runs, playbook
// tests and plans.
func (g *Gate) SignSimulated() error {
	v := &Verifier{Keys: NewKeyRing(&AllowList{}), Nonces: &MemoryNonces{}, HostID: g.HostID}
	op, err := NewSimOperator(v)
	if err != nil {
		return err
	}
	g.Approver, g.Simulated = op, true
	return nil
}

// Approve implements [Approver]: it signs p's blob and verifies it.
func (s *SimOperator) Approve(_ context.Context, p *Pending) (*Verified, error) {
	armored, err := Sign(p.Blob, s.Signer)
	if err != nil {
		return nil, err
	}
	v, err := s.Verifier.Verify(p.Blob, armored, p.Covers)
	if err != nil {
		return nil, err
	}
	if s.Log != nil {
		s.Log(p)
	}
	return v, nil
}
