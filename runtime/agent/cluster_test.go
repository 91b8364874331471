package agent

import (
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// A guest that migrated here has no backup in this agent's run store; its
// last backup comes from the storage content this node sees: a shared
// storage's archives, not another node's local ones.
func TestStorageBackupsOfAMigratedGuest(t *testing.T) {
	sim := &pvesim.Sim{Nodes: 3, TaskDuration: -1}
	shared := pvesim.SharedBackupStorage + ":backup/vzdump-lxc-102-2026_11_25-03_00_00.tar.zst"
	if err := sim.AddVolume(pvesim.VolumeSpec{VolID: shared}); err != nil {
		t.Fatal(err)
	}
	rt, stop := pvesim.PipeTransport(sim)
	t.Cleanup(stop)
	tok, _ := proxmox.ParseToken(pvesim.OperatorTokenID + "=" + pvesim.OperatorTokenSecret)
	c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve1.sim:8006", Node: "pve1", Token: tok}, proxmox.WithTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	upid, err := c.Migrate(t.Context(), proxmox.LXC, pvesim.CustomerDB, proxmox.MigrateOptions{Target: "pve2", Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitTask(t.Context(), upid, proxmox.WaitOptions{MinInterval: time.Millisecond, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pve2, _ := c.OnNode("pve2")
	got := storageBackups(t.Context(), pve2, []int{pvesim.CustomerDB, pvesim.ClusterShop})
	if v, ok := got[pvesim.CustomerDB]; !ok || v.VolID != shared {
		t.Errorf("102's newest backup seen from pve2 = %+v %v; want %s (pve1's usb-backup archive is pve1's)", v, ok, shared)
	}
	if _, ok := got[pvesim.ClusterShop]; ok {
		t.Errorf("110 has no backup anywhere, got %+v", got[pvesim.ClusterShop])
	}
	if got := storageBackups(t.Context(), pve2, nil); got != nil {
		t.Errorf("no guests asked: %v", got)
	}
	pve1, _ := c.OnNode("pve1")
	if v := storageBackups(t.Context(), pve1, []int{pvesim.CustomerDB})[pvesim.CustomerDB]; v.VolID != shared {
		t.Errorf("from pve1 the newest is %s; want the shared one (newer than usb-backup's)", v.VolID)
	}
}
