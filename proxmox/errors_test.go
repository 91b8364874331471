package proxmox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

var permissionTests = []struct {
	msg  string
	want *proxmox.Permission // nil: not a permission failure
}{
	{"Permission check failed (/vms/100, VM.Config.Options)", &proxmox.Permission{Path: "/vms/100", Privileges: []string{"VM.Config.Options"}}},
	{"Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)", &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.Config.Disk", "VM.Config.CPU"}}},
	{"Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)", &proxmox.Permission{Path: "/sdn/zones/localnetwork/vmbr0", Privileges: []string{"SDN.Use"}}},
	{"Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)\n", &proxmox.Permission{Path: "/storage/usb-backup", Privileges: []string{"Datastore.AllocateSpace"}}},
	{"Permission check failed", &proxmox.Permission{}},
	{"vzdump: Permission check failed (/vms/101, VM.Backup) at /usr/share/perl5/PVE/API2/VZDump.pm", &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.Backup"}}},
	{"CT is locked (backup)", nil},
	{"", nil},
	{"permission check failed", nil},
}

func TestParsePermission(t *testing.T) {
	for _, tt := range permissionTests {
		got, ok := proxmox.ParsePermission(tt.msg)
		if ok != (tt.want != nil) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePermission(%q) = %+v, %v; want %+v", tt.msg, got, ok, tt.want)
		}
	}
}

func FuzzParsePermission(f *testing.F) {
	for _, tt := range permissionTests {
		f.Add(tt.msg)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		p, ok := proxmox.ParsePermission(msg)
		if ok != (p != nil) {
			t.Fatalf("ParsePermission(%q) = %v, %v: ok and result disagree", msg, p, ok)
		}
		if ok {
			_ = p.String()
			for _, priv := range p.Privileges {
				if priv == "" || strings.Contains(priv, "|") {
					t.Errorf("ParsePermission(%q): privilege %q", msg, priv)
				}
			}
		}
	})
}

// TestAPIErrors checks how error answers become *APIError and how flows'
// questions about them are answered, over HTTP, for hosts that send the
// message in the body (PVE 8.4+) and for those that send it only as the
// reason phrase.
func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		status   int
		message  string
		errs     map[string]string
		perm     *proxmox.Permission
		lock     string // "-" when not a lock
		notFound bool
		noConfig bool // IsNoGuestConfig
		stopped  bool // IsContainerNotRunning
		kind     string
	}{
		{
			name: "lock in body", handler: serveError(500, "CT is locked (backup)", nil),
			status: 500, message: "CT is locked (backup)", lock: "backup", kind: "lock",
		},
		{
			name: "lock in reason phrase only", handler: serveReason(500, "CT is locked (snapshot)", `{"data":null}`),
			status: 500, message: "CT is locked (snapshot)", lock: "snapshot", kind: "lock",
		},
		{
			name: "config lock file timeout", handler: serveReason(500, "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout", `{"data":null}`),
			status: 500, message: "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout", lock: "", kind: "lock",
		},
		{
			name: "cluster lock timeout", handler: serveError(500, "cfs-lock 'file-storage_cfg' error: got lock request timeout", nil),
			status: 500, message: "cfs-lock 'file-storage_cfg' error: got lock request timeout", lock: "", kind: "lock",
		},
		{
			name: "parameter errors, reason phrase", handler: serveReason(400, "Parameter verification failed.", string(mustRead(t, "responses/cluster_nextid.pve7x_3.json"))),
			status: 400, message: "Parameter verification failed.", errs: map[string]string{"vmid": "VM 200 already exists"}, lock: "-", kind: "api",
		},
		{
			name: "parameter errors, body", handler: serveError(400, "Parameter verification failed.", map[string]string{
				"foo": "property is not defined in schema and the schema does not allow additional properties",
			}),
			status: 400, message: "Parameter verification failed.", lock: "-", kind: "api",
			errs: map[string]string{"foo": "property is not defined in schema and the schema does not allow additional properties"},
		},
		{
			name: "permission alternatives", handler: serveError(403, "Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)", nil),
			status: 403, message: "Permission check failed (/vms/101, VM.Config.Disk|VM.Config.CPU)",
			perm: &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.Config.Disk", "VM.Config.CPU"}}, lock: "-", kind: "permission",
		},
		{
			name: "permission in reason phrase", handler: serveReason(403, "Permission check failed (/vms/101, VM.PowerMgmt)", `{"data":null}`),
			status: 403, message: "Permission check failed (/vms/101, VM.PowerMgmt)",
			perm: &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.PowerMgmt"}}, lock: "-", kind: "permission",
		},
		{
			name: "bare permission failure", handler: serveReason(403, "Permission check failed", `{"data":null}`),
			status: 403, message: "Permission check failed", perm: &proxmox.Permission{}, lock: "-", kind: "permission",
		},
		{
			name: "missing guest", handler: serveError(500, "Configuration file 'nodes/pve1/lxc/101.conf' does not exist", nil),
			status: 500, message: "Configuration file 'nodes/pve1/lxc/101.conf' does not exist", lock: "-", notFound: true, noConfig: true, kind: "not_found",
		},
		{
			// pve-container API2/LXC/Status.pm vm_shutdown: check_running
			// before load_config, so a vmid with no container gets it too.
			name: "container not running", handler: serveError(500, "CT 101 not running", nil),
			status: 500, message: "CT 101 not running", lock: "-", stopped: true, kind: "api",
		},
		{
			// vm_reboot of both kinds says "VM" (read after load_config).
			name: "reboot of a stopped guest", handler: serveError(500, "VM 101 not running", nil),
			status: 500, message: "VM 101 not running", lock: "-", kind: "api",
		},
		{
			name: "authentication", handler: serveReason(401, "authentication failure", ""),
			status: 401, message: "authentication failure", lock: "-", kind: "api",
		},
		{
			name: "no message at all", handler: serveFileStatus(t, 500, "responses/nodes_node_status_error.pve7x.json"),
			status: 500, message: "Internal Server Error", lock: "-", kind: "api",
		},
		{
			name: "not implemented", handler: serveError(501, "Method 'GET /nodes/node1/status' not implemented", nil),
			status: 501, message: "Method 'GET /nodes/node1/status' not implemented", lock: "-", kind: "api",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t).on("GET /nodes/node1/status", tt.handler)
			_, err := fakeClient(t, f).NodeStatus(t.Context())
			ae, ok := errors.AsType[*proxmox.APIError](err)
			if !ok {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if ae.Method != "GET" || ae.Path != "/nodes/node1/status" || ae.Status != tt.status || ae.Message != tt.message {
				t.Errorf("APIError = %+v; want GET /nodes/node1/status %d %q", ae, tt.status, tt.message)
			}
			if !reflect.DeepEqual(ae.Errors, tt.errs) {
				t.Errorf("Errors = %v; want %v", ae.Errors, tt.errs)
			}
			if !reflect.DeepEqual(ae.Permission, tt.perm) {
				t.Errorf("Permission = %+v; want %+v", ae.Permission, tt.perm)
			}
			if p, ok := proxmox.IsPermission(err); ok != (tt.perm != nil) || (ok && !reflect.DeepEqual(p, tt.perm)) {
				t.Errorf("IsPermission = %+v, %v; want %+v", p, ok, tt.perm)
			}
			lock, locked := proxmox.IsLocked(err)
			if locked != (tt.lock != "-") || (locked && lock != tt.lock) {
				t.Errorf("IsLocked = %q, %v; want %q", lock, locked, tt.lock)
			}
			if proxmox.IsNotFound(err) != tt.notFound {
				t.Errorf("IsNotFound = %v; want %v", !tt.notFound, tt.notFound)
			}
			if got := proxmox.IsNoGuestConfig(err); got != tt.noConfig {
				t.Errorf("IsNoGuestConfig = %v; want %v", got, tt.noConfig)
			}
			if got := proxmox.IsContainerNotRunning(err); got != tt.stopped {
				t.Errorf("IsContainerNotRunning = %v; want %v", got, tt.stopped)
			}
			if k := proxmox.Kind(err); k != tt.kind {
				t.Errorf("Kind = %q; want %q", k, tt.kind)
			}
			for k, v := range tt.errs {
				if !strings.Contains(err.Error(), k+": "+v) {
					t.Errorf("error text %q lacks %q", err, k+": "+v)
				}
			}
			// None of these is a transient failure: each is PVE's answer.
			if n := f.count("GET /nodes/node1/status"); n != 1 {
				t.Errorf("sent %d requests; an answer with a PVE message must not be retried", n)
			}
		})
	}
}

func serveFileStatus(t *testing.T, status int, name string) http.HandlerFunc {
	return serveJSON(status, string(mustRead(t, name)))
}

func mustRead(t *testing.T, name string) []byte { return readTestdata(t, name) }

// TestMutationAPIError checks that a refused mutation names its method
// and path, and is not ambiguous: PVE answered.
func TestMutationAPIError(t *testing.T) {
	f := newFake(t).on("POST /nodes/node1/lxc/101/status/start", serveError(500, "CT 101 already running", nil))
	_, err := fakeClient(t, f).Start(t.Context(), proxmox.LXC, 101)
	want := "POST /nodes/node1/lxc/101/status/start: 500 CT 101 already running"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v; want %q", err, want)
	}
	if proxmox.IsAmbiguous(err) {
		t.Error("an answered mutation is reported ambiguous")
	}
}

func TestTaskErrorClassification(t *testing.T) {
	u := proxmox.MustParseUPID(upidVzdump)
	perm := &proxmox.Permission{Path: "/storage/usb-backup", Privileges: []string{"Datastore.AllocateSpace"}}
	tests := []struct {
		err  error
		kind string
	}{
		{&proxmox.TaskError{UPID: u, ExitStatus: "Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)", Permission: perm}, "permission"},
		{&proxmox.TaskError{UPID: u, ExitStatus: "CT is locked (snapshot)"}, "lock"},
		{&proxmox.TaskError{UPID: u, ExitStatus: "snapshot 'pre-upgrade' does not exist"}, "not_found"},
		{&proxmox.TaskError{UPID: u, ExitStatus: "command 'tar' failed: exit code 2"}, "task"},
		{fmt.Errorf("POST /x: %w: EOF", proxmox.ErrAmbiguous), "ambiguous"},
		{errors.New("something else"), ""},
		{nil, ""},
		{fmt.Errorf("waiting: %w", context.Canceled), ""},
	}
	for _, tt := range tests {
		if k := proxmox.Kind(tt.err); k != tt.kind {
			t.Errorf("Kind(%v) = %q; want %q", tt.err, k, tt.kind)
		}
	}
	te := &proxmox.TaskError{UPID: u, ExitStatus: "command 'tar' failed: exit code 2"}
	if want := "task vzdump (101 " + upidVzdump + ") failed: command 'tar' failed: exit code 2"; te.Error() != want {
		t.Errorf("Error() = %q; want %q", te.Error(), want)
	}
	if p, ok := proxmox.IsPermission(fmt.Errorf("wrapped: %w", tests[0].err)); !ok || p != perm {
		t.Errorf("IsPermission through wrapping = %v, %v", p, ok)
	}
	if perm.String() != "Datastore.AllocateSpace on /storage/usb-backup" || (&proxmox.Permission{}).String() != "permission check failed" {
		t.Errorf("Permission.String() = %q / %q", perm.String(), (&proxmox.Permission{}).String())
	}
}

// TestIsUnknownNode: PVE's 500 for a node the host does not have is told
// apart, with the node, from other 500s and from a wrapped error's text.
func TestIsUnknownNode(t *testing.T) {
	tests := []struct {
		err  error
		node string // "" not one
	}{
		{&proxmox.APIError{Method: "GET", Path: "/nodes/pve9/version", Status: 500, Message: "no such cluster node 'pve9'"}, "pve9"},
		{fmt.Errorf("preflight: %w", &proxmox.APIError{Status: 500, Message: "no such cluster node 'pve9'\n"}), "pve9"},
		{&proxmox.APIError{Status: 500, Message: "Configuration file 'nodes/pve1/lxc/4242.conf' does not exist"}, ""},
		{&proxmox.APIError{Status: 400, Message: "no such cluster node 'pve9'"}, ""},
		{errors.New("no such cluster node 'pve9'"), ""},
		{nil, ""},
	}
	for _, tt := range tests {
		node, ok := proxmox.IsUnknownNode(tt.err)
		if ok != (tt.node != "") || node != tt.node {
			t.Errorf("IsUnknownNode(%v) = %q, %v; want %q", tt.err, node, ok, tt.node)
		}
	}
}

// TestUnknownConfiguredNode: a request PVE refuses because the Client's own
// node is not the host's says that proxmox.node is wrong, and stays
// PVE's *APIError (IsUnknownNode, IsNotFound); another node's refusal
// (a migration target, say) is PVE's words alone.
func TestUnknownConfiguredNode(t *testing.T) {
	sim := pvesim.New()
	rt, stop := pvesim.PipeTransport(sim)
	t.Cleanup(stop)
	token, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve.sim:8006", Node: "pve9", Token: token}, proxmox.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Guests(context.Background())
	const want = `proxmox.node "pve9" is not a node of this host (set proxmox.node to the host's node name): GET /nodes/pve9/lxc: 500 no such cluster node 'pve9'`
	if err == nil || err.Error() != want {
		t.Fatalf("Guests on an unknown node: %v; want %s", err, want)
	}
	if node, ok := proxmox.IsUnknownNode(err); !ok || node != "pve9" || !proxmox.IsNotFound(err) {
		t.Errorf("IsUnknownNode = %q, %v; IsNotFound = %v; want pve9, true, true", node, ok, proxmox.IsNotFound(err))
	}
	if ae, ok := errors.AsType[*proxmox.APIError](err); !ok || ae.Status != 500 {
		t.Errorf("the *APIError is lost: %#v", err)
	}
}
