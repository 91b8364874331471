package plan

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
)

// methodCounter counts the requests a host receives, by method.
type methodCounter struct {
	next http.Handler
	mu   sync.Mutex
	by   map[string]int
}

func (m *methodCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.by[r.Method]++
	m.mu.Unlock()
	m.next.ServeHTTP(w, r)
}

// hostClient is a client of a simulated "real" host that counts what it
// receives; readOnly makes it the plan's client.
func hostClient(t *testing.T, host *pvesim.Sim, readOnly bool) (*proxmox.Client, *methodCounter) {
	t.Helper()
	mc := &methodCounter{next: host, by: map[string]int{}}
	rt, stop := pvesim.PipeTransport(mc)
	t.Cleanup(stop)
	tok, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	opts := []proxmox.Option{proxmox.WithTransport(rt)}
	if readOnly {
		opts = append(opts, proxmox.WithReadOnly())
	}
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://host.test:8006", Node: pvesim.DefaultNode, Token: tok}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, mc
}

// planNow is the mirror's clock in the plan tests: the night after the
// default world's archives.
func planNow() time.Time { return time.Date(2026, 11, 20, 3, 0, 0, 0, time.Local) }

func loadShipped(t *testing.T, file string, params map[string]string) (*engine.Playbook, *engine.Params) {
	t.Helper()
	pb, err := engine.LoadFile("../../playbooks/"+file, "../../playbooks")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pb.Decl.Coerce(params, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pb, p
}

// TestMirrorReadsOnly: mirroring a host sends it GETs and nothing else —
// even through a client that would send anything — and the mirror holds
// the host's guests, snapshots, archives and storages.
func TestMirrorReadsOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := &pvesim.Sim{}
		if err := host.AddSnapshot(pvesim.CustomerWeb, "before_upgrade", "pre"); err != nil {
			t.Fatal(err)
		}
		c, mc := hostClient(t, host, false)
		sim, assumed, err := Mirror(context.Background(), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(mc.by) != 1 || mc.by["GET"] == 0 {
			t.Errorf("the host received %v; want GETs only", mc.by)
		}
		hg, mg := host.Guests(), sim.Guests()
		if len(hg) != len(mg) {
			t.Fatalf("mirror has %d guests; the host %d", len(mg), len(hg))
		}
		for i := range hg {
			h, m := hg[i], mg[i]
			if h.VMID != m.VMID || h.Type != m.Type || h.Name != m.Name || h.Status != m.Status || h.Template != m.Template || len(h.Snapshots) != len(m.Snapshots) {
				t.Errorf("guest %d: mirror %+v; host %+v", h.VMID, m, h)
			}
			for k, v := range h.Config {
				if k != "digest" && m.Config[k] != v {
					t.Errorf("guest %d config %s = %q in the mirror; %q on the host", h.VMID, k, m.Config[k], v)
				}
			}
		}
		for _, st := range host.Storages() {
			hv, mv := host.Volumes(st.Storage), sim.Volumes(st.Storage)
			var hb, mb []string
			for _, v := range hv {
				if v.Content == "backup" {
					hb = append(hb, v.VolID)
				}
			}
			for _, v := range mv {
				if v.Content == "backup" {
					mb = append(mb, v.VolID)
				}
			}
			if !slices.Equal(hb, mb) {
				t.Errorf("backups on %s: mirror %v; host %v", st.Storage, mb, hb)
			}
		}
		hs, ms := host.Storages(), sim.Storages()
		for i := range hs {
			if hs[i].Storage != ms[i].Storage || hs[i].Total != ms[i].Total || hs[i].Used != ms[i].Used || hs[i].PruneBackups != ms[i].PruneBackups {
				t.Errorf("storage %s: mirror %+v; host %+v", hs[i].Storage, ms[i], hs[i])
			}
		}
		if !slices.ContainsFunc(assumed, func(s string) bool { return strings.Contains(s, "privilege") }) {
			t.Errorf("assumptions %q; want the token's privileges named", assumed)
		}
	})
}

// TestPlanBackup plans the shipped backup flow against a host through the
// read-only client: the plan lists the vzdump and the retention's
// deletions, predicts success and the new archive, and the host received
// only GETs — its archives and tasks are as they were.
func TestPlanBackup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := &pvesim.Sim{}
		c, mc := hostClient(t, host, true)
		pb, params := loadShipped(t, "backup.star", map[string]string{"vmids": "101", "keep_last": "1"})
		before := host.Volumes("usb-backup")
		r, err := Run(context.Background(), c, pb, params, Config{Now: planNow})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "succeeded" {
			t.Fatalf("plan status %s: %s", r.Status, r.Error)
		}
		var whats []string
		for _, s := range r.Steps {
			whats = append(whats, s.What+" ["+s.Outcome+"]")
		}
		if len(r.Steps) != 2 || r.Steps[0].What != "vzdump 101 → usb-backup (snapshot, zstd)" || r.Steps[0].Outcome != "OK" ||
			r.Steps[1].What != "delete usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst" {
			t.Errorf("steps:\n%s\nwant the vzdump of 101, then the old archive deleted", strings.Join(whats, "\n"))
		}
		changes := strings.Join(r.Changes, "\n")
		if !strings.Contains(changes, "+ usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_00.tar.zst (934 MiB)") ||
			!strings.Contains(changes, "- usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst") {
			t.Errorf("changes:\n%s\nwant the new archive and the deleted one", changes)
		}
		// Keeping both: the free space goes down by the new archive.
		pb2, params2 := loadShipped(t, "backup.star", map[string]string{"vmids": "102", "keep_last": "5"})
		r2, err := Run(context.Background(), c, pb2, params2, Config{Now: planNow})
		if err != nil {
			t.Fatal(err)
		}
		if ch := strings.Join(r2.Changes, "\n"); len(r2.Steps) != 1 || !strings.Contains(ch, "usb-backup: 1.7 TiB free → 1.7 TiB (−") {
			t.Errorf("plan of 102 keeping 5: steps %+v, changes:\n%s\nwant one vzdump and less free space", r2.Steps, ch)
		}
		if len(mc.by) != 1 || mc.by["GET"] == 0 {
			t.Errorf("the host received %v; want GETs only", mc.by)
		}
		if after := host.Volumes("usb-backup"); len(after) != len(before) || len(host.Tasks()) != 0 {
			t.Errorf("the host changed: %d archives (was %d), %d tasks", len(after), len(before), len(host.Tasks()))
		}
	})
}

// TestPlanSaysWhatFails: a playbook that fails in the mirror is a plan
// that says so, with the step the mirror refused.
func TestPlanSaysWhatFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := &pvesim.Sim{}
		if err := host.SetGuestLock(pvesim.CustomerWeb, "backup"); err != nil {
			t.Fatal(err)
		}
		c, _ := hostClient(t, host, true)
		pb, params := loadShipped(t, "backup.star", map[string]string{"vmids": "101"})
		r, err := Run(context.Background(), c, pb, params, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != "failed" || len(r.Steps) == 0 || !strings.Contains(r.Steps[0].Outcome+r.Error, "locked") {
			t.Errorf("plan of a backup of a locked guest: %s %q, steps %+v; want it failed on the lock", r.Status, r.Error, r.Steps)
		}
	})
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		method, path, params, want string
	}{
		{"POST", "/nodes/n/vzdump", "vmid=101&storage=usb-backup&mode=snapshot&compress=zstd", "vzdump 101 → usb-backup (snapshot, zstd)"},
		{"POST", "/nodes/n/vzdump", "all=1&storage=nas", "vzdump every guest → nas (snapshot)"},
		{"DELETE", "/nodes/n/storage/usb-backup/content/usb-backup:backup/vzdump-lxc-101-2026_11_01-03_00_02.tar.zst", "", "delete usb-backup:backup/vzdump-lxc-101-2026_11_01-03_00_02.tar.zst"},
		{"POST", "/nodes/n/lxc/101/snapshot", "snapname=before", `snapshot 101 "before"`},
		{"POST", "/nodes/n/qemu/200/snapshot/before/rollback", "", `rollback 200 to "before"`},
		{"DELETE", "/nodes/n/lxc/101/snapshot/before", "", `delete snapshot "before" of 101`},
		{"POST", "/nodes/n/lxc/101/status/start", "", "start 101"},
		{"PUT", "/nodes/n/lxc/101/config", "cores=2&delete=mp0&password=hunter2", "set config of 101: cores=2, delete mp0, password=<redacted>"},
		{"POST", "/nodes/n/lxc", "vmid=105&ostemplate=usb-backup:backup/x.tar.zst&restore=1&storage=local-lvm", "restore container 105 from usb-backup:backup/x.tar.zst → local-lvm"},
		{"DELETE", "/nodes/n/qemu/201", "purge=1", "destroy 201 (purge)"},
		{"POST", "/nodes/n/execute", "commands=x&secret=s", "POST /nodes/n/execute commands=x secret=<redacted>"},
	}
	for _, tc := range tests {
		q, _ := urlValues(tc.params)
		if got := describe(mutation{method: tc.method, path: tc.path, params: q}); got != tc.want {
			t.Errorf("describe(%s %s %s) = %q; want %q", tc.method, tc.path, tc.params, got, tc.want)
		}
	}
}

func urlValues(s string) (url.Values, error) { return url.ParseQuery(s) }

type fixedDesired struct{}

func (fixedDesired) DesiredState() (int64, json.RawMessage) {
	return 7, json.RawMessage(`{"schema": 1, "guests": [{"vmid": 130, "hostname": "shop"}]}`)
}

// TestPlanReadsTheDesiredState: a plan made for a serving agent reads the
// agent's desired state through hub.desired_state(), as its runs do; a
// plan without one fails as a run without a hub does.
func TestPlanReadsTheDesiredState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		src := "def run(ctx):\n    d = hub.desired_state()\n    return {\"generation\": d.generation, \"vmid\": d.state[\"guests\"][0][\"vmid\"]}\n\nplaybook(name = \"peek\", run = run)\n"
		if err := os.WriteFile(filepath.Join(dir, "peek.star"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		pb, err := engine.LoadFile(filepath.Join(dir, "peek.star"), dir)
		if err != nil {
			t.Fatal(err)
		}
		params, err := pb.Decl.Coerce(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := hostClient(t, &pvesim.Sim{}, true)
		r, err := Run(context.Background(), c, pb, params, Config{Now: planNow, Desired: fixedDesired{}})
		if err != nil || r.Status != "succeeded" || string(r.Result) != `{"generation":7,"vmid":130}` {
			t.Fatalf("plan with a desired state = %+v, %v", r, err)
		}
		r, err = Run(context.Background(), c, pb, params, Config{Now: planNow})
		if err != nil || r.Status != "failed" || !strings.Contains(r.Error, "no hub is configured") {
			t.Fatalf("plan without one = %+v, %v; want failed: no hub", r, err)
		}
	})
}

// TestPlanMarksGatedSteps: the plan's calls pass the safety gate a run
// would meet. Decommissioning 102 (its final backup, stop, destroy) marks
// the destroy as needing an operator's signature, and only it, and says so
// in the text; with 102 a scratch guest nothing is marked.
func TestPlanMarksGatedSteps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy safety.Policy
		gated  bool
	}{
		{"a customer guest", safety.Policy{MinBackups: 1}, true},
		{"a scratch guest", safety.Policy{MinBackups: 1, Scratch: []int{102}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, _ := hostClient(t, &pvesim.Sim{}, true)
				pb, params := loadShipped(t, "decommission.star", map[string]string{"vmid": "102"})
				r, err := Run(context.Background(), c, pb, params, Config{Policy: tc.policy, Now: planNow})
				if err != nil {
					t.Fatal(err)
				}
				if r.Status != "succeeded" || len(r.Steps) < 2 {
					t.Fatalf("plan = %s %q, steps %+v; want it to succeed in the mirror", r.Status, r.Error, r.Steps)
				}
				var gated []string
				for _, s := range r.Steps {
					if s.Gated != "" {
						gated = append(gated, s.Method+" "+s.Path+": "+s.Gated)
					}
				}
				var text strings.Builder
				if err := r.WriteText(&text); err != nil {
					t.Fatal(err)
				}
				switch {
				case tc.gated && (len(gated) != 1 || !strings.HasPrefix(gated[0], "DELETE /nodes/"+pvesim.DefaultNode+"/lxc/102")):
					t.Errorf("gated steps %q; want the destroy of 102 alone", gated)
				case tc.gated && !strings.Contains(text.String(), "[needs an operator's signature: ") || tc.gated && !strings.Contains(text.String(), "1 step(s) need an operator's signature"):
					t.Errorf("the plan's text does not say the destroy needs a signature:\n%s", text.String())
				case !tc.gated && (len(gated) != 0 || strings.Contains(text.String(), "signature")):
					t.Errorf("gated steps %q on a scratch guest; want none\n%s", gated, text.String())
				}
			})
		})
	}
}
