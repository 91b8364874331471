package pvetest

import (
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
// (limit=0); the new archive's notes put, read whole from its volume info
// and as a first line in the listing, and put back (and the same on a PBS
// storage's first backup, whose info has a pbs:// path); a wrong secret
// refused with 401 and PVE's reason. In a cluster (w.Cluster) also: the
// cluster status, resources of type vm, nextid (and a taken id refused),
// another node's guest reached only through its node; a backup to a
// storage without shared=1 on the other node growing that node's usage
// and not this one's (archive deleted after); an HA-managed
// guest's hastop and hastart, its state following later; with
// Cluster.OperatorToken, w.Running migrated in restart mode to
// Cluster.Other and back (held running with World.HoldTasks to read its
// live log by start and limit and see its lock) and Cluster.MigrateVM
// online; with Cluster.NodeDown, the other node's 595 "No route to host"
// as proxmoxer raises it, and no quorum once every other node is down.
// It skips when no Python with proxmoxer is found, or when e.CAFile is
// empty.
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
		"hooks":    flowHooks(w),
		"cluster":  thirdPartyCluster(w),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The configuration, tokens included, goes through stdin: a command
	// line is visible to every user of the machine.
	cmd := exec.CommandContext(ctx, py, script)
	out, err := runFlow(t, ctx, cmd, cfg, w)
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

// thirdPartyCluster is the cluster part of a third-party flow's
// configuration: nil outside a cluster.
func thirdPartyCluster(w World) map[string]any {
	c := w.Cluster
	if c == nil {
		return nil
	}
	settle := c.Settle
	if settle <= 0 {
		settle = 2 * time.Minute
	}
	return map[string]any{
		"other": c.Other, "other_guest": c.OtherGuest, "ha_guest": c.HAGuest,
		"operator_token": c.OperatorToken, "migrate_vm": c.MigrateVM, "settle": settle.Seconds(),
	}
}
