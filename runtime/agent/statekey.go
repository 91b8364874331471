package agent

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateKeyFile is the state directory's key (docs/state.md): 32 random
// bytes, mode 0600, made at the first start. It encrypts the journal's
// secret-valued outcomes and keys its argument digests, so a store copied
// without its key cannot resume a run that handled a secret, and says so.
const StateKeyFile = "state.key"

// loadStateKey reads dir's key, making it when there is none. A key file
// of the wrong size, or readable by others, is refused naming the path.
func loadStateKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, StateKeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		rand.Read(key) // never fails (crypto/rand, Go 1.24+)
		tmp := path + ".new"
		if err := os.WriteFile(tmp, key, 0o600); err != nil {
			return nil, fmt.Errorf("make the state key %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("make the state key %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the state key %s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the state key %s has %d bytes, want 32; move it aside to make a new one (journaled secrets then cannot be read)", path, len(key))
	}
	return key, nil
}

// errNoStateKey is a sealed value met without the key that sealed it.
var errNoStateKey = errors.New("it is encrypted with a state key this state directory does not hold (was the store copied without its state.key?)")

func (a *Agent) aead() (cipher.AEAD, error) {
	if a.journalKey == nil {
		return nil, errNoStateKey
	}
	b, err := aes.NewCipher(a.journalKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// seal encrypts plain with the state key (AES-256-GCM, a random nonce
// first).
func (a *Agent) seal(plain []byte) ([]byte, error) {
	g, err := a.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return g.Seal(nonce, nonce, plain, nil), nil
}

// openSealed decrypts what seal encrypted.
func (a *Agent) openSealed(sealed []byte) ([]byte, error) {
	g, err := a.aead()
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize() {
		return nil, errors.New("the sealed value is cut short")
	}
	plain, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoStateKey, err)
	}
	return plain, nil
}

// isSecret reports whether a journaled outcome of run holds one of its
// secret parameters' values, so that it must be sealed.
func (a *Agent) isSecret(run string, outcome []byte) bool {
	a.mu.Lock()
	secrets := a.secrets[run]
	a.mu.Unlock()
	for _, s := range secrets {
		if s != "" && bytes.Contains(outcome, []byte(s)) {
			return true
		}
	}
	return false
}
