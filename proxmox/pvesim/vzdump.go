package pvesim

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vzdump, after pve-manager PVE/API2/VZDump.pm and PVE/VZDump.pm: the
// request checks parameters and the storage privilege; the worker checks
// VM.Backup per guest, takes the node's global vzdump lock (one job at a
// time), backs the guests up one after another — each holding the
// "backup" lock during its own slot only (locks.go) — writes the archives with PVE's names, adds notes, prunes
// by the retention, and ends "job errors" when any guest failed.

// compression maps vzdump's compress values to the archive extension.
var compression = map[string]string{"": "", "0": "", "1": ".lzo", "lzo": ".lzo", "gzip": ".gz", "zstd": ".zst"}

// archiveSize is a deterministic archive size for g: its used disk space
// shrunk by the compressor.
func archiveSize(g *guest, compress string) uint64 {
	ratio := map[string]float64{"": 1, "0": 1, "1": 0.52, "lzo": 0.52, "gzip": 0.42, "zstd": 0.38}[compress]
	return uint64(float64(guestUsedBytes(g)) * ratio)
}

func guestUsedBytes(g *guest) uint64 { return g.maxDisk() / 100 * uint64(22+g.vmid%31) }

// vzdumpFormatSize is PVE::VZDump::format_size.
func vzdumpFormatSize(n uint64) string {
	kb := float64(n) / 1024
	switch {
	case kb < 1024:
		return fmt.Sprintf("%dKB", int(kb))
	case kb/1024 < 1024:
		return fmt.Sprintf("%dMB", int(kb/1024))
	case kb/1024/1024 < 1024:
		return fmt.Sprintf("%.2fGB", kb/1024/1024)
	}
	return fmt.Sprintf("%.2fTB", kb/1024/1024/1024)
}

var (
	notesEscapeRe = regexp.MustCompile(`\\(.)`)
	notesVarRe    = regexp.MustCompile(`\{\{([^\s{}]+)\}\}`)
)

// verifyNotesTemplate is PVE::VZDump's $verify_notes_template.
func verifyNotesTemplate(tmpl string) string {
	if strings.Contains(tmpl, "\n") {
		return "contains a line feed\n"
	}
	var problems []string
	for _, m := range notesEscapeRe.FindAllStringSubmatchIndex(tmpl, -1) {
		if ch := tmpl[m[2]:m[3]]; ch != "n" && ch != `\` {
			problems = append(problems, fmt.Sprintf("escape sequence '\\%s' at char %d", ch, m[1]-2))
		}
	}
	for _, m := range notesVarRe.FindAllStringSubmatchIndex(tmpl, -1) {
		v := tmpl[m[2]:m[3]]
		if v != "cluster" && v != "guestname" && v != "node" && v != "vmid" {
			problems = append(problems, fmt.Sprintf("variable '%s' at char %d", v, m[1]-len(v)))
		}
	}
	if len(problems) > 0 {
		return "found unknown: " + strings.Join(problems, ", ") + "\n"
	}
	return ""
}

// generateNotes fills a (verified) notes template for one guest.
func generateNotes(tmpl, node string, g *guest) string {
	out := notesEscapeRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		if m == `\n` {
			return "\n"
		}
		return `\`
	})
	vars := map[string]string{"cluster": "standalone node", "guestname": g.name(), "node": node, "vmid": vmidString(g.vmid)}
	return notesVarRe.ReplaceAllStringFunc(out, func(m string) string {
		if v, ok := vars[m[2:len(m)-2]]; ok {
			return v
		}
		return m
	})
}

var shellSafeRe = regexp.MustCompile(`^[A-Za-z0-9_.,:/=@+-]+$`)

// vzdumpCommandLine is PVE::VZDump::Common::command_line, options sorted.
func (c *call) vzdumpCommandLine() string {
	var b strings.Builder
	b.WriteString("vzdump")
	if c.has("vmid") {
		b.WriteString(" " + strings.Join(splitList(c.str("vmid")), " "))
	}
	keys := make([]string, 0, len(c.params))
	for k := range c.params {
		if k != "vmid" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := c.params[k]
		if !shellSafeRe.MatchString(v) {
			v = "'" + strings.ReplaceAll(v, "'", `'"'"'`) + "'"
		}
		fmt.Fprintf(&b, " --%s %s", k, v)
	}
	return b.String()
}

func (c *call) vzdump() response {
	st := c.st
	if c.bool("stdout") {
		return paramError(map[string]string{"stdout": "option is only allowed on the command line interface."})
	}
	for _, k := range []string{"tmpdir", "dumpdir", "script", "job-id"} {
		if c.has(k) {
			return paramError(map[string]string{k: "Only root may set this option."})
		}
	}
	if c.has("bwlimit") || c.has("ionice") || c.has("performance") {
		if resp, ok := c.tok.check("/", "Sys.Modify"); !ok {
			return resp
		}
	}
	storageID := c.str("storage")
	if storageID == "" {
		storageID = "local"
	}
	if c.has("prune-backups") {
		if resp, ok := c.tok.check("/storage/"+storageID, "Datastore.Allocate"); !ok {
			return resp
		}
	}
	switch {
	case c.bool("all") && c.has("vmid"):
		return paramError(map[string]string{"all": "option conflicts with option 'vmid'"})
	case c.has("exclude") && c.has("vmid"):
		return paramError(map[string]string{"exclude": "option conflicts with option 'vmid'"})
	case c.has("pool") && c.has("vmid"):
		return paramError(map[string]string{"pool": "option conflicts with option 'vmid'"})
	}
	var prune map[string]string
	if c.has("prune-backups") {
		p, why := parsePropertyString("prune-backups", namedPropertyFormats["prune-backups"], c.str("prune-backups"))
		if why != "" {
			return paramError(map[string]string{"prune-backups": "invalid format - " + why})
		}
		prune = p
	}
	if why := verifyNotesTemplate(c.str("notes-template")); why != "" {
		return paramError(map[string]string{"notes-template": why})
	}
	all := c.bool("all") || c.has("exclude")
	if !all && !c.has("vmid") && !c.has("pool") {
		return paramError(map[string]string{"vmid": "property is missing"})
	}
	if c.has("pool") {
		return die("pool '%s' does not exist", c.str("pool"))
	}
	var vmids []int
	if all {
		excluded := map[string]bool{}
		for _, id := range splitList(c.str("exclude")) {
			excluded[id] = true
		}
		for id := range st.guests {
			if !excluded[vmidString(id)] {
				vmids = append(vmids, id)
			}
		}
	} else {
		for _, id := range splitList(c.str("vmid")) {
			n, _ := strconv.Atoi(id)
			if !slices.Contains(vmids, n) {
				vmids = append(vmids, n)
			}
		}
	}
	slices.Sort(vmids)
	// get_included_guests: guests on other nodes are skipped (logged as
	// "skip external VMs"); a job with none of this node's answers "OK"
	// and forks nothing (pve-manager PVE/API2/VZDump.pm: "silent exit if
	// specified VMs run on other nodes").
	var external []int
	vmids = slices.DeleteFunc(vmids, func(id int) bool {
		if g, ok := st.guests[id]; ok && !st.onNode(g) {
			external = append(external, id)
			return true
		}
		return false
	})
	if len(vmids) == 0 && !all && len(external) > 0 {
		return ok("OK")
	}
	if resp, ok := c.tok.check("/storage/"+storageID, "Datastore.AllocateSpace"); !ok {
		return resp
	}

	job := &vzdumpJob{
		st: st, tok: c.tok, vmids: vmids, external: external, all: all, storage: storageID,
		mode: c.str("mode"), compress: c.str("compress"), notes: c.str("notes-template"),
		protected: c.bool("protected"), remove: !c.has("remove") || c.bool("remove"), prune: prune,
		cmdline: c.vzdumpCommandLine(), held: map[int]bool{}, lockErr: map[int]error{},
	}
	if job.mode == "" {
		job.mode = "snapshot"
	}
	var checks []taskCheck
	if !all {
		for _, id := range vmids {
			if _, ok := st.guests[id]; ok {
				checks = append(checks, taskCheck{"/vms/" + vmidString(id), "VM.Backup"})
			}
		}
	}
	checks = append(checks, taskCheck{"/storage/" + storageID, "Datastore.AllocateSpace"})
	id, failVMID := "", 0
	if len(vmids) == 1 {
		id, failVMID = vmidString(vmids[0]), vmids[0]
	}
	dur := st.sim.taskDuration()
	startAt := st.vzdumpLockFree()
	job.waited = startAt.After(st.now)
	intro := []string{"INFO: starting new backup job: " + job.cmdline}
	if job.waited {
		intro = append(intro, "INFO: trying to get global lock - waiting...")
	}
	t := st.startTask(c.tok.id, taskSpec{
		typ: "vzdump", id: id, vmid: failVMID, duration: dur * time.Duration(max(len(vmids), 1)),
		startAt: startAt, checks: checks, cleanup: job.releaseAll,
		intro: intro,
		work:  job.run,
	})
	job.per = dur
	job.schedule(t)
	return ok(t.id)
}

// schedule puts the job's steps on the state's timeline, so that its log
// grows while it runs as vzdump's does: the job's start when the global
// lock is free, then per guest, in its own slot, the guest's lock and the
// lines up to "creating ... archive" at the slot's start, qemu-server's
// progress lines through the slot, and the rest — the archive written,
// the prune, "Finished Backup" — at its end. Each guest is locked only
// during its own slot (locks.go).
func (j *vzdumpJob) schedule(t *task) {
	st, dur := j.st, j.per
	begin := t.end.Add(-dur * time.Duration(max(len(j.vmids), 1)))
	st.schedule(begin, func() {
		if j.live(t) {
			j.open(t)
		}
	})
	for i, vmid := range j.vmids {
		from := begin.Add(dur * time.Duration(i))
		to := from.Add(dur)
		st.schedule(from, func() {
			if t.running {
				j.lock(vmid)
			}
			if j.live(t) {
				j.head(t, vmid, from)
			}
		})
		j.scheduleProgress(t, vmid, from, to)
		st.schedule(to, func() {
			if j.live(t) {
				j.tail(t, vmid, from, to)
			}
			j.release(vmid)
		})
	}
}

// live reports whether the job's steps still run: the task runs and will
// do its work (no injected failure, no failed start, no privilege its
// worker lacks — those end it with their error, as finish decides).
func (j *vzdumpJob) live(t *task) bool {
	return t.running && t.injected == "" && t.startErr == nil && j.st.denied(t.checks) == "" && j.fatal == nil
}

// vzdumpLockFree is when the node's global vzdump lock comes free: when
// the last vzdump worker still running (or waiting for it) ends. A job
// stopped early frees it at once.
func (st *state) vzdumpLockFree() time.Time {
	free := st.now
	for _, t := range st.tasks.active {
		if t.upid.Type == "vzdump" && t.node == st.current() && t.end.After(free) {
			free = t.end
		}
	}
	return free
}

// vzdumpJob is one vzdump worker's plan.
type vzdumpJob struct {
	st        *state
	tok       *token
	vmids     []int
	external  []int // guests named that are on other nodes, skipped
	all       bool
	storage   string
	mode      string
	compress  string
	notes     string
	protected bool
	remove    bool
	prune     map[string]string
	cmdline   string
	held      map[int]bool  // guests whose backup lock this job holds
	lockErr   map[int]error // guests whose lock_vm failed: locked by someone else
	waited    bool
	per       time.Duration
	fatal     error              // the job's setup failed (storage): no guest is backed up
	storageOf *storage           // the target, once open found it usable
	slots     map[int]*guestSlot // per guest, what head found for tail
	errors    int                // guests whose backup failed
}

// guestSlot is one guest's backup between its head and its tail.
type guestSlot struct {
	g                    *guest
	err                  error // the backup failed at its head
	mode                 string
	pbs                  bool
	disks                []string
	name, format, target string
}

// skips reports whether an all=1 job leaves vmid out: a guest the token
// may not back up is skipped silently (PVE/VZDump.pm exec_backup).
func (j *vzdumpJob) skips(vmid int) bool {
	id := "/vms/" + vmidString(vmid)
	return j.all && (!j.tok.has(id, "VM.Backup") || j.st.denied([]taskCheck{{id, "VM.Backup"}}) != "")
}

// lock is lock_vm as the job reaches guest vmid: set_lock 'backup', which
// fails when the guest holds another lock; that guest's backup then fails
// with the error.
func (j *vzdumpJob) lock(vmid int) {
	g, ok := j.st.guests[vmid]
	if !ok || j.skips(vmid) {
		return
	}
	if !j.st.onNode(g) { // migrated away before its slot
		j.lockErr[vmid] = j.st.missing(g.kind, vmid)
		return
	}
	if err := checkLock(g); err != nil {
		j.lockErr[vmid] = err
		return
	}
	g.conf["lock"] = "backup"
	j.held[vmid] = true
}

func (j *vzdumpJob) release(vmid int) {
	if g, ok := j.st.guests[vmid]; ok && j.held[vmid] && g.lock() == "backup" {
		delete(g.conf, "lock")
	}
	delete(j.held, vmid)
}

func (j *vzdumpJob) releaseAll() {
	for id := range j.held {
		j.release(id)
	}
}

// open is the job's start, once it holds the global lock: the storage
// must be active and take backups, or the job fails before any guest.
func (j *vzdumpJob) open(t *task) {
	st := j.st
	if j.waited {
		t.logf("INFO: got global lock")
	}
	if len(j.external) > 0 {
		ids := make([]string, len(j.external))
		for i, id := range j.external {
			ids[i] = vmidString(id)
		}
		t.logf("INFO: skip external VMs: %s", strings.Join(ids, ", "))
	}
	s, err := st.storage(j.storage)
	switch {
	case err != nil:
		j.fatal = failf("could not activate storage '%s': %s", j.storage, err)
	case st.activate(s) != nil:
		j.fatal = failf("could not activate storage '%s': %s", j.storage, st.activate(s))
	case !s.supports("backup"):
		j.fatal = failf("could not get storage information for '%s': can't use storage '%s' for backups - wrong content type", j.storage, j.storage)
	default:
		j.storageOf = s
	}
}

// run is the worker's end: every guest's slot has run (schedule).
func (j *vzdumpJob) run(t *task) error {
	defer j.releaseAll()
	if j.fatal != nil {
		return j.fatal
	}
	if j.errors > 0 {
		t.logf("INFO: Backup job finished with errors")
		return failf("job errors")
	}
	t.logf("INFO: Backup job finished successfully")
	return nil
}

// head is exec_backup_task for one guest up to the archive it starts
// writing: a container's tar or a VM's vma archive on a file storage, or a
// snapshot on a Proxmox Backup Server (pve-manager PVE/VZDump.pm: the PBS
// target is TYPE/VMID/TIME with the backup time in UTC, file names use
// local time; qemu-server PVE/VZDump/QemuServer.pm and pve-container
// PVE/VZDump/LXC.pm for the kinds' own lines).
func (j *vzdumpJob) head(t *task, vmid int, start time.Time) {
	st, s := j.st, j.storageOf
	if j.skips(vmid) || s == nil {
		return
	}
	sl := &guestSlot{}
	if j.slots == nil {
		j.slots = map[int]*guestSlot{}
	}
	j.slots[vmid] = sl
	g, ok := st.guests[vmid]
	kind := kindLXC
	if ok {
		kind = g.kind
	}
	t.logf("INFO: Starting Backup of VM %d (%s)", vmid, kind)
	t.logf("INFO: Backup started at %s", start.Format("2006-01-02 15:04:05"))
	if !ok {
		sl.err = failf("unable to find VM '%d'", vmid)
		return
	}
	sl.g = g
	status := "stopped"
	if g.running {
		status = "running"
	}
	t.logf("INFO: status = %s", status)
	if err := j.lockErr[vmid]; err != nil {
		sl.err = err
		return
	}
	mode := j.mode
	if !g.running && !g.isQemu() {
		mode = "stop"
	}
	sl.mode, sl.pbs, sl.disks = mode, s.typ == "pbs", st.guestVolumes(g)
	if g.isQemu() {
		t.logf("INFO: VM Name: %s", g.name())
		for _, d := range st.guestDisks(g) {
			t.logf("INFO: include disk '%s' '%s' %s", strings.TrimPrefix(driveOf(g, d.volid), "drive-"), d.volid, formatSize(d.size))
		}
	} else {
		t.logf("INFO: CT Name: %s", g.name())
		t.logf("INFO: including mount point rootfs ('/') in backup")
	}
	t.logf("INFO: backup mode: %s", mode)
	t.logf("INFO: ionice priority: 7")
	if mode == "snapshot" && !g.isQemu() {
		t.logf("INFO: create storage snapshot 'vzdump'")
		for _, vol := range sl.disks {
			t.logf("  Logical volume \"snap_%s_vzdump\" created.", volumeName(vol))
		}
	}
	switch {
	case sl.pbs:
		btype := "ct"
		if g.isQemu() {
			btype = "vm"
		}
		sl.name = fmt.Sprintf("%s/%d/%s", btype, vmid, start.UTC().Format("2006-01-02T15:04:05Z"))
		sl.format, sl.target = "pbs-"+btype, sl.name
		t.logf("INFO: creating Proxmox Backup Server archive '%s'", sl.target)
	case g.isQemu():
		sl.name = fmt.Sprintf("vzdump-qemu-%d-%s.vma%s", vmid, start.Format("2006_01_02-15_04_05"), compression[j.compress])
		sl.format, sl.target = "vma"+compression[j.compress], s.path+"/dump/"+sl.name
		t.logf("INFO: creating vzdump archive '%s'", sl.target)
	default:
		sl.name = fmt.Sprintf("vzdump-lxc-%d-%s.tar%s", vmid, start.Format("2006_01_02-15_04_05"), compression[j.compress])
		sl.format, sl.target = "tar"+compression[j.compress], s.path+"/dump/"+sl.name
		t.logf("INFO: creating vzdump archive '%s'", sl.target)
	}
	if g.isQemu() {
		if !g.running {
			t.logf("INFO: starting kvm to execute backup task")
		} else if g.conf["agent"] != "" && g.conf["agent"] != "0" {
			t.logf("INFO: issuing guest-agent 'fs-freeze' command")
		}
		t.logf("INFO: started backup task '%08x-6b2e-4c1d-9f3a-%012x'", vmid, start.Unix())
		if g.running {
			if g.conf["agent"] != "" && g.conf["agent"] != "0" {
				t.logf("INFO: issuing guest-agent 'fs-thaw' command")
			}
			t.logf("INFO: resuming VM again")
		}
	}
}

// scheduleProgress logs a VM's backup progress through its slot as
// qemu-server's query_backup_status_loop does: a status line whenever the
// percentage has changed and more than two seconds passed since the last
// one, the 100% line at the end (tail). Containers' tar and PBS uploads
// print nothing until they finish.
func (j *vzdumpJob) scheduleProgress(t *task, vmid int, from, to time.Time) {
	step := max(3*time.Second, to.Sub(from)/100)
	last := -1
	for at := from.Add(step); at.Before(to); at = at.Add(step) {
		j.st.schedule(at, func() {
			sl := j.slots[vmid]
			if !j.live(t) || sl == nil || sl.err != nil || !sl.g.isQemu() {
				return
			}
			total := sl.g.maxDisk()
			elapsed := at.Sub(from)
			pct := int(elapsed * 100 / to.Sub(from))
			if pct == last || pct >= 100 {
				return
			}
			last = pct
			done := total / 100 * uint64(pct)
			secs := max(to.Sub(from).Seconds(), 1)
			t.logf("INFO: %3d%% (%s of %s) in %s, read: %s/s, write: %s/s", pct, vzdumpFormatSizeIEC(done), vzdumpFormatSizeIEC(total),
				renderDuration(elapsed), vzdumpFormatSizeIEC(uint64(float64(total)/secs)), vzdumpFormatSizeIEC(uint64(float64(guestUsedBytes(sl.g))/secs)))
		})
	}
}

// renderDuration is pve-common PVE::Tools::render_duration: "1h 2m 5s".
func renderDuration(d time.Duration) string {
	rest := int64(d.Round(time.Second) / time.Second)
	if rest <= 0 {
		return "0s"
	}
	var parts []string
	for _, u := range []struct {
		unit string
		secs int64
	}{{"w", 7 * 24 * 3600}, {"d", 24 * 3600}, {"h", 3600}, {"m", 60}, {"s", 1}} {
		if v := rest / u.secs; v > 0 {
			parts = append(parts, fmt.Sprintf("%d%s", v, u.unit))
			rest -= v * u.secs
		}
	}
	return strings.Join(parts, " ")
}

// tail is the rest of one guest's backup, at the end of its slot: the
// archive written (or the disk full), the notes, the prune, the cleanup.
func (j *vzdumpJob) tail(t *task, vmid int, start, end time.Time) {
	sl := j.slots[vmid]
	if sl == nil {
		return // skipped, or the job never opened
	}
	if err := j.finishBackup(t, sl, vmid, start, end); err != nil {
		t.logf("ERROR: Backup of VM %d failed - %s", vmid, err)
		t.logf("INFO: Failed at %s", end.Format("2006-01-02 15:04:05"))
		j.errors++
	}
}

func (j *vzdumpJob) finishBackup(t *task, sl *guestSlot, vmid int, start, end time.Time) error {
	if sl.err != nil {
		return sl.err
	}
	st, s, g := j.st, j.storageOf, sl.g
	mode, pbs, disks, name, format, target := sl.mode, sl.pbs, sl.disks, sl.name, sl.format, sl.target
	size := archiveSize(g, j.compress)
	if pbs {
		size = guestUsedBytes(g)
	}
	use := st.useHere(s) // a local storage: this node's own disk
	if size > use.avail() {
		t.logf("INFO: %s", noSpaceLine(j.compress))
		if mode == "snapshot" && !g.isQemu() {
			j.cleanupSnapshot(t, disks)
		}
		if g.isQemu() {
			return failf("job failed with err -28 - No space left on device")
		}
		return failf("command 'set -o pipefail && lxc-usernsexec -m u:0:100000:65536 -m g:0:100000:65536 -- tar cpf - --totals --one-file-system -p --sparse --numeric-owner --acls --xattrs '--directory=/mnt/vzsnap0' ./ | %s >%s.dat' failed: exit code 1",
			compressorCmd(j.compress), strings.TrimSuffix(target, ".tar"+compression[j.compress])+".tar")
	}
	used := guestUsedBytes(g)
	secs := max(end.Sub(start).Seconds(), 1)
	switch {
	case g.isQemu():
		total := g.maxDisk()
		t.logf("INFO: 100%% (%s of %s) in %s, read: %s/s, write: %s/s", vzdumpFormatSizeIEC(total), vzdumpFormatSizeIEC(total),
			renderDuration(end.Sub(start)), vzdumpFormatSizeIEC(uint64(float64(total)/secs)), vzdumpFormatSizeIEC(uint64(float64(used)/secs)))
		if total > used {
			t.logf("INFO: backup is sparse: %s (%d%%) total zero data", vzdumpFormatSizeIEC(total-used), (total-used)*100/max(total, 1))
		}
		t.logf("INFO: transferred %s in %d seconds (%s/s)", vzdumpFormatSizeIEC(total), int(secs), vzdumpFormatSizeIEC(uint64(float64(total)/secs)))
		if !g.running {
			t.logf("INFO: stopping kvm after backup task")
		}
	case pbs:
		t.logf("INFO: Starting backup: %s", name)
		t.logf("INFO: Client name: %s", st.current().name)
		t.logf("INFO: Starting backup protocol: %s", start.Format("Mon Jan _2 15:04:05 2006"))
		t.logf("INFO: Upload directory '/mnt/vzsnap0' to '%s' as root.pxar.didx", s.pbsRepository())
		t.logf("INFO: root.pxar: had to backup %s of %s (compressed %s) in %.2fs", vzdumpFormatSizeIEC(used), vzdumpFormatSizeIEC(used),
			vzdumpFormatSizeIEC(archiveSize(g, "zstd")), secs)
		t.logf("INFO: Duration: %.2fs", secs)
		t.logf("INFO: End Time: %s", end.Format("Mon Jan _2 15:04:05 2006"))
	default:
		t.logf("INFO: Total bytes written: %d (%.1fGiB, %dMiB/s)", used, float64(used)/gib, int(float64(used)/mib/secs))
	}
	if !pbs {
		t.logf("INFO: archive file size: %s", vzdumpFormatSize(size))
	}
	vol := &volume{
		node:  st.current().name,
		volid: s.name + ":backup/" + name, content: "backup", format: format,
		size: size, ctime: start.Truncate(time.Second), vmid: vmid, subtype: g.kind,
		config: snapshotCopy(g.conf), description: g.description, lxc: slices.Clone(g.lxc),
	}
	// vzdump renames its .dat file over an archive of the same second, so
	// the storage never lists one name twice.
	if i := slices.IndexFunc(s.volumes, func(v *volume) bool { return v.volid == vol.volid }); i >= 0 {
		st.useOn(s, s.volumes[i].node).release(s.volumes[i].size)
		s.volumes = slices.Delete(s.volumes, i, i+1)
	}
	s.volumes = append(s.volumes, vol)
	use.claim(size)
	if pbs && s.verifyNew != "" {
		vol.verification, vol.verifyUPID = s.verifyNew, st.verifyUPID()
	}
	if j.notes != "" {
		t.logf("INFO: adding notes to backup")
		vol.notes = generateNotes(j.notes, st.current().name, g)
	}
	if j.protected {
		t.logf("INFO: marking backup as protected")
		vol.protected = true
	}
	j.pruneOld(t, s, vmid, g.kind)
	if mode == "snapshot" && !g.isQemu() {
		j.cleanupSnapshot(t, disks)
	}
	d := end.Sub(start).Truncate(time.Second)
	t.logf("INFO: Finished Backup of VM %d (%02d:%02d:%02d)", vmid, int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	t.logf("INFO: Backup finished at %s", end.Format("2006-01-02 15:04:05"))
	return nil
}

func (j *vzdumpJob) cleanupSnapshot(t *task, disks []string) {
	t.logf("INFO: cleanup temporary 'vzdump' snapshot")
	for _, vol := range disks {
		t.logf("  Logical volume \"snap_%s_vzdump\" successfully removed.", volumeName(vol))
	}
}

func compressorCmd(compress string) string {
	switch compression[compress] {
	case ".zst":
		return "zstd '--threads=1'"
	case ".gz":
		return "gzip"
	case ".lzo":
		return "lzop"
	}
	return "cat"
}

// noSpaceLine is what the compressor (or tar) prints when the disk fills.
func noSpaceLine(compress string) string {
	switch compression[compress] {
	case ".zst":
		return "zstd: error 70 : Write error : cannot write block : No space left on device"
	case ".gz":
		return "gzip: stdout: No space left on device"
	case ".lzo":
		return "lzop: No space left on device: <stdout>"
	}
	return "tar: -: Cannot write: No space left on device"
}

// pruneOld applies the retention (the request's prune-backups, else the
// storage's) to the guest's archives when remove is on, like
// PVE::Storage prune_backups and prune_mark_backup_group.
func (j *vzdumpJob) pruneOld(t *task, s *storage, vmid int, kind string) {
	keep := j.prune
	if keep == nil && s.prune != "" {
		keep, _ = parsePropertyString("prune-backups", namedPropertyFormats["prune-backups"], s.prune)
	}
	if !j.remove || keep == nil || keep["keep-all"] == "1" || !anyPositive(keep) {
		return
	}
	var keys []string
	for k := range keep {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+keep[k])
	}
	t.logf("INFO: prune older backups with retention: %s", strings.Join(parts, ", "))
	// A backup group is one guest's archives of one kind (Plugin.pm
	// prune_backups groups by "$type/$vmid"; PBS by its backup group).
	var group []*volume
	for _, v := range s.volumes {
		if v.content != "backup" || v.vmid != vmid || v.subtype != kind {
			continue
		}
		if vzdumpNameRe.MatchString(baseName(v.volid)) || pbsNameRe.MatchString(volumeName(v.volid)) {
			group = append(group, v)
		}
	}
	if s.typ == "pbs" {
		btype := "ct"
		if kind == kindQemu {
			btype = "vm"
		}
		t.logf("INFO: running 'proxmox-backup-client prune' for '%s/%d'", btype, vmid)
	}
	marks := pruneMarks(group, keep, time.Local)
	pruned := 0
	for _, v := range group {
		if marks[v] != "remove" {
			continue
		}
		t.logf("INFO: removing backup '%s'", v.volid)
		if _, i := j.st.findVolume(v.volid); i >= 0 {
			s.volumes = slices.Delete(s.volumes, i, i+1)
			j.st.useOn(s, v.node).release(v.size)
		}
		pruned++
	}
	extra := ""
	if pruned > 0 {
		extra = " not covered by keep-retention policy"
	}
	t.logf("INFO: pruned %d backup(s)%s", pruned, extra)
}

func anyPositive(keep map[string]string) bool {
	for k, v := range keep {
		if n, _ := strconv.Atoi(v); k != "keep-all" && n > 0 {
			return true
		}
	}
	return false
}

// pruneMarks is prune_mark_backup_group: newest first, each keep-* option
// keeps the newest archive of its first N distinct periods; protected
// archives are always kept; the rest are removed.
// loc is the host's time zone (time.Local).
func pruneMarks(group []*volume, keep map[string]string, loc *time.Location) map[*volume]string {
	marks := map[*volume]string{}
	list := slices.Clone(group)
	slices.SortStableFunc(list, func(a, b *volume) int { return b.ctime.Compare(a.ctime) })
	for _, v := range list {
		if v.protected {
			marks[v] = "protected"
		}
	}
	periods := []struct {
		opt string
		id  func(time.Time) string
	}{
		{"keep-last", func(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }},
		// Periods are read in the host's local time (Perl's localtime in
		// prune_mark_backup_group), whatever zone a ctime was made in.
		{"keep-hourly", func(t time.Time) string { return t.In(loc).Format("2006-01-02T15") }},
		{"keep-daily", func(t time.Time) string { return t.In(loc).Format("2006-01-02") }},
		{"keep-weekly", func(t time.Time) string { y, w := t.In(loc).ISOWeek(); return fmt.Sprintf("%d/%d", w, y) }},
		{"keep-monthly", func(t time.Time) string { return t.In(loc).Format("2006-01") }},
		{"keep-yearly", func(t time.Time) string { return t.In(loc).Format("2006") }},
	}
	for _, p := range periods {
		n, _ := strconv.Atoi(keep[p.opt])
		if n <= 0 {
			continue
		}
		already, fresh := map[string]bool{}, map[string]bool{}
		for _, v := range list {
			if marks[v] == "keep" {
				already[p.id(v.ctime)] = true
			}
		}
		for _, v := range list {
			id := p.id(v.ctime)
			if marks[v] != "" || already[id] {
				continue
			}
			if !fresh[id] {
				if len(fresh) >= n {
					break
				}
				fresh[id] = true
				marks[v] = "keep"
			} else {
				marks[v] = "remove"
			}
		}
	}
	for _, v := range list {
		if marks[v] == "" {
			marks[v] = "remove"
		}
	}
	return marks
}
