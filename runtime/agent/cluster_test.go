package agent

import (
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
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
	// A drill pve1's agent recorded on the shared archive travels with it.
	drill := builtins.DrillNote{OK: true, At: time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC)}
	if err := c.SetVolumeNotes(t.Context(), shared, builtins.WithDrillNote("", drill)); err != nil {
		t.Fatal(err)
	}
	pve2, _ := c.OnNode("pve2")
	if st := storageHistory(t.Context(), pve2, []int{pvesim.CustomerDB})[pvesim.CustomerDB]; !st.drilled() || !st.Drill.At.Equal(drill.At) || st.DrillArchive != shared {
		t.Errorf("102's drill seen from pve2 = %+v; want %v on %s", st, drill, shared)
	}
	got := storageHistory(t.Context(), pve2, []int{pvesim.CustomerDB, pvesim.ClusterShop})
	if v, ok := got[pvesim.CustomerDB]; !ok || v.Backup.VolID != shared {
		t.Errorf("102's newest backup seen from pve2 = %+v %v; want %s (pve1's usb-backup archive is pve1's)", v, ok, shared)
	}
	if _, ok := got[pvesim.ClusterShop]; ok {
		t.Errorf("110 has no backup anywhere, got %+v", got[pvesim.ClusterShop])
	}
	if got := storageHistory(t.Context(), pve2, nil); got != nil {
		t.Errorf("no guests asked: %v", got)
	}
	pve1, _ := c.OnNode("pve1")
	if v := storageHistory(t.Context(), pve1, []int{pvesim.CustomerDB})[pvesim.CustomerDB]; v.Backup.VolID != shared {
		t.Errorf("from pve1 the newest is %s; want the shared one (newer than usb-backup's)", v.Backup.VolID)
	}
}

// A guest whose restore drills this agent's run store knows nothing of
// (one that migrated here, or another node's agent drilled) takes its
// last drill from the drill lines recorded on its archives' notes: the
// guest API's /restore-test/status and the host report say the same.
func TestRestoreDrillFromArchiveNotes(t *testing.T) {
	sim := pvesim.New()
	failed := "usb-backup:backup/vzdump-lxc-101-2026_11_28-03_00_00.tar.zst"
	passed := "usb-backup:backup/vzdump-lxc-101-2026_11_27-03_00_00.tar.zst"
	for _, v := range []pvesim.VolumeSpec{
		{VolID: passed, Notes: "felhom-drill: ok 2026-11-27T04:00:00Z\nweb nightly"},
		{VolID: failed, Notes: "felhom-drill: failed 2026-11-28T04:00:00Z"},
		// Not a drill line (it is not the first line): no drill.
		{VolID: "usb-backup:backup/vzdump-lxc-102-2026_11_28-03_00_00.tar.zst", Notes: "db\nfelhom-drill: ok 2026-11-29T04:00:00Z"},
	} {
		if err := sim.AddVolume(v); err != nil {
			t.Fatal(err)
		}
	}
	ta, client := startGuestAgent(t, sim)
	ctx := t.Context()
	tok101, err := ta.MintGuestToken(ctx, 101)
	if err != nil {
		t.Fatal(err)
	}
	tok102, _ := ta.MintGuestToken(ctx, 102)
	ep, fp := ta.GuestAPIAddrs()[0].String(), ta.GuestAPIFingerprint()
	var rt guestapi.RestoreTest
	if code, env := newGuestClient(t, ep, fp, tok101.Token).do("GET", "/restore-test/status", "", &rt); code != 200 ||
		!rt.Tested || rt.OK || rt.At == nil || !rt.At.Equal(time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)) ||
		rt.LastOK == nil || !rt.LastOK.Equal(time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)) {
		t.Errorf("101's restore test = %d %+v %s; want tested, failed at 11-28 04:00, last ok 11-27 04:00", code, rt, env.Error)
	}
	rt = guestapi.RestoreTest{}
	if code, _ := newGuestClient(t, ep, fp, tok102.Token).do("GET", "/restore-test/status", "", &rt); code != 200 || rt.Tested {
		t.Errorf("102's restore test = %d %+v; want never tested", code, rt)
	}
	rep := channel.Report{Errors: map[string]string{}}
	ta.Agent.reportGuests(ctx, client, &rep)
	for _, g := range rep.Guests {
		switch g.VMID {
		case 101:
			if d := g.LastRestoreDrill; d == nil || d.OK || d.Detail != "on storage: "+failed {
				t.Errorf("101's report drill = %+v; want the failed one on %s", d, failed)
			}
		case 102:
			if g.LastRestoreDrill != nil {
				t.Errorf("102's report drill = %+v; want none", g.LastRestoreDrill)
			}
		}
	}
}
