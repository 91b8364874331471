package proxmox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ExecRunner is the production [Runner]: it starts the allowlisted root
// tools as processes, directly or through "sudo -n". It runs nothing else:
// argv[0] must be one of pct, mount, smartctl or sensors, and is replaced
// by that program's absolute path. There is no shell, standard input is
// /dev/null, and the environment is fixed (PATH=/usr/sbin:/usr/bin:/sbin:/bin,
// LC_ALL=C) plus Env.
//
// Standard output is returned up to 4 MiB (more is an error); standard
// error, up to 64 KiB, goes into the [*ExitError] of a non-zero exit. When
// ctx ends, the process gets SIGTERM (which sudo passes on to the tool),
// and SIGKILL 5 s later if it is still there.
//
// The zero value runs the programs directly from their Debian/PVE paths.
type ExecRunner struct {
	// Sudo prefixes every command with "sudo -n": sudo must allow it
	// without a password (deploy/sudoers), or the command fails at once.
	Sudo bool
	// Paths overrides the absolute path of a program ("pct", "mount",
	// "smartctl", "sensors", or "sudo" itself); nil or a missing key means
	// the default: /usr/sbin/pct, /usr/bin/mount, /usr/sbin/smartctl,
	// /usr/bin/sensors, /usr/bin/sudo. A key outside these is ignored: it
	// does not extend the allowlist.
	Paths map[string]string
	// Env holds extra KEY=VALUE entries for the command's environment.
	// sudo drops them unless sudoers keeps them.
	Env []string
}

// defaultPaths is the allowlist of programs and where Debian and PVE
// install them; "sudo" is only a path, never a program Run accepts.
var defaultPaths = map[string]string{
	"pct":      "/usr/sbin/pct",
	"mount":    "/usr/bin/mount",
	"smartctl": "/usr/sbin/smartctl",
	"sensors":  "/usr/bin/sensors",
}

const (
	defaultSudoPath = "/usr/bin/sudo"
	maxStdout       = 4 << 20
	maxStderr       = 64 << 10
	killDelay       = 5 * time.Second
)

// fixedEnv keeps the tools' messages in English (for people reading run
// logs) and their helpers found only in system directories.
var fixedEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

var _ Runner = (*ExecRunner)(nil)

// Run runs argv as described on [ExecRunner] and the [Runner] contract.
func (r *ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty command")
	}
	prog := argv[0]
	if _, ok := defaultPaths[prog]; !ok {
		return nil, fmt.Errorf("exec: %q is not an allowed program", prog)
	}
	path, err := r.path(prog, defaultPaths[prog])
	if err != nil {
		return nil, err
	}
	for _, a := range argv[1:] {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("exec: %s: argument %q contains NUL", prog, a)
		}
	}
	name, args := path, argv[1:]
	if r.Sudo {
		sudo, err := r.path("sudo", defaultSudoPath)
		if err != nil {
			return nil, err
		}
		name, args = sudo, append([]string{"-n", path}, argv[1:]...)
	}

	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append([]string(nil), fixedEnv...), r.Env...)
	cmd.Stdin = nil
	stdout := &capped{max: maxStdout}
	stderr := &capped{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// SIGTERM rather than exec's default SIGKILL: sudo cannot forward a
	// SIGKILL, and the tool under it would keep running as an orphan.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = killDelay

	err = cmd.Run()
	out := stdout.buf.Bytes()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return out, fmt.Errorf("exec: %s: %w", prog, ctxErr)
	}
	if stdout.over {
		return out, fmt.Errorf("exec: %s: output exceeds %d bytes", prog, maxStdout)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return out, &ExitError{Argv: append([]string(nil), argv...), Code: ee.ExitCode(), Stderr: stderr.buf.String()}
	}
	if err != nil {
		return out, fmt.Errorf("exec: %s: %w", prog, err)
	}
	return out, nil
}

// path returns r's path for prog, or def; it must be absolute and clean.
func (r *ExecRunner) path(prog, def string) (string, error) {
	p, ok := r.Paths[prog]
	if !ok {
		return def, nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return "", fmt.Errorf("exec: path of %s %q is not a clean absolute path", prog, p)
	}
	return p, nil
}

// capped keeps the first max bytes written to it and discards the rest,
// still reporting success so the process never blocks on a full pipe.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}
