package e2e

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// TestBackupRequestEconomy: a whole backup run costs at most three
// requests per guest — its vzdump POST, one status read (instant tasks)
// and one listing of the storage after the vzdump, which serves both the
// archive check and the retention plan — plus a constant for the run (the
// preflight, the guest list, the node's storages, their configuration and
// one listing before anything starts, which gives every guest's size
// estimate). Deleting pruned archives is counted apart: that is retention's
// work, a DELETE and its task's status read per archive, and the safety
// gate's check that the deletion leaves the guest its safety.min_backups:
// the node's storages once for the run (storage configuration), and a
// fresh listing of the archive's own storage for each deletion, which
// holds the newer backup the vzdump just wrote (the other backup storages
// are listed only when it shows too few; was one storage read and one
// listing per backup storage for every deletion, 4 requests per pruned
// archive here, 16 for 4). Issue #17: 6 requests per guest + 2 before.
func TestBackupRequestEconomy(t *testing.T) {
	t.Parallel()
	const extra = 10
	sim, srv, _ := inProcSim(t, -1, 300, extra) // instant tasks
	guests := 0
	for _, g := range sim.Guests() {
		if !g.Template {
			guests++
		}
	}
	before := sim.Requests()
	r := runPlaybook(t, serverEnv(srv, "FELHOM_AGENT_LOG_LEVEL=debug"), playbooksDir, "backup.star", params("keep_last=1")...)
	s := r.mustSummary(t)
	got := sim.Requests() - before
	if r.Code != 0 || s.Status != "succeeded" {
		t.Fatalf("backup: exit %d, %s (%s)", r.Code, s.Status, s.Error)
	}
	var vzdumps, deletes, pruning, statusReads, listings, storageReads, other int
	sc := bufio.NewScanner(strings.NewReader(r.Stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct{ Msg, Method, Path string }
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "proxmox api request" {
			continue
		}
		switch {
		case l.Method == "POST" && strings.HasSuffix(l.Path, "/vzdump"):
			vzdumps++
		case l.Method == "DELETE":
			deletes++
		case strings.Contains(l.Path, ":imgdel:"): // a delete's status read
			pruning++
		case strings.Contains(l.Path, "/tasks/UPID:") && strings.HasSuffix(l.Path, "/status"):
			statusReads++
		case strings.HasSuffix(l.Path, "/content"):
			listings++
		case strings.HasSuffix(l.Path, "/storage"):
			storageReads++
		default:
			other++
		}
	}
	if vzdumps+deletes+pruning+statusReads+listings+storageReads+other != got {
		t.Fatalf("the debug log shows %d requests; the simulator received %d", vzdumps+deletes+pruning+statusReads+listings+storageReads+other, got)
	}
	if vzdumps != guests || deletes == 0 {
		t.Fatalf("backup of %d guests: %d vzdumps, %d deletes; want one vzdump per guest and some pruning (keep_last=1)", guests, vzdumps, deletes)
	}
	const constant = 6
	if pruning > deletes {
		t.Errorf("%d deletes cost %d status reads; want at most one each (instant tasks)", deletes, pruning)
	}
	pruning += deletes
	// The gate's reads (see above): exactly one storage read for the run
	// and one listing per deletion.
	gateListings, gateStorageReads := deletes, 1
	if listings != guests+1+gateListings || storageReads != 1+gateStorageReads {
		t.Errorf("backup of %d guests with %d deletions: %d content listings, %d storage reads; want %d (one before, one after each vzdump, one per deletion) and %d (the run's and the gate's)",
			guests, deletes, listings, storageReads, guests+1+deletes, 1+gateStorageReads)
	}
	listings -= gateListings
	other += storageReads - gateStorageReads
	pruning += gateListings + gateStorageReads
	if perGuest := got - pruning; perGuest > 3*guests+constant {
		t.Errorf("backup of %d guests: %d requests besides %d for pruning (%d vzdump POSTs, %d status reads, %d content listings, %d other); want at most 3 per guest + %d = %d",
			guests, perGuest, pruning, vzdumps, statusReads, listings, other, constant, 3*guests+constant)
	}
	if listings > guests+1 {
		t.Errorf("backup of %d guests listed storage content %d times; want one listing before and one after each vzdump", guests, listings)
	}
	record(t, "backup run (instant tasks): requests besides pruning", "%d for %d guests (%d POST + %d status + %d listings + %d other) + %d for %d deletes (%d of them the safety gate's)",
		got-pruning, guests, vzdumps, statusReads, listings, other, pruning, deletes, gateListings+gateStorageReads)
}
