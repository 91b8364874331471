package pvetest

import (
	"bytes"
	"context"
	_ "embed" // the proxmoxer flow script
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

//go:embed testdata/proxmoxer_flow.py
var proxmoxerFlow []byte

// PythonEnv names an environment variable that may hold the Python
// interpreter Proxmoxer uses; it is tried before python3 on PATH and
// /usr/bin/python3 (where Debian's python3-proxmoxer installs).
const PythonEnv = "FELHOM_PYTHON"

// Proxmoxer runs the ThirdParty flow with the Python library proxmoxer
// (its https backend, token authentication): the cluster status, the
// backup storage's config and status; snapshot, read the snapshot's
// config, roll back and delete a snapshot of w.Stopped (per guest kind);
// a config PUT answering null, a vzdump
// whose archive appears in the storage content with PVE's name, a restore
// into w.Scratch, and a refusal whose HTTP reason phrase proxmoxer shows
// as the error; the node's vzsnapshot tasks and one's whole log
// (limit=0); a wrong secret refused with 401 and PVE's reason. It skips
// when no Python with proxmoxer is found, or when
// e.CAFile is empty.
func Proxmoxer(t *testing.T, e Endpoint, w World) {
	t.Helper()
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
	if e.CAFile == "" {
		t.Skip("Endpoint.CAFile is empty: proxmoxer (requests) can only trust the host through a CA file")
	}
	py := findProxmoxer()
	if py == "" {
		t.Skipf("no Python with proxmoxer (tried $%s, python3, /usr/bin/python3): apt install python3-proxmoxer or pip install proxmoxer", PythonEnv)
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("Endpoint.URL %q is not https://HOST:PORT", e.URL)
	}
	port := 8006
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			t.Fatalf("Endpoint.URL %q: port: %v", e.URL, err)
		}
	}
	script := filepath.Join(t.TempDir(), "proxmoxer_flow.py")
	if err := os.WriteFile(script, proxmoxerFlow, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{
		"host": u.Hostname(), "port": port, "cafile": e.CAFile, "node": e.Node, "token": e.Token,
		"running": w.Running, "stopped": w.Stopped, "scratch": w.Scratch,
		"backup_storage": w.BackupStorage, "guest_storage": w.GuestStorage,
		"snapshot": snapshotName() + "py",
		"guests":   thirdPartyGuests(w),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The configuration, token included, goes through stdin: a command
	// line is visible to every user of the machine.
	cmd := exec.CommandContext(ctx, py, script)
	cmd.Stdin = bytes.NewReader(cfg)
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", py, filepath.Base(script), out)
	if err != nil {
		t.Fatalf("proxmoxer flow: %v", err)
	}
}

// findProxmoxer returns the first Python interpreter that can import the
// https backend of proxmoxer (which needs requests), or "".
func findProxmoxer() string {
	candidates := []string{os.Getenv(PythonEnv), "python3", "/usr/bin/python3"}
	for _, py := range candidates {
		if py == "" {
			continue
		}
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import proxmoxer.backends.https").Run() == nil {
			return path
		}
	}
	return ""
}
