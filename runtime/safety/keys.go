package safety

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Role is what an operator key may sign.
type Role string

const (
	// RoleOperational signs destructive operations (and a planned
	// rotation of the allow-list).
	RoleOperational Role = "operational"
	// RoleRecovery may only rotate the allow-list: a key kept offline for
	// when an operational key is lost.
	RoleRecovery Role = "recovery"
)

// OperatorKey is one allow-listed public key.
type OperatorKey struct {
	Key     ssh.PublicKey
	Role    Role
	Comment string // the authorized_keys comment; informational
}

// Fingerprint is the key's SHA256 fingerprint, as ssh-keygen -l prints it.
func (k OperatorKey) Fingerprint() string { return ssh.FingerprintSHA256(k.Key) }

// AllowList is the set of operator keys. Keys are matched by their
// material (the wire encoding of the public key), never by name.
type AllowList struct {
	Keys []OperatorKey
	// Source is the file it was read from.
	Source string
}

// Find returns the allow-listed key whose material is pub's.
func (l *AllowList) Find(pub ssh.PublicKey) (OperatorKey, bool) {
	if l == nil || pub == nil {
		return OperatorKey{}, false
	}
	m := pub.Marshal()
	for _, k := range l.Keys {
		if bytes.Equal(k.Key.Marshal(), m) {
			return k, true
		}
	}
	return OperatorKey{}, false
}

// ParseAllowList reads an allow-list in authorized_keys syntax: one public
// key a line, each with the option role="operational" or role="recovery"
// (no other option is accepted), blank lines and # comments ignored.
// Errors name name:line. An empty list is an error: it would lock every
// destructive operation out for good, including a rotation.
func ParseAllowList(name string, data []byte) (*AllowList, error) {
	l := &AllowList{Source: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, comment, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: not an OpenSSH public key line: %w", name, n, err))
			continue
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			errs = append(errs, fmt.Errorf("%s:%d: one key a line", name, n))
			continue
		}
		role, err := roleOption(opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
			continue
		}
		if _, dup := l.Find(pub); dup {
			errs = append(errs, fmt.Errorf("%s:%d: key %s is listed twice", name, n, ssh.FingerprintSHA256(pub)))
			continue
		}
		l.Keys = append(l.Keys, OperatorKey{Key: pub, Role: role, Comment: comment})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) == 0 && len(l.Keys) == 0 {
		errs = append(errs, fmt.Errorf("%s: no operator key: list at least one, marked role=\"operational\" or role=\"recovery\"", name))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

func roleOption(opts []string) (Role, error) {
	var role Role
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if k != "role" {
			return "", fmt.Errorf("option %q is not accepted here; the only option is role=\"operational\" or role=\"recovery\"", k)
		}
		v = strings.Trim(v, `"`)
		switch Role(v) {
		case RoleOperational, RoleRecovery:
			role = Role(v)
		default:
			return "", fmt.Errorf("role %q: want \"operational\" or \"recovery\"", v)
		}
	}
	if role == "" {
		return "", errors.New("the key has no role: prefix it with role=\"operational\" or role=\"recovery\"")
	}
	return role, nil
}

// rotatedName is the allow-list a signed rotation wrote, in the state
// directory; it takes precedence over the configured file.
const rotatedName = "operator_keys"

// KeyRing is the allow-list in force: the agent's own copy in its state
// directory when a signed rotation wrote one, else the configured file
// (safety.operator_keys). It is read once at [LoadKeyRing] and after each
// rotation; it is safe for concurrent use.
type KeyRing struct {
	stateDir string // "" keeps rotations in memory only (tests, CLI)

	mu   sync.Mutex
	list *AllowList
}

// LoadKeyRing reads the allow-list in force. configured may be "" (no
// operator keys: every destructive operation stays pending, and only the
// simulated operator can sign); a rotated copy in stateDir wins over it.
func LoadKeyRing(configured, stateDir string) (*KeyRing, error) {
	r := &KeyRing{stateDir: stateDir}
	path := configured
	if stateDir != "" {
		rotated := filepath.Join(stateDir, rotatedName)
		if _, err := os.Stat(rotated); err == nil {
			path = rotated
		}
	}
	if path == "" {
		r.list = &AllowList{}
		return r, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safety.operator_keys: %w", err)
	}
	l, err := ParseAllowList(path, data)
	if err != nil {
		return nil, fmt.Errorf("safety.operator_keys: %w", err)
	}
	r.list = l
	return r, nil
}

// NewKeyRing is a ring over l, kept in memory (tests, the simulator).
func NewKeyRing(l *AllowList) *KeyRing { return &KeyRing{list: l} }

// List returns the allow-list in force.
func (r *KeyRing) List() *AllowList {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.list
}

// Add allow-lists one more key in memory (the simulated operator's).
func (r *KeyRing) Add(k OperatorKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := &AllowList{Source: r.list.Source, Keys: append(append([]OperatorKey(nil), r.list.Keys...), k)}
	r.list = l
}

// rotate replaces the allow-list with text (authorized_keys syntax),
// writing the state directory's copy first (durably: fsync, rename, fsync
// of the directory) so that a crash leaves the old list or the new one.
func (r *KeyRing) rotate(text string) (*AllowList, error) {
	name := "rotation"
	if r.stateDir != "" {
		name = filepath.Join(r.stateDir, rotatedName)
	}
	l, err := ParseAllowList(name, []byte(text))
	if err != nil {
		return nil, err
	}
	if r.stateDir != "" {
		if err := writeFileSync(name, []byte(text)); err != nil {
			return nil, fmt.Errorf("writing the rotated allow-list: %w", err)
		}
	}
	r.mu.Lock()
	r.list = l
	r.mu.Unlock()
	return l, nil
}

// writeFileSync writes data to path through a temporary file, fsynced and
// renamed into place, and fsyncs the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
