package notify

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile and PublicKeyFile are the signing key's file names in the state
// directory: the private key's seed (base64, mode 0600) and the public
// key (base64, for the receiver).
const (
	KeyFile       = "notify.key"
	PublicKeyFile = "notify.pub"
)

// Key is the agent's webhook signing key. Its String, GoString and
// LogValue show the key id and the public half only.
type Key struct {
	ID      string // the first 16 hex digits of the public key's SHA-256
	Private ed25519.PrivateKey
}

// Public is the public half, standard base64: what a receiver verifies
// with.
func (k *Key) Public() string {
	return base64.StdEncoding.EncodeToString(k.Private.Public().(ed25519.PublicKey))
}

// String shows the key id and public key, never the private key.
func (k *Key) String() string { return "notify.Key[" + k.ID + " " + k.Public() + "]" }

// GoString is String.
func (k *Key) GoString() string { return k.String() }

// LoadOrCreateKey reads the signing key from dir, or generates one there
// (and its public half beside it) when there is none yet. created says
// which.
func LoadOrCreateKey(dir string) (key *Key, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		seed, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(seed) != ed25519.SeedSize {
			return nil, false, fmt.Errorf("notify: %s is not a base64 Ed25519 seed; remove it to make a new key", path)
		}
		return newKey(ed25519.NewKeyFromSeed(seed)), false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("notify: signing key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("notify: generating the signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("notify: %w", err)
	}
	seed := base64.StdEncoding.EncodeToString(priv.Seed()) + "\n"
	// O_EXCL: two agents starting at once never overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(dir)
		}
		return nil, false, fmt.Errorf("notify: %w", err)
	}
	if _, err := f.WriteString(seed); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("notify: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("notify: writing %s: %w", path, err)
	}
	k := newKey(priv)
	if err := os.WriteFile(filepath.Join(dir, PublicKeyFile), []byte(k.ID+"="+k.Public()+"\n"), 0o644); err != nil {
		return nil, false, fmt.Errorf("notify: %w", err)
	}
	return k, true, nil
}

func newKey(priv ed25519.PrivateKey) *Key {
	sum := sha256.Sum256(priv.Public().(ed25519.PublicKey))
	return &Key{ID: hex.EncodeToString(sum[:8]), Private: priv}
}
