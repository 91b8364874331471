package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			e := dirEnv{
				getenv: func(k string) string { return tt.env[k] },
				uid:    tt.uid,
				home: func() (string, error) {
					if tt.noHome {
						return "", errors.New("no home")
					}
					return "/home/u", nil
				},
				writable: func(string) bool { return tt.writable },
				exists:   func(p string) bool { return tt.sockExists && p == "/run/felhom-agent/agent.sock" },
			}
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
