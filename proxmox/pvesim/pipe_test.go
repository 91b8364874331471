package pvesim_test

import (
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
)

// TestPipeTransportInBubble serves the simulator over in-memory
// connections inside a synctest bubble: its tasks run on the bubble's
// fake time, so a 10-minute task is waited for at once and ends exactly
// when planned.
func TestPipeTransportInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := &pvesim.Sim{TaskDuration: 10 * time.Minute}
		rt, stop := pvesim.PipeTransport(sim)
		t.Cleanup(stop)
		token, err := proxmox.ParseToken(pvesim.DefaultTokenID + "=" + pvesim.DefaultTokenSecret)
		if err != nil {
			t.Fatal(err)
		}
		c, err := proxmox.New(proxmox.Config{Endpoint: "https://pve.sim:8006", Node: pvesim.DefaultNode, Token: token}, proxmox.WithTransport(rt))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		upid, err := c.Shutdown(t.Context(), proxmox.LXC, pvesim.CustomerWeb, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitTask(t.Context(), upid, proxmox.WaitOptions{}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 10*time.Minute || took > 11*time.Minute {
			t.Errorf("waited %v; want the task's 10 minutes and less than one more", took)
		}
		if g, _ := sim.Guest(pvesim.CustomerWeb); g.Status != "stopped" {
			t.Errorf("guest %d is %s; want stopped", pvesim.CustomerWeb, g.Status)
		}
	})
}
