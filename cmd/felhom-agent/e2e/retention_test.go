package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestRetentionMinBackups: the shipped backup.star with keep_last = 1 on
// guest 101 (one archive on usb-backup before the run, so after its new
// backup pruning would leave 1), on a serving agent with no simulated
// operator. With safety.min_backups = 2 the prune would leave fewer than
// 2 recent backups: the deletion is destructive, the run parks in
// pending_signature at it, and both archives stay. At the default (1) the
// same run prunes the older archive and succeeds, the new one kept.
func TestRetentionMinBackups(t *testing.T) {
	requireServe(t)
	for _, tc := range []struct {
		name       string
		env        []string
		wantStatus string
		wantLeft   int
	}{
		{name: "min_backups 2", env: []string{"FELHOM_AGENT_SAFETY_MIN_BACKUPS=2"}, wantStatus: "pending_signature", wantLeft: 2},
		{name: "default", wantStatus: "succeeded", wantLeft: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pbs := servePlaybooks(t)
			src, err := os.ReadFile(filepath.Join(playbooksDir, "backup.star"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(pbs, "backup.star"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			g := startGatedAgent(t, agentOpts{playbooks: pbs, env: tc.env})
			archives := func() int {
				n := 0
				for _, v := range g.sim.backups(t, "usb-backup") {
					if v.VMID == 101 {
						n++
					}
				}
				return n
			}
			if n := archives(); n != 1 {
				t.Fatalf("guest 101 has %d archives on usb-backup before the run; the default world has 1", n)
			}
			run := g.startRun(t, "backup", map[string]any{"vmids": []int{101}, "keep_last": 1})
			r := g.waitRun(t, run.ID, 60*time.Second, "to park or finish", func(r api.Run) bool { return parked(r) })
			if r.Status != tc.wantStatus {
				t.Fatalf("backup with keep_last 1: %s (%s) %q; want %s", r.Status, r.ErrorKind, r.Error, tc.wantStatus)
			}
			if n := archives(); n != tc.wantLeft {
				t.Errorf("guest 101 has %d archives on usb-backup after the run; want %d", n, tc.wantLeft)
			}
			ops := g.pendingOps(t, false)
			if tc.wantStatus == "pending_signature" {
				if len(ops) != 1 || ops[0].Run != run.ID || ops[0].Guest != 101 {
					t.Errorf("pending operations %+v; want the prune of guest 101's archive, for run %s", ops, run.ID)
				} else {
					t.Logf("pending: %s", ops[0].What)
				}
			} else if len(ops) != 0 {
				t.Errorf("pending operations %+v; want none: pruning within min_backups is benign", ops)
			}
		})
	}
}
