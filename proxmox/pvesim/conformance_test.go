package pvesim_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvetest"
)

// The simulator must pass the same conformance suites a real PVE 8 host
// passes: the proxmox.Client's (through every method and failure path),
// a raw HTTP client's and proxmoxer's.

// conformanceStopped is the stopped guest the suites may change; the
// default world has none (its only stopped guest is a template).
const conformanceStopped = 120

// conformanceScratch is a free vmid the suites restore into.
const conformanceScratch = 130

// conformanceRawLXC is a stopped container with raw lxc.* config keys.
const conformanceRawLXC = 127

// conformanceZFS is a stopped container whose root disk is on ZFS.
const conformanceZFS = 128

// simWorld serves a default-world simulator over TLS with short tasks,
// failing t on any request the simulator does not model, and returns it
// with a client pinned to its certificate and the World describing it.
func simWorld(t *testing.T, legacy bool) (*pvesim.Sim, *pvesim.Server, *proxmox.Client, pvetest.World) {
	t.Helper()
	return simWorldOf(t, legacy, 1)
}

// Guests the cluster world's suite adds on pve1 (120 and 130 are taken
// there: 120 is on pve3, and the cluster tests create 130).
const (
	clusterStopped = 125
	clusterMigrate = 126
	clusterScratch = 131
)

// simWorldOf is simWorld for a world of nodes nodes: with 2 or more, the
// cluster world served as pve1, with World.Cluster set.
func simWorldOf(t *testing.T, legacy bool, nodes int) (*pvesim.Sim, *pvesim.Server, *proxmox.Client, pvetest.World) {
	t.Helper()
	stopped, scratch := conformanceStopped, conformanceScratch
	if nodes > 1 {
		stopped, scratch = clusterStopped, clusterScratch
	}
	clock := &holdClock{}
	sim := pvesim.New()
	sim.Nodes = nodes
	sim.TaskDuration = 20 * time.Millisecond
	sim.LegacyErrors = legacy
	sim.Now = clock.Now
	sim.OnUnmodeled = func(r *http.Request) { t.Errorf("unmodelled request %s %s", r.Method, r.URL) }
	// The nodes' directories: the bind-mount case's paths exist only
	// where it made them; every other path exists.
	var hostDirs sync.Map
	sim.HostDir = func(node, path string) bool {
		if !strings.HasPrefix(path, "/run/pvetest-bind-") {
			return true
		}
		_, ok := hostDirs.Load(node + " " + path)
		return ok
	}
	if err := sim.AddGuest(pvesim.GuestSpec{
		VMID: stopped, Hostname: "conformance", Cores: 1, MemoryMB: 512,
		RootFS: "local-lvm:vm-" + strconv.Itoa(stopped) + "-disk-0,size=4G", Description: "conformance guest",
	}); err != nil {
		t.Fatal(err)
	}
	// A ZFS pool storage with a container's subvolume on it, for the
	// checks of volume info and content shapes per storage type.
	if err := sim.AddStorage(pvesim.StorageSpec{Name: "local-zfs", Type: "zfspool", Content: []string{"images", "rootdir"}}); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddGuest(pvesim.GuestSpec{
		VMID: conformanceZFS, Hostname: "onzfs", RootFS: "local-zfs:subvol-" + strconv.Itoa(conformanceZFS) + "-disk-0,size=2G",
	}); err != nil {
		t.Fatal(err)
	}
	// A container with raw lxc.* keys, which clients read as the config's
	// "lxc" array of [key, value] pairs.
	if err := sim.AddGuest(pvesim.GuestSpec{
		VMID: conformanceRawLXC, Hostname: "rawlxc", RootFS: "local-lvm:vm-" + strconv.Itoa(conformanceRawLXC) + "-disk-0,size=2G",
		LXC: [][2]string{{"lxc.cgroup2.devices.allow", "c 10:200 rwm"}, {"lxc.mount.entry", "/dev/net dev/net none bind,create=dir"}},
	}); err != nil {
		t.Fatal(err)
	}
	srv, c := pvetest.Serve(t, sim)
	ep := endpoint(t, srv)
	w := pvetest.World{
		Endpoint:      &ep,
		Running:       pvesim.CustomerWeb,
		Stopped:       stopped,
		StoppedVM:     pvesim.CustomerCI,
		Scratch:       scratch,
		RawLXCGuest:   conformanceRawLXC,
		BackupStorage: "usb-backup",
		GuestStorage:  "local-lvm",
		Wait:          proxmox.WaitOptions{MinInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		CaseTimeout:   30 * time.Second,
		LockGuest: func(t testing.TB, vmid int, lock string) {
			t.Helper()
			if err := sim.SetGuestLock(vmid, lock); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := sim.SetGuestLock(vmid, ""); err != nil {
					t.Error(err)
				}
			})
		},
		DenyAtRequest: func(t testing.TB, aclPath, privilege string) {
			t.Helper()
			privs := slices.DeleteFunc(pvesim.FelhomAgentPrivileges(), func(p string) bool { return p == privilege })
			if err := sim.SetTokenPrivileges(pvesim.DefaultTokenID, aclPath, privs...); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := sim.RemoveTokenACL(pvesim.DefaultTokenID, aclPath); err != nil {
					t.Error(err)
				}
			})
		},
		DenyAtTaskTime: func(t testing.TB, aclPath, privilege string) {
			t.Helper()
			if err := sim.DenyAtTaskTime(aclPath, privilege); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sim.ClearTaskTimeDenials)
		},
		ProxyError: func(t testing.TB, method, path string) {
			t.Helper()
			if err := sim.AddFault(pvesim.Fault{Kind: pvesim.FaultStatus, Status: 595, Method: method, Path: path, Count: 1}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sim.ClearFaults)
		},
		HoldTasks: func(t testing.TB) {
			clock.hold()
			t.Cleanup(clock.release)
		},
	}
	if nodes > 1 {
		if err := sim.AddGuest(pvesim.GuestSpec{VMID: clusterMigrate, Hostname: "migrant", Description: "moves and comes back"}); err != nil {
			t.Fatal(err)
		}
		optok, err := proxmox.ParseToken(pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret)
		if err != nil {
			t.Fatal(err)
		}
		op, err := proxmox.New(proxmox.Config{Endpoint: srv.Endpoint, Node: srv.Node, Token: optok, Fingerprint: srv.Fingerprint})
		if err != nil {
			t.Fatal(err)
		}
		w.Cluster = &pvetest.Cluster{
			Other: pvesim.ClusterNodeName(2), OtherGuest: pvesim.ClusterShop, Operator: op,
			OperatorToken: pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret,
			Migrate:       clusterMigrate, MigrateVM: pvesim.CustomerApp, HAGuest: pvesim.ClusterMail, Settle: 10 * time.Second,
			BindMount: func(t testing.TB, vmid int, key, value string) {
				t.Helper()
				r, err := sim.NodeRootRunner(sim.GuestNode(vmid))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Run(context.Background(), []string{"pct", "set", strconv.Itoa(vmid), "--" + key, value}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := sim.SetGuestOption(vmid, key, ""); err != nil {
						t.Error(err)
					}
				})
			},
			HostDir: func(t testing.TB, node, path string) {
				hostDirs.Store(node+" "+path, true)
				t.Cleanup(func() { hostDirs.Delete(node + " " + path) })
			},
			NodeDown: func(t testing.TB, node string) {
				t.Helper()
				if err := sim.SetNodeOnline(node, false); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := sim.SetNodeOnline(node, true); err != nil {
						t.Error(err)
					}
				})
			},
		}
	}
	return sim, srv, c, w
}

// holdClock is the simulator's Now: real time, or a frozen instant while
// held, so that running tasks (which stop when Now passes their end) keep
// running.
type holdClock struct{ frozen atomic.Pointer[time.Time] }

func (c *holdClock) Now() time.Time {
	if t := c.frozen.Load(); t != nil {
		return *t
	}
	return time.Now()
}

func (c *holdClock) hold() {
	now := time.Now()
	c.frozen.Store(&now)
}

func (c *holdClock) release() { c.frozen.Store(nil) }

// TestConformance runs the client's conformance suite against the
// simulator (PVE 8.4+ error bodies, with "message").
func TestConformance(t *testing.T) {
	sim, _, c, w := simWorld(t, false)
	checkUndone(t, sim, w) // registered first, so it runs after the suite's cleanup
	pvetest.Conformance(t, c, w)
}

// TestClusterConformance runs the suite against the cluster world as
// pve1: every case, and the cluster cases besides.
func TestClusterConformance(t *testing.T) {
	sim, _, c, w := simWorldOf(t, false, 3)
	checkUndone(t, sim, w)
	pvetest.Conformance(t, c, w)
	if n := sim.GuestNode(clusterMigrate); n != "pve1" {
		t.Errorf("guest %d on %s after the suite; want back on pve1", clusterMigrate, n)
	}
}

// TestConformanceLegacyErrors runs it against error bodies of PVE before
// 8.4, whose message travels only in the HTTP reason phrase: the client
// must produce the same typed errors from it.
func TestConformanceLegacyErrors(t *testing.T) {
	_, _, c, w := simWorld(t, true)
	pvetest.Conformance(t, c, w)
}

// checkUndone asserts, at the end of t (after the suite's own cleanup
// when registered before the suite runs), that the world is
// as it was: the suites promise to undo what they change.
func checkUndone(t *testing.T, sim *pvesim.Sim, w pvetest.World) {
	t.Cleanup(func() {
		if g, ok := sim.Guest(w.Scratch); ok {
			t.Errorf("guest %d still exists after the suite: %+v", w.Scratch, g)
		}
		if g, _ := sim.Guest(w.Running); g.Status != "running" || g.Lock != "" {
			t.Errorf("guest %d after the suite: %s, lock %q; want running, unlocked", w.Running, g.Status, g.Lock)
		}
		g, _ := sim.Guest(w.Stopped)
		if g.Status != "stopped" || g.Lock != "" || len(g.Snapshots) != 0 || strings.TrimSuffix(g.Description, "\n") != "conformance guest" {
			t.Errorf("guest %d after the suite: %s, lock %q, snapshots %v, description %q; want it as it was",
				w.Stopped, g.Status, g.Lock, g.Snapshots, g.Description)
		}
		for _, v := range sim.Volumes(w.BackupStorage) {
			if v.VMID == w.Stopped {
				t.Errorf("archive %s left on %s", v.VolID, w.BackupStorage)
			}
		}
	})
}

// endpoint is how a client other than proxmox.Client reaches srv: an HTTP
// client and a CA file trusting exactly its certificate.
func endpoint(t *testing.T, srv *pvesim.Server) pvetest.Endpoint {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "pve-root-ca.pem")
	if err := os.WriteFile(ca, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return pvetest.Endpoint{URL: srv.Endpoint, Node: srv.Node, Token: srv.Token, HTTPClient: srv.Client(), CAFile: ca}
}

// TestThirdPartyClient drives the simulator with raw form-encoded HTTP,
// as generic clients do, and checks the world is as it was afterwards.
func TestThirdPartyClient(t *testing.T) {
	sim, srv, _, w := simWorld(t, false)
	checkUndone(t, sim, w)
	pvetest.ThirdParty(t, endpoint(t, srv), w)
}

// TestProxmoxer drives the simulator with the Python library proxmoxer,
// where it is installed.
func TestProxmoxer(t *testing.T) {
	sim, srv, _, w := simWorld(t, false)
	checkUndone(t, sim, w)
	pvetest.Proxmoxer(t, endpoint(t, srv), w)
}

// TestProxmoxerCluster drives the cluster world as pve1 with proxmoxer:
// the flow's cluster steps besides (migrations, HA, a node down).
func TestProxmoxerCluster(t *testing.T) {
	sim, srv, _, w := simWorldOf(t, false, 3)
	checkUndone(t, sim, w)
	pvetest.Proxmoxer(t, endpoint(t, srv), w)
	for _, vmid := range []int{w.Running, w.Cluster.MigrateVM} {
		if n := sim.GuestNode(vmid); n != srv.Node {
			t.Errorf("guest %d on %s after the flow; want back on %s", vmid, n, srv.Node)
		}
	}
}

// TestAnsible drives the simulator with Ansible's community.general
// Proxmox modules, where Debian's ansible is installed: the cluster world
// as pve1, once (ansible-playbook is slow), its playbook's single-host
// steps and its cluster steps.
func TestAnsible(t *testing.T) {
	sim, srv, _, w := simWorldOf(t, false, 3)
	checkUndone(t, sim, w)
	pvetest.Ansible(t, endpoint(t, srv), w)
}
