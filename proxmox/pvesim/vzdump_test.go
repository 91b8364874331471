package pvesim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVzdumpArchive(t *testing.T) {
	h := newHarness(t)
	before := len(h.sim.Volumes("usb-backup"))
	upid := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "mode", "snapshot",
		"compress", "zstd", "notes-template", "{{guestname}} on {{node}} ({{vmid}})"))
	u := strings.Split(upid, ":")
	if u[5] != "vzdump" || u[6] != "101" || u[7] != DefaultTokenID {
		t.Errorf("UPID %s; want vzdump, id 101, user %s", upid, DefaultTokenID)
	}
	if g := h.guest(101); g.Lock != "backup" {
		t.Errorf("lock during backup = %q; want backup", g.Lock)
	}
	h.fails("PUT", nodePath+"/lxc/101/config", vals("cores", "1"), 500, "CT is locked (backup)")
	// While it runs the log has got as far as the archive it writes (the
	// guest's slot has begun), but the archive does not exist yet.
	running := h.log(upid)
	if len(running) < 2 || !strings.HasPrefix(running[0], "INFO: starting new backup job: vzdump 101 ") ||
		running[len(running)-1] != "INFO: creating vzdump archive '/mnt/usb-backup/dump/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst'" {
		t.Errorf("log while running = %q", running)
	}

	log := h.wantExit(upid, "OK")
	if !slices.Equal(log[:len(running)], running) {
		t.Errorf("the finished log does not begin with the lines read while it ran:\n%s", strings.Join(log, "\n"))
	}
	want := "INFO: creating vzdump archive '/mnt/usb-backup/dump/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst'"
	if !containsLine(log, want) || log[len(log)-1] != "TASK OK" || !containsLine(log, "INFO: Backup job finished successfully") {
		t.Errorf("log:\n%s\nwant line %q", strings.Join(log, "\n"), want)
	}
	if h.guest(101).Lock != "" {
		t.Error("backup lock not released")
	}
	vols := h.sim.Volumes("usb-backup")
	if len(vols) != before+1 {
		t.Fatalf("usb-backup has %d volumes; want %d", len(vols), before+1)
	}
	content := h.ok("GET", nodePath+"/storage/usb-backup/content", vals("content", "backup", "vmid", "101")).list()
	var found map[string]any
	for _, c := range content {
		if c["volid"] == "usb-backup:backup/vzdump-lxc-101-2026_11_20-03_00_01.tar.zst" {
			found = c
		}
	}
	if found == nil {
		t.Fatalf("content = %v; want the new archive", content)
	}
	if found["content"] != "backup" || found["format"] != "tar.zst" || found["subtype"] != "lxc" ||
		found["vmid"] != float64(101) || found["ctime"] != float64(testStart.Unix()) || found["notes"] != "web on demo-felhom (101)" {
		t.Errorf("archive entry = %v", found)
	}
	if size, _ := found["size"].(float64); size <= 0 {
		t.Errorf("archive size = %v", found["size"])
	}
}

func TestVzdumpCompressionNames(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ compress, ext string }{{"", ".tar"}, {"gzip", ".tar.gz"}, {"lzo", ".tar.lzo"}, {"zstd", ".tar.zst"}} {
		p := vals("vmid", "102", "storage", "usb-backup")
		if tc.compress != "" {
			p.Set("compress", tc.compress)
		}
		h.clock.Advance(time.Minute)
		stamp := h.clock.Now().Format("2006_01_02-15_04_05")
		log := h.wantExit(h.upid("POST", nodePath+"/vzdump", p), "OK")
		want := fmt.Sprintf("/mnt/usb-backup/dump/vzdump-lxc-102-%s%s'", stamp, tc.ext)
		if !containsLine(log, want) {
			t.Errorf("compress=%q: log lacks %q", tc.compress, want)
		}
	}
}

func TestVzdumpFullStorage(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.FillStorage("usb-backup"); err != nil {
		t.Fatal(err)
	}
	before := len(h.sim.Volumes("usb-backup"))
	log := h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "compress", "zstd")), "job errors")
	if !containsLine(log, "No space left on device") || !containsLine(log, "ERROR: Backup of VM 101 failed - command '") {
		t.Errorf("log:\n%s\nwant the ENOSPC line and the failed archive command", strings.Join(log, "\n"))
	}
	if len(h.sim.Volumes("usb-backup")) != before {
		t.Error("a failed backup left an archive")
	}
	if h.guest(101).Lock != "" {
		t.Error("a failed backup left its lock")
	}
	if err := h.sim.FillStorage("nope"); err == nil {
		t.Error("FillStorage(nope) = nil; want an error")
	}
}

func TestVzdumpTaskTimePermission(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.DenyAtTaskTime("/vms/101", "VM.Backup"); err != nil {
		t.Fatal(err)
	}
	upid := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup"))
	h.wantExit(upid, "Permission check failed (/vms/101, VM.Backup)")
	if h.guest(101).Lock != "" {
		t.Error("denied backup left its lock")
	}
	// all=1 skips guests the token may not back up instead of failing.
	log := h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("all", "1", "storage", "usb-backup")), "OK")
	if containsLine(log, "Starting Backup of VM 101 ") || !containsLine(log, "Starting Backup of VM 102 ") {
		t.Errorf("all=1 log:\n%s\nwant 101 skipped, 102 backed up", strings.Join(log, "\n"))
	}
	h.sim.ClearTaskTimeDenials()
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup")), "OK")
}

func TestVzdumpRequestErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		params []string
		param  string
		msg    string
	}{
		{[]string{"storage", "usb-backup"}, "vmid", "property is missing"},
		{[]string{"vmid", "101", "all", "1"}, "all", "option conflicts with option 'vmid'"},
		{[]string{"vmid", "101", "mode", "fast"}, "mode", "value 'fast' does not have a value in the enumeration 'snapshot, suspend, stop'"},
		{[]string{"vmid", "101", "notes-template", "{{bogus}}", "storage", "local"}, "notes-template", "found unknown: variable 'bogus' at char 4\n"},
		{[]string{"vmid", "101", "notes-template", "x"}, "storage", "missing property required by 'notes-template'"},
		{[]string{"vmid", "101", "dumpdir", "/tmp"}, "dumpdir", "Only root may set this option."},
		{[]string{"vmid", "1x"}, "vmid", "invalid format - value does not look like a valid VM ID\n"},
	}
	for _, tc := range tests {
		r := h.fails("POST", nodePath+"/vzdump", vals(tc.params...), 400, "Parameter verification failed.")
		if got := r.errors()[tc.param]; got != tc.msg {
			t.Errorf("vzdump %v: errors[%s] = %q; want %q (all: %v)", tc.params, tc.param, got, tc.msg, r.errors())
		}
	}
	h.fails("POST", nodePath+"/vzdump", vals("vmid", "101", "bwlimit", "100"), 403, "Permission check failed (/, Sys.Modify)")

	// Wrong storages fail in the worker, as vzdump's job setup does.
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "local-lvm")),
		"could not get storage information for 'local-lvm': can't use storage 'local-lvm' for backups - wrong content type")
	log := h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "777", "storage", "usb-backup")), "job errors")
	if !containsLine(log, "ERROR: Backup of VM 777 failed - unable to find VM '777'") {
		t.Errorf("log:\n%s", strings.Join(log, "\n"))
	}
}

func TestVzdumpLockedGuestAndGlobalLock(t *testing.T) {
	h := newHarness(t)
	if err := h.sim.SetGuestLock(102, "snapshot"); err != nil {
		t.Fatal(err)
	}
	first := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,102", "storage", "usb-backup"))
	if strings.Split(first, ":")[6] != "" {
		t.Errorf("UPID %s; a multi-guest vzdump has an empty id", first)
	}
	second := h.upid("POST", nodePath+"/vzdump", vals("vmid", "9999", "storage", "usb-backup"))
	// Two guests take two task durations; the second job waits for the first.
	h.clock.Advance(2 * testTaskDuration)
	st1 := h.ok("GET", nodePath+"/tasks/"+first+"/status", nil).object()
	st2 := h.ok("GET", nodePath+"/tasks/"+second+"/status", nil).object()
	if st1["status"] != "stopped" || st2["status"] != "running" {
		t.Errorf("after 2 durations: first %v, second %v; want stopped, running", st1["status"], st2["status"])
	}
	log := h.wantExit(first, "job errors")
	if !containsLine(log, "ERROR: Backup of VM 102 failed - CT is locked (snapshot)") || !containsLine(log, "Finished Backup of VM 101") {
		t.Errorf("log:\n%s", strings.Join(log, "\n"))
	}
	log = h.wantExit(second, "OK")
	if !containsLine(log, "INFO: trying to get global lock - waiting...") {
		t.Errorf("second log:\n%s\nwant the global lock wait", strings.Join(log, "\n"))
	}
	if h.guest(102).Lock != "snapshot" {
		t.Error("vzdump released a lock it did not hold")
	}
}

func TestVzdumpPrune(t *testing.T) {
	h := newHarness(t)
	// usb-backup keeps the last 7; 101 has one archive already.
	for i := 0; i < 7; i++ {
		h.clock.Advance(time.Hour)
		h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "compress", "zstd")), "OK")
	}
	count := func() (n int, oldest string) {
		for _, v := range h.sim.Volumes("usb-backup") {
			if v.VMID == 101 {
				if n == 0 {
					oldest = v.VolID
				}
				n++
			}
		}
		return n, oldest
	}
	n, oldest := count()
	if n != 7 || oldest == "usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst" {
		t.Errorf("101 has %d archives, oldest %s; want 7, the pre-existing one pruned", n, oldest)
	}
	log := h.log(h.sim.Tasks()[len(h.sim.Tasks())-1].UPID)
	if !containsLine(log, "INFO: prune older backups with retention: keep-last=7") || !containsLine(log, "INFO: pruned 1 backup(s) not covered by keep-retention policy") {
		t.Errorf("last log:\n%s", strings.Join(log, "\n"))
	}
	// remove=0 keeps everything.
	h.clock.Advance(time.Hour)
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "remove", "0")), "OK")
	if n, _ := count(); n != 8 {
		t.Errorf("after remove=0: %d archives; want 8", n)
	}
	// An explicit prune-backups needs Datastore.Allocate and overrides the storage's.
	h.clock.Advance(time.Hour)
	h.wantExit(h.upid("POST", nodePath+"/vzdump", vals("vmid", "101", "storage", "usb-backup", "prune-backups", "keep-last=2")), "OK")
	if n, _ := count(); n != 2 {
		t.Errorf("after keep-last=2: %d archives; want 2", n)
	}
}

func TestPruneMarks(t *testing.T) {
	day := func(d, h int) *volume {
		return &volume{volid: fmt.Sprintf("d%d-%d", d, h), ctime: time.Date(2026, 11, d, h, 0, 0, 0, time.UTC)}
	}
	vols := []*volume{day(1, 1), day(1, 2), day(2, 1), day(3, 1), day(3, 5), day(4, 1)}
	vols[0].protected = true
	tests := []struct {
		keep map[string]string
		kept []string
	}{
		{map[string]string{"keep-last": "2"}, []string{"d1-1", "d3-5", "d4-1"}},
		{map[string]string{"keep-daily": "2"}, []string{"d1-1", "d3-5", "d4-1"}},
		// keep-daily counts only days keep-last has not covered.
		{map[string]string{"keep-last": "1", "keep-daily": "2"}, []string{"d1-1", "d2-1", "d3-5", "d4-1"}},
		{map[string]string{"keep-daily": "4"}, []string{"d1-1", "d1-2", "d2-1", "d3-5", "d4-1"}},
		{map[string]string{"keep-monthly": "1"}, []string{"d1-1", "d4-1"}},
	}
	for _, tc := range tests {
		marks := pruneMarks(vols, tc.keep, time.Local)
		var kept []string
		for _, v := range vols {
			if marks[v] != "remove" {
				kept = append(kept, v.volid)
			}
		}
		if fmt.Sprint(kept) != fmt.Sprint(tc.kept) {
			t.Errorf("pruneMarks(%v) keeps %v; want %v", tc.keep, kept, tc.kept)
		}
	}
}

func TestNotesTemplate(t *testing.T) {
	tests := []struct{ tmpl, why string }{
		{"{{guestname}}", ""},
		{`a\nb\\c`, ""},
		{"x\ny", "contains a line feed\n"},
		{`bad \t`, "found unknown: escape sequence '\\t' at char 4\n"},
		{"{{vmid}} {{nope}}", "found unknown: variable 'nope' at char 13\n"},
	}
	for _, tc := range tests {
		if got := verifyNotesTemplate(tc.tmpl); got != tc.why {
			t.Errorf("verifyNotesTemplate(%q) = %q; want %q", tc.tmpl, got, tc.why)
		}
	}
	g := &guest{vmid: 101, conf: map[string]string{"hostname": "web"}}
	if got := generateNotes(`{{guestname}}\n{{vmid}} \\ {{cluster}}`, "n1", g); got != "web\n101 \\ standalone node" {
		t.Errorf("generateNotes = %q", got)
	}
}

// TestVzdumpLogGrowsWhileItRuns: a backup's log is written as it goes, as
// vzdump's is — each guest's lines up to its archive when its slot begins,
// a VM's progress lines through the slot (qemu-server's
// query_backup_status_loop: a line when the percentage changed and more
// than two seconds passed), the rest when the slot ends — and every read
// of it is a prefix of the finished log, so a reader following it with
// start offsets never sees a line change.
func TestVzdumpLogGrowsWhileItRuns(t *testing.T) {
	h := newHarnessWith(t, func(s *Sim) { s.TaskDuration = time.Minute })
	upid := h.upid("POST", nodePath+"/vzdump", vals("vmid", "101,200", "storage", "usb-backup", "compress", "zstd"))
	var reads [][]string
	for range 8 {
		reads = append(reads, h.log(upid))
		h.clock.Advance(15 * time.Second)
	}
	final := h.wantExit(upid, "OK")
	for i, r := range reads {
		if len(r) > len(final) || !slices.Equal(final[:len(r)], r) {
			t.Fatalf("read %d is not a prefix of the finished log:\n%s\n---\n%s", i, strings.Join(r, "\n"), strings.Join(final, "\n"))
		}
		if i > 4 && len(r) <= len(reads[i-1]) {
			t.Errorf("read %d (%ds into the VM's slot) has no new line", i, i*15-60)
		}
	}
	// The container's tar prints nothing between its archive and its end.
	if !slices.Equal(reads[1], reads[0]) || !slices.Equal(reads[3], reads[0]) {
		t.Errorf("the container's log changed within its slot:\n%s", strings.Join(reads[3], "\n"))
	}
	// 60s in: the container is done and the VM's slot has begun.
	if one := reads[4]; !containsLine(one, "INFO: Finished Backup of VM 101 (00:01:00)") || !containsLine(one, "INFO: Starting Backup of VM 200 (qemu)") ||
		containsLine(one, "INFO: Finished Backup of VM 200") {
		t.Errorf("log 60s in:\n%s", strings.Join(one, "\n"))
	}
	// 30s into the VM's minute: its progress so far, not its end.
	half := reads[6]
	if !containsLine(half, "INFO:  50% (16.00 GiB of 32.00 GiB) in 30s, read: 546.13 MiB/s, write: 196.61 MiB/s") ||
		containsLine(half, "INFO: Finished Backup of VM 200") {
		t.Errorf("log 30s into the VM:\n%s", strings.Join(half, "\n"))
	}
	var pct []string
	for _, l := range final {
		if strings.HasSuffix(strings.Fields(l + " x")[1], "%") && strings.Contains(l, " of ") {
			pct = append(pct, strings.Fields(l)[1])
		}
	}
	if len(pct) < 10 || pct[len(pct)-1] != "100%" {
		t.Errorf("progress lines %v; want one every few seconds, 100%% last", pct)
	}
}
