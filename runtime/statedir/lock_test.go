package statedir

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockExclusive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %v, %v; want mode 0700", fi, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, LockFile))
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q; want this pid %d", b, os.Getpid())
	}

	// flock is per open file description: a second Lock in this process
	// is refused as another process's would be.
	_, err = Lock(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) ||
		!strings.Contains(err.Error(), dir) {
		t.Fatalf("second Lock = %v; want a LockedError naming %s and pid %d", err, dir, os.Getpid())
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close = %v", err)
	}
	l2.Close()
}

// TestLockHeldByAnotherProcess: flock(1) holds the lock in a child; Lock
// is refused while it runs and taken once it has exited.
func TestLockHeldByAnotherProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, LockFile)
	if err := os.WriteFile(path, []byte("4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("flock", "-x", path, "sh", "-c", "echo held; read x")
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	_, err := Lock(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != 4242 {
		t.Errorf("Lock while flock(1) holds it = %v; want LockedError with pid 4242", err)
	}
	stdin.Close()
	cmd.Wait()
	l, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after the holder exited = %v", err)
	}
	l.Close()
}
