package pvesim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

func TestAuthentication(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, auth, reason string
	}{
		{"missing", "", "No ticket"},
		{"wrong secret", "PVEAPIToken=" + DefaultTokenID + "=00000000-0000-0000-0000-000000000000", "invalid token value!"},
		{"unknown token", "PVEAPIToken=felhom-agent@pve!x2=" + DefaultTokenSecret, "no such token 'x2' for user 'felhom-agent@pve'"},
		{"unknown user", "PVEAPIToken=nobody@pve!agent=" + DefaultTokenSecret, "no such user ('nobody@pve')"},
		{"root's unknown token", "PVEAPIToken=root@pam!ci=" + DefaultTokenSecret, "no such token 'ci' for user 'root@pam'"},
		{"no secret", "PVEAPIToken=" + DefaultTokenID, "no tokenid specified"},
		{"not a token id", "PVEAPIToken=agent=" + DefaultTokenSecret,
			"'agent' is not a valid token ID - not able to split into user and token parts"},
		{"other scheme", "Bearer " + DefaultTokenSecret, "No ticket"},
	}
	for _, tc := range tests {
		r := h.doAuth("GET", "/version", nil, tc.auth)
		if r.status != http.StatusUnauthorized || r.reason != tc.reason || len(r.raw) != 0 {
			t.Errorf("%s: %d %q %q; want 401 %q with an empty body", tc.name, r.status, r.reason, r.raw, tc.reason)
		}
	}
	req, _ := http.NewRequest("GET", h.srv.Endpoint+"/api2/json/version", nil)
	req.AddCookie(&http.Cookie{Name: "PVEAuthCookie", Value: "PVE:root@pam:00000000::bogus"})
	if r := h.send(req); r.status != 401 || r.reason != "permission denied - invalid PVE ticket" || len(r.raw) != 0 {
		t.Errorf("bad ticket: %d %q %q; want 401 %q", r.status, r.reason, r.raw, "permission denied - invalid PVE ticket")
	}
	// The space form of the header works as well.
	if r := h.doAuth("GET", "/version", nil, "PVEAPIToken "+h.token); r.status != 200 {
		t.Errorf("PVEAPIToken with a space: %d", r.status)
	}
	// Authentication comes before routing, as in pveproxy.
	if r := h.doAuth("GET", "/version", nil, ""); r.status != 401 {
		t.Errorf("unauthenticated: %d", r.status)
	}
}

func TestPermissionAtRequest(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/101", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("POST", nodePath+"/lxc/101/status/stop", nil, 403, "Permission check failed (/vms/101, VM.PowerMgmt)")
	h.fails("POST", nodePath+"/lxc/101/snapshot", vals("snapname", "s"), 403, "Permission check failed (/vms/101, VM.Snapshot)")
	h.fails("POST", nodePath+"/lxc/101/snapshot/s/rollback", nil, 403, "Permission check failed (/vms/101, VM.Snapshot|VM.Snapshot.Rollback)")
	h.fails("DELETE", nodePath+"/lxc/101", nil, 403, "Permission check failed (/vms/101, VM.Allocate)")
	// The permission check comes before parameter validation.
	h.fails("POST", nodePath+"/lxc/101/status/stop", vals("bogus", "1"), 403, "Permission check failed (/vms/101, VM.PowerMgmt)")
	// Others still inherit from /.
	h.ok("GET", nodePath+"/lxc/102/config", nil)
	// Lists hide what the token may not audit.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/vms/102"); err != nil {
		t.Fatal(err)
	}
	for _, g := range h.ok("GET", nodePath+"/lxc", nil).list() {
		if g["vmid"] == float64(102) {
			t.Error("a NoAccess guest is listed")
		}
	}
	h.fails("GET", nodePath+"/lxc/102/config", nil, 403, "Permission check failed (/vms/102, VM.Audit)")
	if err := h.sim.RemoveTokenACL(DefaultTokenID, "/vms/102"); err != nil {
		t.Fatal(err)
	}
	h.ok("GET", nodePath+"/lxc/102/config", nil)

	// vzdump checks the storage privilege at the request.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/storage/usb-backup", "Datastore.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("POST", nodePath+"/vzdump", vals("vmid", "102", "storage", "usb-backup"), 403,
		"Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)")

	// "or" checks fail bare.
	if err := h.sim.SetTokenPrivileges(DefaultTokenID, "/", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	h.fails("GET", nodePath+"/disks/list", nil, 403, "Permission check failed")
	h.fails("GET", nodePath+"/status", nil, 403, "Permission check failed (/nodes/demo-felhom, Sys.Audit)")
}

func TestTokenShaping(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.AddToken("ops@pve!cli", "secret-1"); err != nil {
		t.Fatal(err)
	}
	ops := "PVEAPIToken=ops@pve!cli=secret-1"
	if r := h.doAuth("GET", "/version", nil, ops); r.status != 200 {
		t.Errorf("new token: %d", r.status)
	}
	// A new token has no privileges.
	if r := h.doAuth("GET", nodePath+"/lxc/101/config", nil, ops); r.status != 403 {
		t.Errorf("unprivileged token: %d", r.status)
	}
	if err := h.sim.SetTokenPrivileges("ops@pve!cli", "/", "Sys.Audit"); err != nil {
		t.Fatal(err)
	}
	// Another user's tasks need Sys.Audit on the node; own tasks do not.
	upid := h.upid("POST", nodePath+"/lxc/101/status/stop", nil)
	if r := h.doAuth("GET", nodePath+"/tasks/"+upid+"/status", nil, ops); r.status != 200 {
		t.Errorf("auditor reading another's task: %d", r.status)
	}
	if err := h.sim.SetTokenPrivileges("ops@pve!cli", "/", "VM.Audit"); err != nil {
		t.Fatal(err)
	}
	if r := h.doAuth("GET", nodePath+"/tasks/"+upid+"/status", nil, ops); r.status != 403 || r.reason != "Permission check failed (/nodes/demo-felhom, Sys.Audit)" {
		t.Errorf("non-auditor reading another's task: %d %q", r.status, r.reason)
	}
	if r := h.doAuth("GET", nodePath+"/tasks", nil, ops); r.status != 200 || len(r.list()) != 0 {
		t.Errorf("non-auditor task list: %d %s", r.status, r.raw)
	}

	for _, bad := range []struct{ id, path, priv string }{
		{"ops@pve!cli", "/", "VM.Fly"},
		{"ops@pve!cli", "vms", "VM.Audit"},
		{"nobody@pve!x", "/", "VM.Audit"},
	} {
		if err := h.sim.SetTokenPrivileges(bad.id, bad.path, bad.priv); err == nil {
			t.Errorf("SetTokenPrivileges%v = nil; want an error", bad)
		}
	}
	for _, bad := range [][2]string{{"no-realm", "s"}, {"a@pve!t", ""}} {
		if err := h.sim.AddToken(bad[0], bad[1]); err == nil {
			t.Errorf("AddToken%v = nil; want an error", bad)
		}
	}
	if err := h.sim.DenyAtTaskTime("/vms/1", "Nope"); err == nil {
		t.Error("DenyAtTaskTime with a bad privilege = nil")
	}
	if got := FelhomAgentPrivileges(); len(got) != 16 {
		t.Errorf("FelhomAgentPrivileges = %d privileges; want 16", len(got))
	}
}

func TestTaskTimeDenials(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		path, priv string
		method     string
		url        string
		params     []string
		exit       string
	}{
		{"/vms/101", "VM.PowerMgmt", "POST", nodePath + "/lxc/101/status/shutdown", nil, "Permission check failed (/vms/101, VM.PowerMgmt)"},
		{"/vms", "VM.Snapshot", "POST", nodePath + "/lxc/102/snapshot", []string{"snapname", "x1"}, "Permission check failed (/vms/102, VM.Snapshot)"},
		{"/storage/usb-backup", "Datastore.AllocateSpace", "POST", nodePath + "/vzdump", []string{"vmid", "102", "storage", "usb-backup"},
			"Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"},
		{"/", "VM.Allocate", "POST", nodePath + "/lxc", []string{"vmid", "400", "ostemplate", DefaultTemplate, "storage", "local-lvm"},
			"Permission check failed (/vms/400, VM.Allocate)"},
	}
	for _, tc := range tests {
		h.sim.ClearTaskTimeDenials()
		if err := h.sim.DenyAtTaskTime(tc.path, tc.priv); err != nil {
			t.Fatal(err)
		}
		upid := h.upid(tc.method, tc.url, vals(tc.params...))
		h.wantExit(upid, tc.exit)
		if p, ok := proxmoxPermission(tc.exit); !ok || !strings.HasPrefix(p, "/") {
			t.Errorf("%q does not parse as a permission failure", tc.exit)
		}
	}
	if g := h.guest(102); g.Lock != "" || len(g.Snapshots) != 0 {
		t.Errorf("denied snapshot left %+v", g)
	}
	if _, ok := h.sim.Guest(400); ok {
		t.Error("denied create left a guest")
	}
}

// proxmoxPermission parses a permission failure with the client's parser,
// so the simulator's texts stay what the client understands.
func proxmoxPermission(msg string) (string, bool) {
	p, ok := proxmox.ParsePermission(msg)
	if !ok {
		return "", false
	}
	return p.Path, true
}

// pveproxy answers a failed authentication only after PVEAuthFailureDelay;
// a request that authenticates is not delayed. This is the one test that
// pays for the delay: every other one runs with AuthFailureDelay zero.
func TestAuthFailureDelay(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, func(s *Sim) { s.AuthFailureDelay = PVEAuthFailureDelay })
	start := time.Now()
	h.ok("GET", "/version", nil)
	if d := time.Since(start); d >= PVEAuthFailureDelay {
		t.Errorf("an authenticated request took %v", d)
	}
	start = time.Now()
	r := h.doAuth("GET", "/version", nil, "PVEAPIToken="+DefaultTokenID+"=wrong")
	if d := time.Since(start); r.status != http.StatusUnauthorized || d < PVEAuthFailureDelay {
		t.Errorf("a wrong secret: %d after %v; want 401 after at least %v", r.status, d, PVEAuthFailureDelay)
	}
}
