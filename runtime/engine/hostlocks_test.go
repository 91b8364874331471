package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two GuestLocks on one Dir stand for two processes: flock excludes open
// file descriptions, not processes, so the rule is the same. The kill -9
// case uses a real second process.

func TestHostLocksExcludeAcrossLockSets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "guests")
	a := &GuestLocks{Dir: dir}
	ctx := context.WithValue(context.Background(), runIDKey{}, "run-a")
	unlock, err := a.LockGuest(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o770 {
		t.Errorf("lock directory: %v, mode %v; want 0770", err, fi.Mode().Perm())
	}

	refuse := &GuestLocks{Dir: dir, MaxWait: -1}
	_, err = refuse.LockGuest(context.Background(), 101)
	want := fmt.Sprintf("held by run run-a in process %d", os.Getpid())
	if !errors.Is(err, ErrGuestBusy) || !strings.Contains(err.Error(), want) {
		t.Errorf("second lock set, MaxWait -1: %v; want ErrGuestBusy naming %q", err, want)
	}
	// Another guest is independent.
	u2, err := refuse.LockGuest(context.Background(), 102)
	if err != nil {
		t.Fatalf("guest 102: %v", err)
	}
	u2()

	bounded := &GuestLocks{Dir: dir, MaxWait: 30 * time.Millisecond}
	if _, err := bounded.LockGuest(context.Background(), 101); !errors.Is(err, ErrGuestBusy) {
		t.Errorf("bounded wait: %v; want ErrGuestBusy", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	waiting := &GuestLocks{Dir: dir}
	errc := make(chan error, 1)
	go func() {
		_, err := waiting.LockGuest(cctx, 101)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v; want context.Canceled", err)
	}

	// A waiter gets the guest once the holder lets go.
	got := make(chan func(), 1)
	go func() {
		u, err := waiting.LockGuest(context.Background(), 101)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- u
	}()
	unlock()
	unlock() // harmless
	if u, ok := <-got; ok {
		u()
	}
	// Every lock released: a refusing lock set takes it at once.
	u, err := refuse.LockGuest(context.Background(), 101)
	if err != nil {
		t.Fatalf("after every unlock: %v", err)
	}
	u()
}

// TestHostLockDirUnusable: a lock directory that cannot be made fails the
// lock, naming the guest, and leaves the in-process lock free.
func TestHostLockDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	g := &GuestLocks{Dir: filepath.Join(file, "guests")}
	if _, err := g.LockGuest(context.Background(), 101); err == nil || !strings.Contains(err.Error(), "guest 101: host lock") {
		t.Fatalf("lock under a file: %v; want an error naming guest 101", err)
	}
	g.Dir = ""
	u, err := g.LockGuest(context.Background(), 101)
	if err != nil {
		t.Fatalf("the in-process lock was left held: %v", err)
	}
	u()
}

// TestHostLockReleasedByKill: a process holding a guest's lock that is
// killed -9 leaves nothing held.
func TestHostLockReleasedByKill(t *testing.T) {
	if dir := os.Getenv("FELHOM_HOSTLOCK_HELPER"); dir != "" {
		g := &GuestLocks{Dir: dir}
		if _, err := g.LockGuest(context.Background(), 101); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {} // until killed
	}
	dir := filepath.Join(t.TempDir(), "guests")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostLockReleasedByKill$")
	cmd.Env = append(os.Environ(), "FELHOM_HOSTLOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper: %q", line)
	}
	refuse := &GuestLocks{Dir: dir, MaxWait: -1}
	_, err = refuse.LockGuest(context.Background(), 101)
	if want := "held by process " + strconv.Itoa(cmd.Process.Pid); !errors.Is(err, ErrGuestBusy) || !strings.Contains(err.Error(), want) {
		t.Errorf("while the helper holds it: %v; want ErrGuestBusy (%s)", err, want)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	u, err := refuse.LockGuest(context.Background(), 101)
	if err != nil {
		t.Fatalf("after kill -9 of the holder: %v", err)
	}
	u()
}
