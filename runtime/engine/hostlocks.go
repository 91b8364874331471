package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Host-wide guest locks: with [GuestLocks.Dir] set, holding a guest also
// means holding flock(LOCK_EX) on Dir/VMID.lock, so that two processes —
// a serving agent and a `felhom-agent run` from the console, or two
// consoles — never mutate one guest at once. The kernel releases a flock
// when its holder exits however it exits, so a killed run never leaves a
// guest locked. The holder writes "pid PID run ID" into the file for the
// waiters' messages; the lock, not the content, says who holds it.

// Polling bounds for a guest another process holds: flock cannot wait on
// a context, so the waiter tries again, backing off.
const (
	hostLockPollMin = 10 * time.Millisecond
	hostLockPollMax = 500 * time.Millisecond
)

// lockHost takes the host-wide lock of vmid by the given deadline (zero:
// none; expired before the first try: refuse at once, as MaxWait < 0
// does). It returns the release.
func (g *GuestLocks) lockHost(ctx context.Context, vmid int, deadline time.Time, refuseAtOnce bool) (func(), error) {
	f, err := openLockFile(g.Dir, vmid)
	if err != nil {
		return nil, fmt.Errorf("guest %d: host lock: %w", vmid, err)
	}
	wait := hostLockPollMin
	var expired <-chan time.Time
	if !deadline.IsZero() {
		d := time.NewTimer(time.Until(deadline))
		defer d.Stop()
		expired = d.C
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("guest %d: host lock %s: %w", vmid, f.Name(), err)
		}
		holder := lockHolder(f)
		if refuseAtOnce {
			f.Close()
			return nil, fmt.Errorf("waiting for guest %d (%s): %w", vmid, holder, ErrGuestBusy)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for guest %d (%s): %w", vmid, holder, ctx.Err())
		case <-expired:
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting for guest %d (%s): %w (waited %s)", vmid, holder, ErrGuestBusy, g.MaxWait)
		}
		wait = min(2*wait, hostLockPollMax)
	}
	// Who holds it, for the next waiter's message ("pid N[ run ID]");
	// best effort (a file opened read-only cannot say).
	if f.Truncate(0) == nil {
		who := fmt.Sprintf("pid %d", os.Getpid())
		if id := RunID(ctx); id != "" {
			who += " run " + id
		}
		_, _ = f.WriteAt([]byte(who+"\n"), 0)
	}
	return func() { f.Close() }, nil // closing the descriptor releases the flock
}

// openLockFile opens (creating, mode 0660) dir/VMID.lock, creating dir
// (mode 0770) if needed. The directory and its files are shared by the
// agent's user and the operators in its group; when root creates them in
// a directory another user owns (a console run beside the agent's
// RuntimeDirectory=), they are given to that owner, so the agent can use
// them too. A file that may not be written is opened read-only: flock
// needs no more.
func openLockFile(dir string, vmid int) (*os.File, error) {
	if dir == "" {
		return nil, errors.New("no lock directory")
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o770); err != nil {
			return nil, err
		}
		_ = os.Chmod(dir, 0o770) // whatever the umask took away
		adoptOwner(dir, filepath.Dir(dir))
	}
	path := filepath.Join(dir, strconv.Itoa(vmid)+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o660)
	if errors.Is(err, os.ErrPermission) {
		return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		_ = f.Chmod(0o660)
		adoptOwner(path, filepath.Dir(dir))
	}
	return f, nil
}

// adoptOwner gives path the owner and group of ref (the runtime
// directory) when this process is root and ref belongs to another user.
func adoptOwner(path, ref string) {
	if os.Geteuid() != 0 {
		return
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return
	}
	_ = os.Lchown(path, int(st.Uid), int(st.Gid))
}

// lockHolder says who holds f's lock, as the holder wrote it.
func lockHolder(file *os.File) string {
	b := make([]byte, 128)
	n, _ := file.ReadAt(b, 0)
	f := strings.Fields(string(b[:n]))
	switch {
	case len(f) == 4 && f[0] == "pid" && f[2] == "run":
		return fmt.Sprintf("held by run %s in process %s", f[3], f[1])
	case len(f) == 2 && f[0] == "pid":
		return "held by process " + f[1]
	}
	return "held by another process"
}
