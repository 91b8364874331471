package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SocketMode is the permission of the socket file: the agent's user and
// group may connect, nobody else. It is the local API's only access control.
const SocketMode fs.FileMode = 0o660

// maxSocketPath is the longest unix socket path Linux accepts
// (sizeof(sun_path) minus the terminating NUL).
const maxSocketPath = 107

// tmpSeq tells apart the temporary names of concurrent Listen calls.
var tmpSeq atomic.Uint64

// Listen creates the unix socket at path with mode SocketMode and listens
// on it. The socket never exists at path with a wider mode: it is bound
// under a temporary name in the same directory, restricted, then linked
// into place, which also fails if another process created path meanwhile.
//
// An existing socket file at path is removed only if nothing listens on
// it (a stale socket from a crash); a live one, or a path that exists and
// is not a socket, is an error. Closing the listener removes the socket
// file, if it is still the one Listen created. The group owning the file is
// the directory's or the process's; choose the directory accordingly (for
// example systemd's RuntimeDirectory= with Group=). A directory that is
// missing is made, mode SocketDirMode (its group may reach the socket,
// nobody else), before CheckSocketDir checks it.
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("local API socket %s: path is %d bytes, longer than the %d a unix socket allows", path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := MakeSocketDir(dir); err != nil {
		return nil, fmt.Errorf("local API socket %s: %w", path, err)
	}
	if err := checkServedDirOwner(dir); err != nil {
		return nil, fmt.Errorf("local API socket %s: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".fa%d-%d", os.Getpid(), tmpSeq.Add(1)))
	if len(tmp) > maxSocketPath {
		tmp = path + "~" // rare: a very short name in a deep directory
		if len(tmp) > maxSocketPath {
			return nil, fmt.Errorf("local API socket %s: no room for a temporary name within %d bytes", path, maxSocketPath)
		}
	}
	_ = os.Remove(tmp) // a leftover of a crashed process with our pid
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("local API socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("local API socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, SocketMode); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(errors.New("created by another process meanwhile"))
		}
		return fail(err)
	}
	os.Remove(tmp)
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: l, path: path, file: fi}, nil
}

// SocketDirMode is the mode of a socket directory Listen makes: the
// agent's user writes it, its group may reach the socket in it (the
// socket's own mode says who may connect), others see nothing.
const SocketDirMode fs.FileMode = 0o750

// MakeSocketDir makes dir (and its missing parents), mode SocketDirMode,
// when it does not exist, then checks it (CheckSocketDir): so a missing
// socket directory is no start-up error, and an existing one others may
// write still is.
func MakeSocketDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, SocketDirMode); err != nil {
			return err
		}
	}
	return CheckSocketDir(dir)
}

// CheckSocketDir refuses a socket directory that others may write: anyone
// who can write it can replace the socket with their own (and answer the
// CLI's requests) or, without the sticky bit, remove it; the socket's mode
// is only worth anything in a directory the agent controls. The sticky bit
// (as on /tmp) does not make it acceptable: others could still take the
// name before the agent starts. Group-writable is allowed: the group is the
// one the socket's 0660 trusts anyway. The guest locks beside the socket
// are held to the same rule before anything is made there, by the agent
// and by console runs alike.
func CheckSocketDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if mode := fi.Mode(); mode.Perm()&0o002 != 0 {
		return fmt.Errorf("its directory %s is writable by others (mode %04o%s): %s", dir, mode.Perm(), map[bool]string{true: ", sticky", false: ""}[mode&fs.ModeSticky != 0], chooseSocketDir)
	}
	return nil
}

// chooseSocketDir is what a refused socket directory's error advises.
const chooseSocketDir = "choose a directory only the agent's user and group may write, such as systemd's RuntimeDirectory= (/run/felhom-agent)"

// checkServedDirOwner refuses to serve the socket in a directory that
// belongs to another user than the agent's or root (as ssh holds its
// files): its owner may change its mode at will and put their own socket
// in the agent's place. Only the serving agent asks: a console run
// (root, or an operator in the agent's group) takes its guest locks in
// the agent's own directory, which belongs to the agent's user.
func checkServedDirOwner(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("its directory %s belongs to uid %d, neither this agent's user (uid %d) nor root, who may change its mode at will: %s", dir, st.Uid, uid, chooseSocketDir)
	}
	return nil
}

// removeStale makes room at path for a new socket, or says why not.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("local API socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("local API socket %s: exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("local API socket %s: another process is listening on it (is an agent already running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("local API socket %s: cannot tell whether it is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local API socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// socketListener removes its socket file when closed, unless the file has
// been replaced by another process's socket since.
type socketListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
}

// Close stops listening and removes the socket file if it is still ours.
func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if cur, err := os.Lstat(l.path); err == nil && os.SameFile(cur, l.file) {
			os.Remove(l.path)
		}
	})
	return err
}
