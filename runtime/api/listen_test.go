package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shortDir is a temporary directory short enough for socket paths.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenSocketMode(t *testing.T) {
	_, path := serve(t, newFake(), nil)
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v; want a socket with 0660", fi.Mode())
	}
	// No temporary name is left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("socket directory holds %d entries; want only the socket", len(entries))
	}
}

func TestListen(t *testing.T) {
	t.Run("close removes the socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		l, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Close, Lstat(socket) = %v; want not exist", err)
		}
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close() // as a crash leaves it: the file, nobody listening
		l, err := Listen(path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		defer l.Close()
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial the new socket: %v", err)
		}
		conn.Close()
	})
	t.Run("live socket is refused", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		l, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l2, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another process is listening") {
			t.Errorf("second Listen = %v, %v; want refused", l2, err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("refused Listen removed the live socket: %v", err)
		}
	})
	t.Run("non-socket is refused", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "a.sock")
		os.WriteFile(path, []byte("precious"), 0o600)
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
			t.Errorf("Listen over a file = %v; want refused", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "precious" {
			t.Error("Listen changed the file")
		}
	})
	t.Run("too long a path", func(t *testing.T) {
		path := filepath.Join(shortDir(t), strings.Repeat("s", 110))
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "longer than the 107") {
			t.Errorf("Listen(long path) = %v; want a length error", err)
		}
	})
	t.Run("missing directory is made", func(t *testing.T) {
		dir := filepath.Join(shortDir(t), "no", "rt")
		l, err := Listen(filepath.Join(dir, "a.sock"))
		if err != nil {
			t.Fatalf("Listen(missing dir) = %v; want the directory made", err)
		}
		l.Close()
		for _, d := range []string{dir, filepath.Dir(dir)} {
			fi, err := os.Stat(d)
			if err != nil || !fi.IsDir() || fi.Mode().Perm()&^SocketDirMode != 0 {
				t.Errorf("made directory %s = %v, %v; want a directory of mode %04o at most", d, fi.Mode(), err, SocketDirMode)
			}
		}
	})
	t.Run("directory that cannot be made", func(t *testing.T) {
		file := filepath.Join(shortDir(t), "f")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(file, "rt", "a.sock")
		if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Listen(dir under a file) = %v; want an error naming the path", err)
		}
	})
}

func TestClientNoServer(t *testing.T) {
	path := filepath.Join(shortDir(t), "api.sock")
	c := NewClient(path)
	defer c.Close()
	_, err := c.Runs(context.Background(), ListFilter{})
	want := "is the agent running? cannot connect to " + path + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Runs without an agent = %v; want %q...", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false; want the cause kept", err)
	}
}

// TestListenSocketDirectory: a directory others may write (sticky or not),
// or one another user owns, is refused before any socket is made; the
// agent's own and group-writable directories are accepted.
func TestListenSocketDirectory(t *testing.T) {
	tests := []struct {
		mode  fs.FileMode
		owner int    // chowned to this uid (needs root), -1 leaves it the agent's
		want  string // "" accepted
	}{
		{0o700, -1, ""},
		{0o750, -1, ""},
		{0o770, -1, ""},
		{0o755, -1, ""},
		{0o777, -1, "writable by others (mode 0777)"},
		{0o777 | fs.ModeSticky, -1, "writable by others (mode 0777, sticky)"},
		{0o703, -1, "writable by others (mode 0703)"},
		{0o755, 65534, "belongs to uid 65534, neither this agent's user"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v uid %d", tt.mode, tt.owner), func(t *testing.T) {
			dir := shortDir(t)
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if os.Geteuid() != 0 {
					t.Skip("giving a directory to another user needs root")
				}
				if err := os.Chown(dir, tt.owner, -1); err != nil {
					t.Fatal(err)
				}
			}
			l, err := Listen(filepath.Join(dir, "a.sock"))
			if err == nil {
				l.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Listen in a %v directory: %v", tt.mode, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Listen in a %v directory: error %v; want %q", tt.mode, err, tt.want)
			}
			if tt.want != "" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("a refused directory holds %d entries", len(entries))
				}
			}
		})
	}
}
