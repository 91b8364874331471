package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the lock file's name in the state directory.
const LockFile = "lock"

// DirLock is a held lock on a state directory. Close releases it.
type DirLock struct {
	dir string
	f   *os.File
}

// LockedError is Lock's refusal: another process holds the directory.
type LockedError struct {
	Dir string // the state directory
	PID int    // the holder's pid as it wrote it; 0 when unknown
}

// Error names the directory, the holder and what to do.
func (e *LockedError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = fmt.Sprintf("another felhom-agent (pid %d)", e.PID)
	}
	return fmt.Sprintf("state directory %s is in use by %s: stop it first, or give this one another state directory (state_dir)", e.Dir, holder)
}

// Lock creates dir (mode 0700) if missing and takes its exclusive lock for
// the life of the returned DirLock, writing this process's pid into the
// lock file. It does not wait: a directory another process holds is a
// *LockedError.
func Lock(dir string) (*DirLock, error) {
	if dir == "" {
		return nil, errors.New("statedir: the state directory is not set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("statedir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("statedir: lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("statedir: %s: %w", path, err)
		}
	}
	return &DirLock{dir: dir, f: f}, nil
}

// readPID reads the holder's pid from the lock file; 0 if unreadable.
func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// Dir is the locked directory.
func (l *DirLock) Dir() string { return l.dir }

// Close releases the lock. The pid stays in the file; the lock, not the
// file, says whether an agent holds the directory.
func (l *DirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor releases the flock
	l.f = nil
	return err
}
