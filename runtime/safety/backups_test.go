package safety

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// hostBackups is a host with backup storages usb and pbs whose backups of
// guest 100 change as the test deletes and makes them; it counts the
// gate's reads.
type hostBackups struct {
	fakeFacts
	mu       sync.Mutex
	vols     []proxmox.Volume
	storages int            // reads of the node's storages
	listings map[string]int // listings, by storage
}

func (h *hostBackups) BackupStorages(context.Context) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.storages++
	return []string{"usb", "pbs"}, nil
}

func (h *hostBackups) StorageBackups(_ context.Context, storage string, vmid int) ([]proxmox.Volume, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.listings == nil {
		h.listings = map[string]int{}
	}
	h.listings[storage]++
	var out []proxmox.Volume
	for _, v := range h.vols {
		if strings.HasPrefix(v.VolID, storage+":") && v.VMID == vmid {
			out = append(out, v)
		}
	}
	return out, nil
}

// backup makes guest 100's backup of day d on storage st.
func (h *hostBackups) backup(st string, d int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := proxmox.Volume{VolID: fmt.Sprintf("%s:backup/vzdump-lxc-100-2026_11_%02d-03_00_00.tar.zst", st, d), VMID: 100,
		CTime: time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC)}
	h.vols = append(h.vols, v)
	return v.VolID
}

func (h *hostBackups) remove(volid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.vols = slices.DeleteFunc(h.vols, func(v proxmox.Volume) bool { return v.VolID == volid })
}

// reads is "storages usb pbs": the reads so far.
func (h *hostBackups) reads() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%d %d %d", h.storages, h.listings["usb"], h.listings["pbs"])
}

// TestGateBackupReads: the min_backups check reads the node's storages
// once per run and, per deletion, the archive's own storage — the other
// backup storages only when that one shows fewer than min_backups newer
// backups; every deletion sees the host as it is then, so another run's
// (or a person's) deletion since the last one is counted, and a deletion
// that would leave fewer than min_backups parks.
func TestGateBackupReads(t *testing.T) {
	ctx := context.Background()
	host := &hostBackups{}
	day := map[int]string{}
	for d := 1; d <= 4; d++ {
		day[d] = host.backup("usb", d)
	}
	day[5] = host.backup("pbs", 5)
	var audit []AuditEntry
	g := newGate(&audit)
	g.Facts = host
	del := func(g *Gate, volid string) error {
		storage, _, _ := strings.Cut(volid, ":")
		err := g.BeforeMutation(ctx, mut("DELETE", "/nodes/pve/storage/"+storage+"/content/"+volid))
		if err == nil {
			host.remove(volid) // the DELETE the gate let through
		}
		return err
	}
	steps := []struct {
		name     string
		do       func() error
		destroys bool   // refused as destructive
		reads    string // storages, usb and pbs listings so far
	}{
		{"the oldest: the storages once, its own storage", func() error { return del(g, day[1]) }, false, "1 1 0"},
		{"the next: its own storage only", func() error { return del(g, day[2]) }, false, "1 2 0"},
		{"usb's newest, the node's newest on PBS", func() error { return del(g, day[4]) }, false, "1 3 1"},
		{"another run (or a person) deletes PBS's", func() error { host.remove(day[5]); return nil }, false, "1 3 1"},
		{"usb's last, the guest's last: parks", func() error { return del(g, day[3]) }, true, "1 4 2"},
	}
	for _, s := range steps {
		err := s.do()
		if s.destroys != errors.Is(err, ErrDestructive) || (!s.destroys && err != nil) {
			t.Fatalf("%s: %v; want destructive %v", s.name, err, s.destroys)
		}
		if got := host.reads(); got != s.reads {
			t.Errorf("%s: reads (storages, usb, pbs) %s; want %s", s.name, got, s.reads)
		}
	}
	if len(host.vols) != 1 || host.vols[0].VolID != day[3] {
		t.Errorf("the host keeps %v; want the guest's last backup", host.vols)
	}
	// Another run reads the storages for itself.
	other := newGate(&audit)
	other.Facts = host
	if err := del(other, day[3]); !errors.Is(err, ErrDestructive) {
		t.Errorf("another run deleting the last backup = %v; want parked", err)
	}
	if got := host.reads(); got != "2 5 3" {
		t.Errorf("after another run's check: reads %s; want 2 5 3", got)
	}
}
