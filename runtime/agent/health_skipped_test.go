package agent

import (
	"context"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
)

// TestHealthSkipsWithoutPrivileged: an agent without privileged
// operations does not read the sensors, and neither the hub's report nor
// the guest API's health calls that a failure; a monitor that does fail
// is reported by both.
func TestHealthSkipsWithoutPrivileged(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		storageFail bool // the storage list answers 500
	}{
		{"all readable", false},
		{"storage fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := pvesim.New()
			if tc.storageFail {
				if err := sim.AddFault(pvesim.Fault{Kind: pvesim.FaultStatus, Method: "GET", Path: "/nodes/*/storage", Status: 500, Message: "storage status failed"}); err != nil {
					t.Fatal(err)
				}
			}
			ta := newSimHost(t, sim).agent(nil)
			if ta.cfg.Engine.Env.Host != nil {
				t.Fatal("the test agent runs with privileged operations; want without")
			}
			h := builtins.ReadHealth(ctx, &builtins.Env{Proxmox: ta.cfg.Engine.Env.Proxmox, Logger: ta.log})
			if _, ok := h.Skipped["sensors"]; !ok {
				t.Errorf("Health.Skipped = %v; want sensors", h.Skipped)
			}
			rep, err := ta.collectReport(ctx, channel.Cursor{})
			if err != nil {
				t.Fatal(err)
			}
			gh, err := guestBackend{ta.Agent}.Health(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for what, errs := range map[string]map[string]string{"hub report": rep.Errors, "guest health": gh.Errors} {
				if _, ok := errs["sensors"]; ok {
					t.Errorf("%s errors = %v; want no sensors (skipped, not failed)", what, errs)
				}
				if _, ok := errs["storage"]; ok != tc.storageFail {
					t.Errorf("%s errors = %v; want storage there: %v", what, errs, tc.storageFail)
				}
			}
		})
	}
}
