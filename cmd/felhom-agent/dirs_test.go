package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestDefaultDirs: the state directory and the socket follow systemd's
// variables, then the system's directories when usable (always for
// root), then the XDG base directories, and say so when they fall back.
func TestDefaultDirs(t *testing.T) {
	tmp := os.TempDir()
	for _, tt := range []struct {
		name       string
		env        map[string]string
		uid        int
		writable   bool // the system directories
		sockExists bool // /run/felhom-agent/agent.sock
		noHome     bool
		state      string
		socket     string
		noted      bool // a fallback sentence is given
	}{
		{name: "systemd", env: map[string]string{"STATE_DIRECTORY": "/var/lib/felhom-agent", "RUNTIME_DIRECTORY": "/run/felhom-agent"}, uid: 997,
			state: "/var/lib/felhom-agent", socket: "/run/felhom-agent/agent.sock"},
		{name: "systemd, unit's own names", env: map[string]string{"STATE_DIRECTORY": "/srv/st:/srv/other", "RUNTIME_DIRECTORY": "/run/x/"}, uid: 997,
			state: "/srv/st", socket: "/run/x/agent.sock"},
		{name: "systemd variable relative: ignored", env: map[string]string{"STATE_DIRECTORY": "st"}, uid: 0,
			state: "/var/lib/felhom-agent", socket: "/run/felhom-agent/agent.sock"},
		{name: "root", uid: 0, state: "/var/lib/felhom-agent", socket: "/run/felhom-agent/agent.sock"},
		{name: "user who may write the system dirs", uid: 1000, writable: true,
			state: "/var/lib/felhom-agent", socket: "/run/felhom-agent/agent.sock"},
		{name: "user beside a serving system agent", uid: 1000, sockExists: true, env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			state: "/home/u/.local/state/felhom-agent", socket: "/run/felhom-agent/agent.sock", noted: true},
		{name: "user", uid: 1000, env: map[string]string{"XDG_STATE_HOME": "/home/u/st", "XDG_RUNTIME_DIR": "/run/user/1000"},
			state: "/home/u/st/felhom-agent", socket: "/run/user/1000/felhom-agent/agent.sock", noted: true},
		{name: "user, no XDG variables", uid: 1000,
			state: "/home/u/.local/state/felhom-agent", socket: filepath.Join(tmp, "felhom-agent-1000", "agent.sock"), noted: true},
		{name: "user, relative XDG variables are ignored", uid: 1000, env: map[string]string{"XDG_STATE_HOME": "st", "XDG_RUNTIME_DIR": "rt"},
			state: "/home/u/.local/state/felhom-agent", socket: filepath.Join(tmp, "felhom-agent-1000", "agent.sock"), noted: true},
		{name: "user without a home", uid: 1000, noHome: true, env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			state: "/var/lib/felhom-agent", socket: "/run/user/1000/felhom-agent/agent.sock", noted: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := fakeDirs(tt.env, tt.uid, tt.noHome)
			e.writable = func(string) bool { return tt.writable }
			e.exists = func(p string) bool { return tt.sockExists && p == "/run/felhom-agent/agent.sock" }
			st, sock := e.stateDir(), e.socket()
			if st.Dir != tt.state || sock.Dir != tt.socket {
				t.Errorf("state, socket = %s, %s; want %s, %s", st.Dir, sock.Dir, tt.state, tt.socket)
			}
			if got := st.Note != "" || sock.Note != ""; got != tt.noted {
				t.Errorf("notes %q %q; want a note: %v", st.Note, sock.Note, tt.noted)
			}
			for _, n := range []string{st.Note, sock.Note} {
				if n != "" && !strings.Contains(n, "sets another") {
					t.Errorf("note %q does not say which setting chooses", n)
				}
			}
		})
	}
}

// TestWritableDir: an existing writable directory, a missing one under
// it, and a missing one under a file or an unwritable directory.
func TestWritableDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir  string
		want bool
	}{
		{dir, true},
		{filepath.Join(dir, "a", "b"), true},
		{filepath.Join(file, "a"), false}, // ENOTDIR, not "missing"
	} {
		if got := writableDir(tt.dir); got != tt.want {
			t.Errorf("writableDir(%s) = %v; want %v", tt.dir, got, tt.want)
		}
	}
}

// TestWithSetting: a fatal start error caused by one setting names it in
// its three spellings.
func TestWithSetting(t *testing.T) {
	c := &ServeCmd{StateDir: filepath.Join(t.TempDir(), "f")}
	if err := os.WriteFile(c.StateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	code := run([]string{"--playbooks", t.TempDir(), "serve", "--sim", "--listen", "", "--state-dir", c.StateDir,
		"--socket", filepath.Join(t.TempDir(), "a.sock")}, &out, &out)
	if code != exitUsage || !strings.Contains(out.String(), "the setting to change: state_dir (--state-dir, FELHOM_AGENT_STATE_DIR)") {
		t.Errorf("serve on a state directory that is a file: exit %d\n%s", code, out.String())
	}
}

// TestSimDefaultDirs: serve --sim takes the user's felhom-agent-sim
// directories whoever runs it — root and a systemd unit included — never
// the real host agent's, and always says where; explicit settings win.
func TestSimDefaultDirs(t *testing.T) {
	tmp := os.TempDir()
	for _, tt := range []struct {
		name   string
		env    map[string]string
		uid    int
		noHome bool
		state  string
		socket string
	}{
		{name: "root", uid: 0,
			state: "/home/u/.local/state/felhom-agent-sim", socket: filepath.Join(tmp, "felhom-agent-sim-0", "agent.sock")},
		{name: "root with XDG variables", uid: 0, env: map[string]string{"XDG_STATE_HOME": "/root/st", "XDG_RUNTIME_DIR": "/run/user/0"},
			state: "/root/st/felhom-agent-sim", socket: "/run/user/0/felhom-agent-sim/agent.sock"},
		{name: "under systemd: its directories are the real agent's", uid: 997,
			env:   map[string]string{"STATE_DIRECTORY": "/var/lib/felhom-agent", "RUNTIME_DIRECTORY": "/run/felhom-agent", "XDG_RUNTIME_DIR": "/run/user/997"},
			state: "/home/u/.local/state/felhom-agent-sim", socket: "/run/user/997/felhom-agent-sim/agent.sock"},
		{name: "user", uid: 1000, env: map[string]string{"XDG_STATE_HOME": "/home/u/st", "XDG_RUNTIME_DIR": "/run/user/1000"},
			state: "/home/u/st/felhom-agent-sim", socket: "/run/user/1000/felhom-agent-sim/agent.sock"},
		{name: "user, relative XDG variables are ignored", uid: 1000, env: map[string]string{"XDG_STATE_HOME": "st", "XDG_RUNTIME_DIR": "rt"},
			state: "/home/u/.local/state/felhom-agent-sim", socket: filepath.Join(tmp, "felhom-agent-sim-1000", "agent.sock")},
		{name: "without a home: beside the socket", uid: 1000, noHome: true, env: map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"},
			state: "/run/user/1000/felhom-agent-sim/state", socket: "/run/user/1000/felhom-agent-sim/agent.sock"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := fakeDirs(tt.env, tt.uid, tt.noHome)
			// The system directories are usable and a real agent serves
			// there: --sim still keeps apart.
			e.writable = func(string) bool { return true }
			e.exists = func(string) bool { return true }
			st, sock := e.simStateDir(), e.simSocket()
			if st.Dir != tt.state || sock.Dir != tt.socket {
				t.Errorf("sim state, socket = %s, %s; want %s, %s", st.Dir, sock.Dir, tt.state, tt.socket)
			}
			for _, d := range []string{st.Dir, sock.Dir} {
				if strings.HasPrefix(d, systemStateDir) || strings.HasPrefix(d, systemRuntimeDir) || strings.HasPrefix(d, "/var/lib/") {
					t.Errorf("sim default %s is the real agent's", d)
				}
			}
			if !strings.Contains(st.Note, st.Dir) || !strings.Contains(st.Note, "state_dir sets another") ||
				!strings.Contains(sock.Note, "--socket "+sock.Dir) || !strings.Contains(sock.Note, "socket sets another") {
				t.Errorf("notes %q, %q; want each to name its directory and the setting", st.Note, sock.Note)
			}

			// serve fills in only what no setting chose.
			home := t.TempDir()
			e.getenv = func(k string) string {
				return map[string]string{"XDG_STATE_HOME": filepath.Join(home, "st"), "XDG_RUNTIME_DIR": filepath.Join(home, "rt")}[k]
			}
			for _, c := range []struct {
				cmd               ServeCmd
				wantState, wantSo string
			}{
				{ServeCmd{Sim: true}, filepath.Join(home, "st", simDirName), filepath.Join(home, "rt", simDirName, socketName)},
				{ServeCmd{Sim: true, StateDir: "/srv/s", Socket: "/srv/r/a.sock"}, "/srv/s", "/srv/r/a.sock"},
			} {
				cmd := c.cmd
				if err := cmd.defaultDirs(e, slog.New(slog.DiscardHandler)); err != nil {
					t.Fatal(err)
				}
				if cmd.StateDir != c.wantState || cmd.Socket != c.wantSo {
					t.Errorf("serve --sim state_dir, socket = %s, %s; want %s, %s", cmd.StateDir, cmd.Socket, c.wantState, c.wantSo)
				}
			}
			if fi, err := os.Stat(filepath.Join(home, "rt", simDirName)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("sim socket directory: %v, %v; want it made, mode 0700", fi, err)
			}
		})
	}
}

// TestSimSocketHint: a command that cannot reach the default socket is
// told where a serve --sim agent's socket is, when there is one; an
// explicit other socket, a missing sim socket or another error says
// nothing more.
func TestSimSocketHint(t *testing.T) {
	dir := t.TempDir()
	def, other := filepath.Join(dir, "rt", "agent.sock"), filepath.Join(dir, "o.sock")
	unreachable := func(path string) error {
		c := api.NewClient(path)
		defer c.Close()
		_, err := c.Runs(context.Background(), api.ListFilter{})
		if err == nil {
			t.Fatalf("Runs at %s succeeded", path)
		}
		return err
	}
	sim := filepath.Join(dir, "x", simDirName, socketName)
	for _, tt := range []struct {
		name       string
		err        error
		simServing bool
		want       bool
	}{
		{"default socket unreachable, sim agent's there", unreachable(def), true, true},
		{"default socket unreachable, no sim agent", unreachable(def), false, false},
		{"another socket unreachable", unreachable(other), true, false},
		{"another error", errors.New("run r-1 is succeeded"), true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := dirEnv{
				getenv: func(k string) string {
					return map[string]string{"RUNTIME_DIRECTORY": filepath.Dir(def), "XDG_RUNTIME_DIR": filepath.Join(dir, "x")}[k]
				},
				uid:      1000,
				home:     func() (string, error) { return dir, nil },
				writable: func(string) bool { return false },
				exists:   func(p string) bool { return tt.simServing && p == sim },
			}
			got := simSocketHint(tt.err, e)
			if (got != "") != tt.want || tt.want && !strings.Contains(got, "--socket "+sim) {
				t.Errorf("hint = %q; want a hint naming %s: %v", got, sim, tt.want)
			}
		})
	}
}

// fakeDirs is a dirEnv of environment env, user uid and home /home/u
// (none when noHome); writable and exists are the test's to set.
func fakeDirs(env map[string]string, uid int, noHome bool) dirEnv {
	return dirEnv{
		getenv: func(k string) string { return env[k] },
		uid:    uid,
		home: func() (string, error) {
			if noHome {
				return "", errors.New("no home")
			}
			return "/home/u", nil
		},
	}
}

// TestHostGuestLocksInTheAgentsDirectory: a console run (here root) takes
// its guest locks beside the socket of an agent that runs as its own user
// (systemd's RuntimeDirectory= belongs to User=); only the serving agent
// refuses a socket directory another user owns (api.Listen). One others
// may write is refused to both.
func TestHostGuestLocksInTheAgentsDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user needs root")
	}
	for _, tt := range []struct {
		mode os.FileMode
		want string // "" accepted
	}{
		{0o750, ""},
		{0o770, ""},
		{0o777, "is writable by others"},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := hostGuestLocks(filepath.Join(dir, "agent.sock"))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("guest locks in the agent's %v directory: %v", tt.mode, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("guest locks in a %v directory: %v; want %q", tt.mode, err, tt.want)
			}
			if tt.want == "" {
				if fi, err := os.Stat(guestLockDir(filepath.Join(dir, "agent.sock"))); err != nil || !fi.IsDir() {
					t.Errorf("the guest lock directory was not made: %v", err)
				}
			}
		})
	}
}
