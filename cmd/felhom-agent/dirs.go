package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// Where the agent keeps its files when no setting says: systemd's
// directories when systemd runs it, the system's directories when they
// are usable, else the user's (XDG base directories). The shipped unit
// (deploy/felhom-agent.service) sets StateDirectory= and
// RuntimeDirectory=, so it gets the system directories through systemd.
//
//	                under systemd           system (root)          a user (fallback)
//	state_dir       $STATE_DIRECTORY        /var/lib/felhom-agent  $XDG_STATE_HOME/felhom-agent (~/.local/state/...)
//	socket          $RUNTIME_DIRECTORY/agent.sock
//	                                        /run/felhom-agent/agent.sock
//	                                                               $XDG_RUNTIME_DIR/felhom-agent/agent.sock
//
// An agent serving a simulated host (serve --sim) never shares the real
// host's agent's files: whoever runs it, root included, and under systemd
// too, it takes the user's directories under their own name,
// felhom-agent-sim:
//
//	                serve --sim (any user)
//	state_dir       $XDG_STATE_HOME/felhom-agent-sim (~/.local/state/felhom-agent-sim)
//	socket          $XDG_RUNTIME_DIR/felhom-agent-sim/agent.sock
//	                (without XDG_RUNTIME_DIR: $TMPDIR/felhom-agent-sim-UID/agent.sock;
//	                without a home, the state directory is state/ beside it)
//
// The guest locks (host-wide, flock) live beside the socket, in guests/.
// A socket directory that is missing is made when the agent listens
// (runtime/api.Listen; a per-user default one mode 0700).
const (
	systemStateDir   = "/var/lib/felhom-agent"
	systemRuntimeDir = "/run/felhom-agent"
	appDirName       = "felhom-agent"
	simDirName       = appDirName + "-sim"
	socketName       = "agent.sock"
)

// dirEnv is what the default directories depend on: the environment, the
// user, and whether a directory can be used. It is a value so that tests
// can vary each.
type dirEnv struct {
	getenv func(string) string
	uid    int
	home   func() (string, error)
	// writable reports whether dir exists and may be written by this
	// process, or does not exist and could be created.
	writable func(dir string) bool
	// exists reports whether path exists.
	exists func(path string) bool
}

// hostDirs is the process's own dirEnv.
func hostDirs() dirEnv {
	return dirEnv{
		getenv:   os.Getenv,
		uid:      os.Geteuid(),
		home:     os.UserHomeDir,
		writable: writableDir,
		exists: func(p string) bool {
			_, err := os.Lstat(p)
			return err == nil
		},
	}
}

// place is a default directory and, when it is not the system's, the
// sentence saying so (logged by serve; "" for the system's or systemd's).
type place struct {
	Dir  string
	Note string
}

// stateDir is the default state directory for serve and state
// export/import: $STATE_DIRECTORY (systemd), else /var/lib/felhom-agent
// when it can be written (or by root), else the user's.
func (e dirEnv) stateDir() place {
	if d := systemdDir(e.getenv("STATE_DIRECTORY")); d != "" {
		return place{Dir: d}
	}
	if e.uid == 0 || e.writable(systemStateDir) {
		return place{Dir: systemStateDir}
	}
	base := e.userStateBase()
	if base == "" {
		return place{Dir: systemStateDir}
	}
	d := filepath.Join(base, appDirName)
	return place{Dir: d, Note: fmt.Sprintf("%s is not writable by uid %d: using the per-user state directory %s (state_dir sets another)", systemStateDir, e.uid, d)}
}

// userStateBase is $XDG_STATE_HOME, else ~/.local/state, else "" (no
// home).
func (e dirEnv) userStateBase() string {
	if base := xdgDir(e.getenv("XDG_STATE_HOME")); base != "" {
		return base
	}
	home, err := e.home()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "state")
}

// simStateDir is serve --sim's default state directory: the user's
// felhom-agent-sim, whoever the user is, never the real host agent's.
func (e dirEnv) simStateDir() place {
	d := filepath.Join(e.simRuntimeDir(), "state")
	if base := e.userStateBase(); base != "" {
		d = filepath.Join(base, simDirName)
	}
	return place{Dir: d, Note: fmt.Sprintf("serving a simulated host: using its own state directory %s, apart from the real host's agent (state_dir sets another)", d)}
}

// simSocket is serve --sim's default socket: agent.sock in the user's
// felhom-agent-sim runtime directory.
func (e dirEnv) simSocket() place {
	d := filepath.Join(e.simRuntimeDir(), socketName)
	return place{Dir: d, Note: fmt.Sprintf("serving a simulated host: its local API is %s, apart from the real host's agent; other commands reach it with --socket %s (socket sets another)", d, d)}
}

// simRuntimeDir is $XDG_RUNTIME_DIR/felhom-agent-sim, else a directory of
// the user's own under the temporary directory.
func (e dirEnv) simRuntimeDir() string {
	if base := xdgDir(e.getenv("XDG_RUNTIME_DIR")); base != "" {
		return filepath.Join(base, simDirName)
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s-%d", simDirName, e.uid))
}

// runtimeDir is the default directory of the socket and the guest locks:
// $RUNTIME_DIRECTORY (systemd), else /run/felhom-agent when it can be
// written or already holds a serving agent's socket (or by root), else
// the user's: $XDG_RUNTIME_DIR/felhom-agent, or, without XDG_RUNTIME_DIR,
// a directory of the user's own under the temporary directory (as the XDG
// base directory specification asks, with a warning).
func (e dirEnv) runtimeDir() place {
	if d := systemdDir(e.getenv("RUNTIME_DIRECTORY")); d != "" {
		return place{Dir: d}
	}
	if e.uid == 0 || e.exists(filepath.Join(systemRuntimeDir, socketName)) || e.writable(systemRuntimeDir) {
		return place{Dir: systemRuntimeDir}
	}
	if base := xdgDir(e.getenv("XDG_RUNTIME_DIR")); base != "" {
		d := filepath.Join(base, appDirName)
		return place{Dir: d, Note: fmt.Sprintf("%s is not writable by uid %d: using the per-user runtime directory %s (socket sets another)", systemRuntimeDir, e.uid, d)}
	}
	d := filepath.Join(os.TempDir(), fmt.Sprintf("%s-%d", appDirName, e.uid))
	return place{Dir: d, Note: fmt.Sprintf("%s is not writable by uid %d and XDG_RUNTIME_DIR is not set: using %s (socket sets another)", systemRuntimeDir, e.uid, d)}
}

// socket is the default local API socket: agent.sock in runtimeDir.
func (e dirEnv) socket() place {
	p := e.runtimeDir()
	p.Dir = filepath.Join(p.Dir, socketName)
	return p
}

// simSocketHint is the line that tells a command which could not reach
// the default socket (the real host agent's) where a serve --sim agent
// serves instead, when one's socket is there; "" otherwise.
func simSocketHint(err error, e dirEnv) string {
	path := api.UnreachableSocket(err)
	if path == "" || path != e.socket().Dir {
		return ""
	}
	sim := e.simSocket().Dir
	if !e.exists(sim) {
		return ""
	}
	return fmt.Sprintf("  a serve --sim agent's socket is %s: add --socket %s to reach it", sim, sim)
}

// systemdDir is the first of the colon-separated absolute paths systemd
// puts in $STATE_DIRECTORY or $RUNTIME_DIRECTORY (one per directory the
// unit names), or "".
func systemdDir(v string) string {
	first, _, _ := strings.Cut(v, ":")
	if !filepath.IsAbs(first) {
		return ""
	}
	return filepath.Clean(first)
}

// xdgDir is an XDG base directory variable's value, or "" when it is
// unset or relative (the specification says to ignore relative paths).
func xdgDir(v string) string {
	if !filepath.IsAbs(v) {
		return ""
	}
	return filepath.Clean(v)
}

// writableDir reports whether dir may be written (and searched) by this
// process, or, when it does not exist, whether its nearest existing
// ancestor may be, so that it could be created.
func writableDir(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		err := unix.Access(d, unix.W_OK|unix.X_OK)
		if err == nil {
			return true
		}
		if !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			return false
		}
	}
}

// guestLockDir is where the host-wide guest locks of the agent at socket
// live: guests/ beside the socket.
func guestLockDir(socket string) string { return filepath.Join(filepath.Dir(socket), "guests") }

// hostGuestLocks are the guest locks every run against the real host
// takes — the serving agent's and the console's alike — so that two
// processes never mutate one guest at once. The directory is made now
// (mode 0770: the operators in the agent's group take locks in it too),
// so that a problem with it is a start-up error naming the setting.
func hostGuestLocks(socket string) (*engine.GuestLocks, error) {
	// Others who may write beside the socket could replace the locks too;
	// refused before anything is made there. A missing socket directory is
	// made as the socket's listener would make it.
	if err := api.MakeSocketDir(filepath.Dir(socket)); err != nil {
		return nil, fmt.Errorf("local API socket %s: %w\n  the setting to change: %s", socket, err, settingNames["Socket"])
	}
	dir := guestLockDir(socket)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o770); err != nil {
			return nil, fmt.Errorf("guest locks: %w\n  the setting to change: %s", err, settingNames["Socket"])
		}
		_ = os.Chmod(dir, 0o770) // the umask's share back: the group takes locks too
	}
	return &engine.GuestLocks{Dir: dir}, nil
}
