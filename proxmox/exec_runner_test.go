package proxmox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper-process pattern of os/exec's tests: ExecRunner runs this test
// binary in place of a root tool, and the environment tells it to act as
// the fake tool instead of running tests. It is an init function, not
// TestMain, because the tool's own arguments ("--json", "-a") would not
// survive the testing package's flag parsing.
func init() {
	if os.Getenv("GO_WANT_HELPER_PROCESS") != "1" {
		return
	}
	os.Exit(helperTool(os.Getenv("HELPER_MODE")))
}

// helperTool is the fake tool. Modes:
//
//	echo   print {"args": os.Args[1:], "env": os.Environ()} as JSON
//	exit   write "boom" to stderr and some output to stdout, exit HELPER_CODE
//	stdin  print what standard input holds ("" when it is /dev/null)
//	big    write 5 MiB to stdout
//	hang   write to the FIFO HELPER_READY, then sleep until killed
func helperTool(mode string) int {
	switch mode {
	case "echo":
		_ = json.NewEncoder(os.Stdout).Encode(map[string][]string{"args": os.Args[1:], "env": os.Environ()})
	case "exit":
		fmt.Print("partial")
		fmt.Fprintln(os.Stderr, "boom")
		code, _ := strconv.Atoi(os.Getenv("HELPER_CODE"))
		return code
	case "stdin":
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%q", b)
	case "big":
		chunk := []byte(strings.Repeat("x", 1<<20))
		for range 5 {
			_, _ = os.Stdout.Write(chunk)
		}
	case "hang":
		f, err := os.OpenFile(os.Getenv("HELPER_READY"), os.O_WRONLY, 0)
		if err != nil {
			return 3
		}
		_, _ = f.Write([]byte("x"))
		_ = f.Close()
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "unknown HELPER_MODE %q\n", mode)
		return 2
	}
	return 0
}

// helperRunner returns an ExecRunner whose programs all are this test binary.
func helperRunner(t *testing.T, mode string, extraEnv ...string) *ExecRunner {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{"sudo": self}
	for prog := range defaultPaths {
		paths[prog] = self
	}
	return &ExecRunner{Paths: paths, Env: append([]string{"GO_WANT_HELPER_PROCESS=1", "HELPER_MODE=" + mode}, extraEnv...)}
}

type echoed struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

func TestExecRunnerArgvAndEnv(t *testing.T) {
	t.Setenv("FELHOM_TEST_LEAK", "must-not-reach-the-tool")
	tests := []struct {
		name string
		sudo bool
		argv []string
		want []string // the helper's os.Args[1:]
	}{
		{"direct", false, []string{"smartctl", "--json", "-a", "/dev/sda"}, []string{"--json", "-a", "/dev/sda"}},
		{"direct argument with spaces stays one", false, []string{"sensors", "-j", "a b; rm -rf /"}, []string{"-j", "a b; rm -rf /"}},
		{"sudo", true, []string{"mount", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "/mnt/felhom/a"},
			[]string{"-n", "<self>", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "/mnt/felhom/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := helperRunner(t, "echo")
			r.Sudo = tt.sudo
			out, err := r.Run(context.Background(), tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			var got echoed
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("helper output %q: %v", out, err)
			}
			want := slices.Clone(tt.want)
			if i := slices.Index(want, "<self>"); i >= 0 {
				want[i] = r.Paths[tt.argv[0]]
			}
			if !slices.Equal(got.Args, want) {
				t.Errorf("args = %q; want %q", got.Args, want)
			}
			for _, kv := range []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"} {
				if !slices.Contains(got.Env, kv) {
					t.Errorf("env %q lacks %q", got.Env, kv)
				}
			}
			for _, kv := range got.Env {
				if strings.HasPrefix(kv, "FELHOM_TEST_LEAK=") {
					t.Errorf("the agent's environment leaked into the tool: %q", kv)
				}
			}
		})
	}
}

func TestExecRunnerRefuses(t *testing.T) {
	tests := []struct {
		name    string
		r       *ExecRunner
		argv    []string
		wantErr string
	}{
		{"empty argv", &ExecRunner{}, nil, "exec: empty command"},
		{"shell", &ExecRunner{}, []string{"sh", "-c", "id"}, `exec: "sh" is not an allowed program`},
		{"absolute path", &ExecRunner{}, []string{"/usr/bin/mount", "-a"}, `"/usr/bin/mount" is not an allowed program`},
		{"sudo itself", &ExecRunner{}, []string{"sudo", "-s"}, `"sudo" is not an allowed program`},
		{"paths do not extend the allowlist", &ExecRunner{Paths: map[string]string{"bash": "/bin/bash"}}, []string{"bash"}, `"bash" is not an allowed program`},
		{"relative path", &ExecRunner{Paths: map[string]string{"pct": "pct"}}, []string{"pct", "list"}, `path of pct "pct" is not a clean absolute path`},
		{"unclean path", &ExecRunner{Paths: map[string]string{"pct": "/usr/sbin/../bin/pct"}}, []string{"pct"}, `is not a clean absolute path`},
		{"relative sudo", &ExecRunner{Sudo: true, Paths: map[string]string{"sudo": "sudo"}}, []string{"sensors", "-j"}, `path of sudo "sudo"`},
		{"NUL", &ExecRunner{}, []string{"sensors", "-j\x00"}, `contains NUL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.r.Run(context.Background(), tt.argv)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run(%q) = %v; want error containing %q", tt.argv, err, tt.wantErr)
			}
		})
	}
}

func TestExecRunnerExitError(t *testing.T) {
	r := helperRunner(t, "exit", "HELPER_CODE=72")
	argv := []string{"smartctl", "--json", "-a", "/dev/sdb"}
	out, err := r.Run(context.Background(), argv)
	ee, ok := errors.AsType[*ExitError](err)
	if !ok {
		t.Fatalf("err = %v; want *ExitError", err)
	}
	if ee.Code != 72 || ee.Stderr != "boom\n" || !slices.Equal(ee.Argv, argv) {
		t.Errorf("ExitError = %+v; want code 72, stderr \"boom\\n\", argv %q", ee, argv)
	}
	if string(out) != "partial" {
		t.Errorf("output = %q; want the output so far, \"partial\"", out)
	}
	if got, want := err.Error(), "smartctl exited 72: boom"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func TestExecRunnerStdinIsEmpty(t *testing.T) {
	out, err := helperRunner(t, "stdin").Run(context.Background(), []string{"sensors", "-j"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `""` {
		t.Errorf("tool read %s from stdin; want nothing", out)
	}
}

func TestExecRunnerOutputCap(t *testing.T) {
	out, err := helperRunner(t, "big").Run(context.Background(), []string{"sensors", "-j"})
	if err == nil || !strings.Contains(err.Error(), "exec: sensors: output exceeds 4194304 bytes") {
		t.Errorf("err = %v; want the output cap error", err)
	}
	if len(out) != maxStdout {
		t.Errorf("kept %d bytes; want %d", len(out), maxStdout)
	}
}

// TestExecRunnerCancel cancels while the tool runs: the tool is known to be
// running once it has opened the FIFO, and Run must stop it and return the
// context's error.
func TestExecRunnerCancel(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	r := helperRunner(t, "hang", "HELPER_READY="+fifo)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		f, err := os.Open(fifo) // blocks until the tool opens it
		if err == nil {
			_, _ = f.Read(make([]byte, 1))
			_ = f.Close()
		}
		cancel()
	}()
	_, err := r.Run(ctx, []string{"pct", "create"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled wrapped", err)
	}
}

func TestExecRunnerMissingProgram(t *testing.T) {
	r := &ExecRunner{Paths: map[string]string{"sensors": "/nonexistent/felhom/sensors"}}
	_, err := r.Run(context.Background(), []string{"sensors", "-j"})
	if err == nil || !strings.HasPrefix(err.Error(), "exec: sensors: ") {
		t.Errorf("err = %v; want a wrapped start error", err)
	}
	if _, ok := errors.AsType[*ExitError](err); ok {
		t.Errorf("a program that never started gave an *ExitError")
	}
}
