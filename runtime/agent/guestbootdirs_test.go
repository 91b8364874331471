package agent

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// A container attached before the bootstrap mount was marked shared=1
// is re-marked by ensure_bootstrap's path (a provision rerun), on the
// same slot.
func TestEnsureBootstrapRemarksShared(t *testing.T) {
	sim := pvesim.New()
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()
	dir := filepath.Join(ta.state, GuestsDir, "102")
	old := dir + ",mp=/etc/felhom-bootstrap,ro=1"
	if _, err := sim.RootRunner().Run(ctx, []string{"pct", "set", "102", "--mp200", old}); err != nil {
		t.Fatal(err)
	}
	tok, changed, err := ta.EnsureGuestBootstrap(ctx, 102)
	if err != nil || !changed || tok.Mount != "mp200" || !tok.Attached {
		t.Fatalf("EnsureGuestBootstrap = %+v, %v, %v; want mp200 re-marked", tok, changed, err)
	}
	g, _ := sim.Guest(102)
	if g.Config["mp200"] != old+",shared=1" {
		t.Errorf("102's mp200 = %q; want %q", g.Config["mp200"], old+",shared=1")
	}
	if _, ok := g.Config["mp255"]; ok {
		t.Errorf("102 got a second bootstrap mount: %v", g.Config)
	}
	// Marked now: a rerun attaches nothing.
	if tok, _, err := ta.EnsureGuestBootstrap(ctx, 102); err != nil || tok.Mount != "" || !tok.Attached {
		t.Errorf("a second EnsureGuestBootstrap = %+v, %v; want attached, nothing done", tok, err)
	}
}

// Every node's agent makes the bootstrap directory of every container of
// the cluster whose config carries the bootstrap mount, as the attach
// makes it; containers without it get none.
func TestEnsureBootstrapDirsAcrossCluster(t *testing.T) {
	sim := &pvesim.Sim{Nodes: 3, TaskDuration: -1}
	ta, _ := startGuestAgent(t, sim)
	ctx := context.Background()
	on := func(node string, vmid int, value string) {
		t.Helper()
		r, err := sim.NodeRootRunner(node)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(ctx, []string{"pct", "set", strconv.Itoa(vmid), "--mp255", value}); err != nil {
			t.Fatal(err)
		}
	}
	shop := filepath.Join(ta.state, GuestsDir, strconv.Itoa(pvesim.ClusterShop))
	on("pve2", pvesim.ClusterShop, shop+",mp=/etc/felhom-bootstrap,ro=1,shared=1")
	foreign := "/srv/elsewhere/guests/" + strconv.Itoa(pvesim.ClusterWiki)
	on("pve3", pvesim.ClusterWiki, foreign+",mp=/etc/felhom-bootstrap,ro=1,shared=1")
	// A bind mount elsewhere in the container is not the bootstrap mount.
	on("pve3", pvesim.ClusterMail, filepath.Join(ta.state, GuestsDir, strconv.Itoa(pvesim.ClusterMail))+",mp=/data")

	if _, err := ta.ensureBootstrapDirs(ctx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(shop)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o707 != 0o700 {
		t.Fatalf("pve2's container %d's bootstrap directory here: %v, %v; want a directory only the agent may change", pvesim.ClusterShop, fi, err)
	}
	// Exactly as the attach makes it: mode and ACL (the container's root
	// may read) as the directory of pve1's container 101, attached here.
	if _, err := ta.MintGuestToken(ctx, pvesim.CustomerWeb); err != nil {
		t.Fatal(err)
	}
	attached := filepath.Join(ta.state, GuestsDir, strconv.Itoa(pvesim.CustomerWeb))
	ai, _ := os.Stat(attached)
	aclA, errA := aclOf(attached)
	aclS, errS := aclOf(shop)
	if errA != nil || errS != nil || ai.Mode() != fi.Mode() || aclA != aclS {
		t.Errorf("directory made for a migration: %v, ACL %q (%v); the attach's: %v, ACL %q (%v)", fi.Mode(), aclS, errS, ai.Mode(), aclA, errA)
	}
	if ents, _ := os.ReadDir(shop); len(ents) != 0 {
		t.Errorf("the directory made for a migration holds %v; want it empty", ents)
	}
	// Another state directory's path: the directory is made here all the
	// same (the log warns that PVE checks the other path).
	if fi, err := os.Stat(filepath.Join(ta.state, GuestsDir, strconv.Itoa(pvesim.ClusterWiki))); err != nil || !fi.IsDir() {
		t.Errorf("guest %d (bootstrap mount of another state directory): %v, %v; want its directory here too", pvesim.ClusterWiki, fi, err)
	}
	for _, vmid := range []int{pvesim.ClusterMail, pvesim.ClusterERP} {
		if _, err := os.Stat(filepath.Join(ta.state, GuestsDir, strconv.Itoa(vmid))); !os.IsNotExist(err) {
			t.Errorf("guest %d got a bootstrap directory (%v); it has no bootstrap mount of this agent's", vmid, err)
		}
	}
	// A second pass reads no config again: what has a directory is
	// settled, what has no mount waits for bootDirsRecheck.
	ta.guest.bootDirs.Lock()
	waiting := slices.Sorted(maps.Keys(ta.guest.noMount))
	ta.guest.bootDirs.Unlock()
	if !slices.Contains(waiting, pvesim.ClusterMail) || slices.Contains(waiting, pvesim.ClusterShop) || slices.Contains(waiting, pvesim.ClusterWiki) {
		t.Errorf("containers waiting for a recheck: %v", waiting)
	}
	if made, err := ta.ensureBootstrapDirs(ctx); err != nil || len(made) != 0 {
		t.Errorf("second pass made %v, %v; want nothing", made, err)
	}
	// After the recheck interval a container attached meanwhile is seen.
	mail := filepath.Join(ta.state, GuestsDir, strconv.Itoa(pvesim.ClusterMail))
	on("pve3", pvesim.ClusterMail, mail+",mp=/etc/felhom-bootstrap,ro=1,shared=1")
	ta.guest.bootDirs.Lock()
	ta.guest.noMount[pvesim.ClusterMail] = time.Now().Add(-bootDirsRecheck * ta.cfg.HealthInterval)
	ta.guest.bootDirs.Unlock()
	if made, err := ta.ensureBootstrapDirs(ctx); err != nil || !slices.Equal(made, []int{pvesim.ClusterMail}) {
		t.Errorf("pass after the recheck interval made %v, %v; want [%d]", made, err, pvesim.ClusterMail)
	}
}
