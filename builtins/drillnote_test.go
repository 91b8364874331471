package builtins

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDrillNoteLines(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 30, 0, 0, time.UTC)
	tests := []struct {
		name, notes, want string
		n                 DrillNote
	}{
		{"no notes", "", "felhom-drill: ok 2026-12-01T03:30:00Z", DrillNote{OK: true, At: at}},
		{"operator's notes kept below", "web 101\nsecond", "felhom-drill: failed 2026-12-01T03:30:00Z\nweb 101\nsecond", DrillNote{At: at}},
		{"an earlier drill replaced", "felhom-drill: failed 2026-11-01T00:00:00Z\nweb", "felhom-drill: ok 2026-12-01T03:30:00Z\nweb", DrillNote{OK: true, At: at}},
		{"local time written as UTC", "", "felhom-drill: ok 2026-12-01T03:30:00Z", DrillNote{OK: true, At: at.In(time.FixedZone("CET", 3600))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WithDrillNote(tt.notes, tt.n)
			if got != tt.want {
				t.Fatalf("WithDrillNote(%q) = %q; want %q", tt.notes, got, tt.want)
			}
			back, ok := ParseDrillNote(got)
			if !ok || back.OK != tt.n.OK || !back.At.Equal(tt.n.At) {
				t.Errorf("ParseDrillNote(%q) = %+v, %v; want %+v", got, back, ok, tt.n)
			}
		})
	}
	for _, notes := range []string{"", "web 101", "felhom-drill: maybe 2026-12-01T03:30:00Z", "felhom-drill: ok yesterday",
		"felhom-drill: ok", "web\nfelhom-drill: ok 2026-12-01T03:30:00Z"} {
		if n, ok := ParseDrillNote(notes); ok {
			t.Errorf("ParseDrillNote(%q) = %+v; want no drill line", notes, n)
		}
	}
}

func TestRecordDrill(t *testing.T) {
	rig := newRig(t)
	at := time.Date(2026, 12, 1, 3, 30, 0, 0, time.UTC)
	rig.env.Now = func() time.Time { return at }
	const archive = "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst"
	rig.pve.Content["usb-backup"][0].Notes = "web 101"
	if _, err := runStar(t, rig.env, `proxmox.record_drill("`+archive+`", ok = True)`); err != nil {
		t.Fatal(err)
	}
	if got, want := rig.pve.Content["usb-backup"][0].Notes, "felhom-drill: ok 2026-12-01T03:30:00Z\nweb 101"; got != want {
		t.Errorf("notes = %q; want %q", got, want)
	}
	for _, tt := range []struct{ call, fail, want string }{
		{`proxmox.record_drill("local:iso/x.iso", ok = True)`, "", "is not a backup archive"},
		{`proxmox.record_drill("", ok = True)`, "", "archive"},
		{`proxmox.record_drill("` + archive + `")`, "", "missing argument for ok"},
		{`proxmox.record_drill("` + archive + `", ok = False)`, "SetVolumeNotes", "writing the notes of " + archive + ": refused"},
		{`proxmox.record_drill("` + archive + `", ok = False)`, "VolumeNotes", "reading the notes of " + archive + ": refused"},
	} {
		rig := newRig(t)
		if tt.fail != "" {
			rig.pve.errs = map[string]error{tt.fail: errors.New("refused")}
		}
		_, err := runStar(t, rig.env, tt.call)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error containing %q", tt.call, err, tt.want)
		}
		if n := rig.pve.Content["usb-backup"][0].Notes; strings.HasPrefix(n, DrillNotePrefix) {
			t.Errorf("%s: notes written %q", tt.call, n)
		}
	}
}
