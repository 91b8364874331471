package proxmox

import (
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The fence: Client speaks HTTPS and never starts a process; Privileged
// starts processes and never speaks HTTP. These tests hold each half to it
// by its types and by its imports.

// reachableTypes returns t and every type reachable through t's fields,
// elements, keys and pointers, stopping at named types of the standard
// library (their insides are not ours to police).
func reachableTypes(t reflect.Type) []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		out = append(out, t)
		if t.Name() != "" && isStdlib(t.PkgPath()) {
			return
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Chan:
			walk(t.Elem())
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(t)
	return out
}

func isStdlib(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return pkg != "" && !strings.Contains(first, ".")
}

// forbidden reports whether t is, or implements, one of the banned types.
func forbidden(t reflect.Type, banned []reflect.Type) (reflect.Type, bool) {
	for _, b := range banned {
		if t == b {
			return b, true
		}
		if b.Kind() == reflect.Interface && t.Kind() != reflect.Interface && t.Implements(b) {
			return b, true
		}
	}
	return nil, false
}

func TestFenceClientRunsNoProcess(t *testing.T) {
	banned := []reflect.Type{
		reflect.TypeFor[Runner](),
		reflect.TypeFor[ExecRunner](),
		reflect.TypeFor[Privileged](),
		reflect.TypeFor[exec.Cmd](),
	}
	for _, typ := range reachableTypes(reflect.TypeFor[Client]()) {
		if b, bad := forbidden(typ, banned); bad {
			t.Errorf("Client reaches %v, which is or implements %v: the API client must not run processes", typ, b)
		}
	}
}

func TestFencePrivilegedSpeaksNoHTTP(t *testing.T) {
	banned := []reflect.Type{
		reflect.TypeFor[http.Client](),
		reflect.TypeFor[http.RoundTripper](),
		reflect.TypeFor[net.Conn](),
		reflect.TypeFor[Client](),
		reflect.TypeFor[Token](),
	}
	for _, root := range []reflect.Type{reflect.TypeFor[Privileged](), reflect.TypeFor[ExecRunner]()} {
		for _, typ := range reachableTypes(root) {
			if b, bad := forbidden(typ, banned); bad {
				t.Errorf("%v reaches %v, which is or implements %v: the root half must not speak HTTP or hold a token", root, typ, b)
			}
		}
	}
}

// TestFenceImports checks the fence at the source: the files of the root
// half import no networking package, and no other file of the package
// imports os/exec.
func TestFenceImports(t *testing.T) {
	rootHalf := map[string]bool{"privileged.go": true, "exec_runner.go": true, "validate.go": true, "runner.go": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		if rootHalf[name] {
			seen++
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case rootHalf[name] && (path == "net" || strings.HasPrefix(path, "net/") || path == "crypto/tls"):
				t.Errorf("%s imports %s: the root half must not speak to the network", name, path)
			case !rootHalf[name] && path == "os/exec":
				t.Errorf("%s imports os/exec: only exec_runner.go may start processes", name)
			}
		}
	}
	if seen != len(rootHalf) {
		t.Errorf("found %d of the %d root-half files; was one renamed?", seen, len(rootHalf))
	}
}

// sudoersRule is one Cmnd_Alias of deploy/sudoers: a program path and
// either a regular expression over the space-joined arguments or the
// literal argument string.
type sudoersRule struct {
	alias, path string
	re          *regexp.Regexp // nil: args must equal literal
	literal     string
}

// loadSudoers reads the Cmnd_Alias lines of deploy/sudoers, undoing
// sudoers' backslash escapes. Go's RE2 agrees with POSIX ERE on these
// patterns: they are anchored and use only classes, groups, alternation
// and counted repetition.
var loadSudoers = sync.OnceValues(func() ([]sudoersRule, error) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "sudoers"))
	if err != nil {
		return nil, err
	}
	unescape := strings.NewReplacer(`\,`, ",", `\:`, ":", `\=`, "=", `\\`, `\`)
	var rules []sudoersRule
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Cmnd_Alias ")
		if !ok {
			continue
		}
		alias, cmnd, ok := strings.Cut(rest, " = ")
		if !ok {
			return nil, fmt.Errorf("sudoers: cannot read %q", line)
		}
		path, args, _ := strings.Cut(cmnd, " ")
		args = unescape.Replace(args)
		r := sudoersRule{alias: alias, path: path, literal: args}
		if strings.HasPrefix(args, "^") && strings.HasSuffix(args, "$") {
			if r.re, err = regexp.Compile(args); err != nil {
				return nil, fmt.Errorf("sudoers: %s: %w", alias, err)
			}
		}
		rules = append(rules, r)
	}
	if len(rules) != len(defaultPaths) {
		return nil, fmt.Errorf("sudoers: %d Cmnd_Alias lines; want one per allowed program (%d)", len(rules), len(defaultPaths))
	}
	return rules, nil
})

// sudoersAllows reports which alias of deploy/sudoers allows argv as
// ExecRunner runs it (argv[0] replaced by its default path), or "".
func sudoersAllows(t testing.TB, argv []string) string {
	t.Helper()
	rules, err := loadSudoers()
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(argv[1:], " ")
	for _, r := range rules {
		if r.path != defaultPaths[argv[0]] {
			continue
		}
		if (r.re != nil && r.re.MatchString(args)) || (r.re == nil && args == r.literal) {
			return r.alias
		}
	}
	return ""
}

// TestSudoersAllowsPrivilegedArgv holds deploy/sudoers and Privileged
// together: every command line the agent produces is allowed, and the
// classic escapes are not. FuzzPrivilegedArgv checks the first half for
// arbitrary arguments.
func TestSudoersAllowsPrivilegedArgv(t *testing.T) {
	r := &recordingRunner{out: []byte(`{}`)}
	p := newTestPrivileged(t, r)
	ctx := t.Context()
	_ = p.CreateGoldenLXC(ctx, GoldenSpec{VMID: 100, Template: testTemplate, Hostname: "g", Storage: "local-lvm"})
	_ = p.CreateGoldenLXC(ctx, GoldenSpec{VMID: 999999999, Template: "nas.x:vztmpl/c++.tar.gz", Hostname: strings.Repeat("a", 63),
		Storage: "zfs_pool.a", RootFSGB: 65536, Cores: 8192, MemoryMB: 16 << 20, Bridge: "abcdefghijklmno", Unprivileged: true})
	_ = p.CreateGoldenLXC(ctx, GoldenSpec{VMID: 9000, Template: testTemplate, Hostname: "g", Storage: "local", MemoryMB: 16, Cores: 1, RootFSGB: 1})
	for _, uuid := range []string{"3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "ABCD-1234", "0123456789abcdef"} {
		_, _ = p.MountUSBByUUID(ctx, uuid, "/mnt/felhom/a/.b/c..d/-e_f")
	}
	for _, dev := range []string{"/dev/sda", "/dev/sdzz", "/dev/nvme99n99", "/dev/hda"} {
		_, _ = p.SMART(ctx, dev)
	}
	_, _ = p.Sensors(ctx)
	for _, c := range []struct{ vmid, slot int }{{100, 0}, {101, 9}, {999999999, 255}, {4321, 199}} {
		_ = p.AttachReadOnly(ctx, c.vmid, c.slot, DefaultBootstrapRoot+"/"+strconv.Itoa(c.vmid), BootstrapMountPath)
	}
	if len(r.calls) != 15 {
		t.Fatalf("%d commands ran; want 15 (was a case refused?)", len(r.calls))
	}
	for _, argv := range r.calls {
		if sudoersAllows(t, argv) == "" {
			t.Errorf("deploy/sudoers does not allow %q", argv)
		}
	}

	denied := [][]string{
		{"pct", "set", "9000", "--hookscript", "local:snippets/x.sh"},
		{"pct", "set", "101", "--mp0", "/,mp=/host"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=0"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=1", "--hookscript", "local:snippets/x.sh"},
		{"pct", "set", "101", "--mp256", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/../../../etc,mp=/etc/felhom-bootstrap,ro=1,shared=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=0,shared=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,shared=1,ro=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=1,backup=1"},
		{"pct", "set", "101", "--mp0", "/var/lib/felhom-agent/guests/101,mp=/etc/felhom-bootstrap,ro=1,shared=0"},
		{"pct", "set", "101", "--mp0", "/,mp=/host,ro=1,shared=1"},
		append(slices.Clone(r.calls[0]), "--mp0", "/,mp=/host"),
		{"mount", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "-o", "suid,dev,exec", "/mnt/felhom/a"},
		{"mount", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "/mnt/felhom/.."},
		{"mount", "-o", "nodev,nosuid,noexec", "UUID=ABCD-1234", "/mnt/felhom"},
		{"mount", "--bind", "/etc", "/mnt/felhom/a"},
		{"smartctl", "--json", "-a", "/dev/sda", "-s", "off"},
		{"smartctl", "--json", "-a", "/dev/sda1"},
		{"sensors", "-j", "-s"},
	}
	for _, argv := range denied {
		if alias := sudoersAllows(t, argv); alias != "" {
			t.Errorf("deploy/sudoers %s allows %q", alias, argv)
		}
	}
}
