package pvetest

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/ansible/*.yml
var ansibleFlow embed.FS

// ThirdPartyGuest is one guest the third-party flows (Ansible, proxmoxer)
// work on, by kind: "lxc" now; a "qemu" entry is how VMs join them (the
// flows pick the API path and module per kind).
type ThirdPartyGuest struct {
	Kind    string `json:"kind"`    // lxc or qemu
	Stopped int    `json:"stopped"` // a stopped guest it snapshots, starts and stops again
	Running int    `json:"running"` // a running guest that "started" leaves alone
}

// thirdPartyGuests are the guests the third-party flows work through: the
// World's stopped container (with its running one) and, when the World
// names one, its stopped VM (the flows run the kind-neutral steps on it).
func thirdPartyGuests(w World) []ThirdPartyGuest {
	gs := []ThirdPartyGuest{{Kind: "lxc", Stopped: w.Stopped, Running: w.Running}}
	if w.StoppedVM != 0 {
		gs = append(gs, ThirdPartyGuest{Kind: "qemu", Stopped: w.StoppedVM})
	}
	return gs
}

// Ansible runs Ansible's community.general Proxmox modules, as Debian's
// ansible package ships them (community.general 6.x on bookworm), against
// the host: proxmox_storage_info for one and every storage,
// proxmox_snap present / present again / rollback / absent on w.Stopped,
// proxmox started and stopped on w.Stopped and started (no change) on
// w.Running, and proxmox_tasks_info listing the node's tasks and one by
// UPID; per guest kind, proxmox_kvm current / started / started again /
// stopped on w.StoppedVM, and proxmox_nic adding net1 (PVE gives it a
// MAC), the same again (no change) and removing it. In a cluster (w.Cluster) also: proxmox_snap on
// Cluster.OtherGuest (the module finds its node through
// /cluster/resources), proxmox_tasks_info of Cluster.Other, proxmox
// stopped and started on Cluster.HAGuest (hastop and hastart; each
// repeated until the HA stack has acted and the module sees no change)
// and proxmox_kvm current on Cluster.MigrateVM. All in one
// ansible-playbook run. The modules talk to the host through proxmoxer with
// validate_certs, trusting e.CAFile (REQUESTS_CA_BUNDLE). It skips when
// ansible-playbook, the modules or proxmoxer are missing, or when
// e.CAFile is empty.
func Ansible(t *testing.T, e Endpoint, w World) {
	t.Helper()
	if err := w.validate(); err != nil {
		t.Fatal(err)
	}
	if e.CAFile == "" {
		t.Skip("Endpoint.CAFile is empty: the modules (proxmoxer, requests) can only trust the host through a CA file")
	}
	playbook, err := exec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook not found: apt install ansible (Debian ships community.general with the Proxmox modules)")
	}
	py := ansiblePython(playbook)
	if py == "" || exec.Command(py, "-c", "import proxmoxer.backends.https, ansible_collections.community.general.plugins.modules.proxmox_snap").Run() != nil {
		t.Skipf("the Python of %s cannot import proxmoxer and community.general's proxmox_snap: apt install python3-proxmoxer ansible", playbook)
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Host == "" {
		t.Fatalf("Endpoint.URL %q is not https://HOST:PORT", e.URL)
	}
	id, secret, ok := strings.Cut(e.Token, "=")
	user, tokenID, ok2 := strings.Cut(id, "!")
	if !ok || !ok2 {
		t.Fatalf("Endpoint.Token is not USER@REALM!TOKENID=SECRET")
	}

	dir := t.TempDir()
	for _, name := range []string{"flow.yml", "guest.yml", "cluster.yml"} {
		b, err := ansibleFlow.ReadFile("testdata/ansible/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The secret goes into a file only this user can read: a command line
	// is visible to every user of the machine.
	vars, err := json.Marshal(map[string]any{
		"api_host": u.Host, "api_user": user, "api_token_id": tokenID, "api_token_secret": secret,
		"node": e.Node, "backup_storage": w.BackupStorage, "guest_storage": w.GuestStorage,
		"snapname": snapshotName() + "ans",
		"guests":   thirdPartyGuests(w),
		"cluster":  thirdPartyCluster(w),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vars.json"), vars, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, playbook, "-i", "localhost,", "-e", "@"+filepath.Join(dir, "vars.json"), filepath.Join(dir, "flow.yml"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir, // ansible keeps its ~/.ansible here, not in the user's home
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_PYTHON_INTERPRETER="+py,
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_PIPELINING=1", // modules run from stdin, no file copy per task
		// Each task's time in the log (Debian's ansible ships ansible.posix;
		// without it ansible warns and goes on).
		"ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_DEPRECATION_WARNINGS=0",
		"REQUESTS_CA_BUNDLE="+e.CAFile,
		"LC_ALL=C.UTF-8",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("ansible-playbook flow.yml:\n%s", out.String())
	if err != nil {
		t.Fatalf("ansible flow: %v", err)
	}
}

// ansiblePython is the interpreter named on the first line of the
// ansible-playbook script (Debian's: /usr/bin/python3), or python3.
func ansiblePython(playbook string) string {
	b, err := os.ReadFile(playbook)
	if err == nil {
		if line, _, _ := strings.Cut(string(b), "\n"); strings.HasPrefix(line, "#!") {
			if f := strings.Fields(strings.TrimPrefix(line, "#!")); len(f) > 0 {
				if filepath.Base(f[0]) == "env" && len(f) > 1 {
					f = f[1:]
				}
				if p, err := exec.LookPath(f[0]); err == nil {
					return p
				}
			}
		}
	}
	p, _ := exec.LookPath("python3")
	return p
}
