package safety

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NonceStore records the nonces of accepted operations. Use records nonce
// (durably, before it returns nil) unless it was recorded before, which is
// [ErrReplay]. A nonce need only be remembered until its operation
// expires: after that, the time window refuses it anyway.
// Seen reports whether nonce was recorded (a read: it records nothing).
type NonceStore interface {
	Use(nonce string, expires time.Time) error
	Seen(nonce string) bool
}

// FileNonces is the durable [NonceStore]: an append-only file of
// "nonce expiry-unix" lines, fsynced after each record and read back at
// open, so that a replay is refused across restarts. Open drops the
// expired ones (rewriting the file). It is safe for concurrent use.
type FileNonces struct {
	path string
	now  func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
	f    *os.File
}

// OpenFileNonces opens (or creates) the nonce record at path.
func OpenFileNonces(path string, now func() time.Time) (*FileNonces, error) {
	if now == nil {
		now = time.Now
	}
	n := &FileNonces{path: path, now: now, seen: map[string]time.Time{}}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nonce record: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	expired := 0
	for sc.Scan() {
		nonce, exp, ok := strings.Cut(sc.Text(), " ")
		sec, err := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || !nonceRE.MatchString(nonce) {
			continue // a torn last line (a crash mid-write) is no record
		}
		t := time.Unix(sec, 0)
		if t.Before(now().Add(-time.Hour)) {
			expired++
			continue
		}
		n.seen[nonce] = t
	}
	if expired > 0 {
		var buf bytes.Buffer
		for nonce, t := range n.seen {
			fmt.Fprintf(&buf, "%s %d\n", nonce, t.Unix())
		}
		if err := writeFileSync(path, buf.Bytes()); err != nil {
			return nil, fmt.Errorf("nonce record: %w", err)
		}
	}
	n.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nonce record: %w", err)
	}
	return n, nil
}

// Use implements [NonceStore].
func (n *FileNonces) Use(nonce string, expires time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.seen[nonce]; ok {
		return ErrReplay
	}
	if _, err := fmt.Fprintf(n.f, "%s %d\n", nonce, expires.Unix()); err != nil {
		return fmt.Errorf("recording the nonce: %w", err)
	}
	if err := n.f.Sync(); err != nil {
		return fmt.Errorf("recording the nonce: %w", err)
	}
	n.seen[nonce] = expires
	return nil
}

// Seen implements [NonceStore].
func (n *FileNonces) Seen(nonce string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.seen[nonce]
	return ok
}

// Close closes the file.
func (n *FileNonces) Close() error { return n.f.Close() }

// MemoryNonces is a [NonceStore] that forgets at exit: tests, and the CLI's
// runs against the simulator.
type MemoryNonces struct {
	mu   sync.Mutex
	seen map[string]bool
}

// Use implements [NonceStore].
func (m *MemoryNonces) Use(nonce string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if m.seen[nonce] {
		return ErrReplay
	}
	m.seen[nonce] = true
	return nil
}

// Seen implements [NonceStore].
func (m *MemoryNonces) Seen(nonce string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[nonce]
}
