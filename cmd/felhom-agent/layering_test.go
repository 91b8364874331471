package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "gitea.dooplex.hu/admin/felhom-agent"

// rules lists, per package, the dependencies (direct or not) it must not
// have, each with the reason. A prefix ending in "/..." matches a tree.
var rules = []struct {
	pkg    string
	bad    map[string]string // forbidden anywhere in the dependency graph
	direct map[string]string // forbidden as a direct import
	// only, when set, lists the sole non-standard packages it may import
	// directly, each with why: the daemon's parts are leaves.
	only map[string]string
}{
	{pkg: "proxmox", bad: map[string]string{
		"go.starlark.net/...":      "the Proxmox layer knows nothing of Starlark",
		module + "/builtins":       "dependencies flow cmd → runtime/agent → runtime/engine → builtins → proxmox",
		module + "/runtime/...":    "dependencies flow cmd → runtime/agent → runtime/engine → builtins → proxmox",
		module + "/proxmox/pvesim": "production code never depends on the simulator",
	}},
	{pkg: "proxmox/pvesim", bad: map[string]string{
		"go.starlark.net/...":   "the simulator models PVE, not playbooks",
		module + "/builtins":    "the simulator may use proxmox types only",
		module + "/runtime/...": "the simulator may use proxmox types only",
	}},
	{pkg: "builtins", bad: map[string]string{
		module + "/runtime/...":        "builtins know nothing of files, timers, the hub or the store",
		"github.com/fsnotify/fsnotify": "builtins know nothing of files",
		"modernc.org/sqlite":           "builtins know nothing of the run store",
		module + "/proxmox/pvesim":     "production code never depends on the simulator",
	}, direct: map[string]string{
		"os/exec":  "playbooks reach processes only through proxmox.Privileged's fenced runner",
		"net/http": "playbooks reach the network only through the proxmox client",
	}},
	{pkg: "runtime/engine", bad: map[string]string{
		module + "/runtime/agent":      "the engine runs playbooks; the daemon around it is the agent's",
		module + "/runtime/store":      "the engine never records runs: the agent (or the CLI) does",
		module + "/runtime/hub":        "the engine knows nothing of where a run came from",
		module + "/runtime/api":        "the engine knows nothing of where a run came from",
		"github.com/fsnotify/fsnotify": "hot reload is the agent's; the engine reloads what it is told",
		"modernc.org/sqlite":           "the engine never records runs",
		module + "/proxmox/pvesim":     "production code never depends on the simulator",
	}},
	{pkg: "runtime/playtest", bad: map[string]string{
		module + "/runtime/agent": "playbook tests run on the engine and the simulator, never the daemon",
		module + "/runtime/store": "playbook tests keep no records",
	}},
	{pkg: "runtime/plan", bad: map[string]string{
		module + "/runtime/agent": "a plan runs on the engine and a mirror, never the daemon",
		module + "/runtime/store": "a plan keeps no records",
	}},
	{pkg: "runtime/store", only: map[string]string{
		"modernc.org/sqlite":               "the pure-Go SQLite driver; UPIDs are plain strings so proxmox stays out",
		"modernc.org/sqlite/lib":           "the driver's result codes, to tell a damaged file from a full disk",
		module + "/runtime/store/runstate": "the store's own run vocabulary, a leaf the engine shares",
	}},
	{pkg: "runtime/store/runstate", only: map[string]string{}},
	{pkg: "runtime/statedir", only: map[string]string{
		module + "/runtime/store": "exports and imports the run store through the store's own backup and check",
	}},
	{pkg: "runtime/hub", only: map[string]string{module + "/internal/clip": "how text is cut for the log, a stdlib-only leaf"}},
	{pkg: "runtime/hub/channel", only: map[string]string{
		module + "/proxmox":       "its TLSTrust is the one TLS trust implementation of every HTTPS client (and the vmid bounds)",
		module + "/internal/clip": "how untrusted hub text is cut",
	}, bad: map[string]string{
		"go.starlark.net/...":          "the hub channel knows nothing of playbooks: the agent hands it a report and takes the desired state",
		module + "/runtime/hub/hubsim": "production code never depends on the simulator",
		module + "/proxmox/pvesim":     "production code never depends on the simulator",
	}},
	{pkg: "runtime/hub/hubsim", only: map[string]string{
		module + "/internal/selfsigned": "the simulators' one self-signed certificate and TLS server lifecycle",
		module + "/proxmox":             "the fingerprint format PVE and the agent's pins use",
	}},
	{pkg: "runtime/agent", bad: map[string]string{
		module + "/runtime/hub/hubsim": "production code never depends on the simulator",
		module + "/proxmox/pvesim":     "production code never depends on the simulator",
	}},
	{pkg: "runtime/safety", only: map[string]string{
		"github.com/hiddeco/sshsig": "the maintained SSHSIG implementation: signatures are never hand-verified",
		"golang.org/x/crypto/ssh":   "OpenSSH keys, authorized_keys syntax and signature verification",
		module + "/proxmox":         "the mutations and root commands it classifies (proxmox.Mutation, proxmox.RootOp) and the reads its facts need",
	}, bad: map[string]string{
		"go.starlark.net/...":      "the gate is Go, where no playbook reaches it",
		module + "/proxmox/pvesim": "production code never depends on the simulator",
	}},
	{pkg: "internal/clip", only: map[string]string{}},
	{pkg: "internal/selfsigned", only: map[string]string{}},
	{pkg: "internal/spell", only: map[string]string{}},
	{pkg: "runtime/api", only: map[string]string{}},
	{pkg: "runtime/guestapi", only: map[string]string{}},
	{pkg: "runtime/notify", only: map[string]string{module + "/runtime/hub": "the one Ed25519 request signature, the hub's, reused for webhooks"}},
	{pkg: "runtime/schedule", only: map[string]string{"github.com/adhocore/gronx": "the cron parser"}},
	{pkg: "cmd/felhom-agent", bad: map[string]string{
		"testing":                               "the agent binary must not link the testing package",
		module + "/internal/logtest":            "test fixtures never reach the binary",
		module + "/runtime/notify/notifytest":   "test fixtures never reach the binary",
		module + "/runtime/internal/enginetest": "test fixtures never reach the binary",
	}},
}

func TestLayering(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			path := module + "/" + r.pkg
			out, err := exec.Command("go", "list", "-deps", path).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", path, err)
			}
			out2, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}`, path).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", path, err)
			}
			for _, dep := range strings.Fields(string(out2)) {
				if why, ok := r.direct[dep]; ok {
					t.Errorf("%s imports %s: %s", r.pkg, dep, why)
				}
				first, _, _ := strings.Cut(dep, "/")
				if _, ok := r.only[dep]; r.only != nil && !ok && strings.Contains(first, ".") {
					t.Errorf("%s imports %s; it may import only the standard library and %v", r.pkg, dep, r.only)
				}
			}
			for _, dep := range strings.Fields(string(out)) {
				if dep == path {
					continue
				}
				for bad, why := range r.bad {
					if matches(bad, dep) && !strings.HasPrefix(dep, path+"/") {
						t.Errorf("%s depends on %s: %s", r.pkg, dep, why)
					}
				}
			}
		})
	}
}

// matches reports whether pkg is pattern, or lies in its tree when
// pattern ends in "/...".
func matches(pattern, pkg string) bool {
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == tree || strings.HasPrefix(pkg, tree+"/")
	}
	return pkg == pattern
}

func TestMatches(t *testing.T) {
	tests := []struct {
		pattern, pkg string
		want         bool
	}{
		{"go.starlark.net/...", "go.starlark.net/starlark", true},
		{"go.starlark.net/...", "go.starlark.net", true},
		{"go.starlark.net/...", "go.starlark.netx/y", false},
		{"os/exec", "os/exec", true},
		{"os/exec", "os/execx", false},
	}
	for _, tt := range tests {
		if got := matches(tt.pattern, tt.pkg); got != tt.want {
			t.Errorf("matches(%q, %q) = %v; want %v", tt.pattern, tt.pkg, got, tt.want)
		}
	}
}
