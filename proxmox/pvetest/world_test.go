package pvetest

import (
	"strings"
	"testing"
)

func TestWorldValidate(t *testing.T) {
	full := World{Running: 101, Stopped: 120, Scratch: 130, BackupStorage: "usb-backup", GuestStorage: "local-lvm"}
	for _, tc := range []struct {
		name   string
		change func(*World)
		want   string // substring of the error; "" for valid
	}{
		{"complete", func(*World) {}, ""},
		{"nothing", func(w *World) { *w = World{} }, "[Running Stopped Scratch BackupStorage GuestStorage]"},
		{"no scratch", func(w *World) { w.Scratch = 0 }, "lacks [Scratch]"},
		{"no guest storage", func(w *World) { w.GuestStorage = "" }, "lacks [GuestStorage]"},
		{"same guest twice", func(w *World) { w.Scratch = w.Stopped }, "must differ"},
		{"a VM", func(w *World) { w.StoppedVM = 201 }, ""},
		{"the VM is the container", func(w *World) { w.StoppedVM = w.Stopped }, "StoppedVM (120) must differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := full
			tc.change(&w)
			err := w.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate() = %v; want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate() = %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestCasesDocumented: every case has a unique name and states its rule.
func TestCasesDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range cases() {
		if c.name == "" || c.rule == "" || c.run == nil {
			t.Errorf("case %q: name, rule and run are required", c.name)
		}
		if seen[c.name] {
			t.Errorf("case %q twice", c.name)
		}
		seen[c.name] = true
		for _, h := range c.hooks {
			if why := (&suite{}).missingHook(h); strings.HasPrefix(why, "unknown") {
				t.Errorf("case %q needs %s", c.name, why)
			}
		}
	}
}
