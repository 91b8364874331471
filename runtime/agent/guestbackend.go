package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/schedule"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// guestBackend answers the guest API. Every method acts for guest vmid
// only, the one the request's token belongs to.
type guestBackend struct{ a *Agent }

var _ guestapi.Backend = guestBackend{}

// snapshotLine is what vzdump logs once a container's storage snapshot
// exists (pve-container src/PVE/VZDump/LXC.pm, snapshot():
// $self->loginfo("create storage snapshot '$snapname'")); the platform
// validated it on PVE 9.2.2. A VM's backup has no such line (QEMU backs
// up from a live block job), so it reaches done without snapshotted.
const snapshotLine = "create storage snapshot"

func (b guestBackend) GuestByTokenHash(_ context.Context, h [32]byte) (int, bool, error) {
	g := b.a.guest
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.tokens[h]
	return v, ok, nil
}

func (b guestBackend) AdoptTokenHash(ctx context.Context, h [32]byte) (int, bool, error) {
	return b.a.adoptToken(ctx, h)
}

func (b guestBackend) Storage(ctx context.Context, vmid int) (guestapi.Storage, error) {
	g, err := b.a.guestOf(ctx, vmid)
	if err != nil {
		return guestapi.Storage{}, err
	}
	px := b.a.guest.cfg.Proxmox
	conf, err := px.GuestConfig(ctx, g.Type, vmid)
	if err != nil {
		return guestapi.Storage{}, fmt.Errorf("guest %d config: %w", vmid, err)
	}
	st, err := px.GuestStatus(ctx, g.Type, vmid)
	if err != nil {
		return guestapi.Storage{}, fmt.Errorf("guest %d status: %w", vmid, err)
	}
	out := guestapi.Storage{VMID: vmid, Mounts: []guestapi.Mount{}}
	root := mountOf("rootfs", conf.RootFS)
	root.Backup, root.MountPoint, root.Used = true, "/", st.Disk
	out.Mounts = append(out.Mounts, root)
	keys := make([]string, 0, len(conf.MountPoints))
	for k := range conf.MountPoints {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int {
		a, _ := strconv.Atoi(strings.TrimPrefix(x, "mp"))
		b, _ := strconv.Atoi(strings.TrimPrefix(y, "mp"))
		return a - b
	})
	for _, k := range keys {
		out.Mounts = append(out.Mounts, mountOf(k, conf.MountPoints[k]))
	}
	return out, nil
}

// mountOf describes one mount point without its volume or host path: a
// storage volume names its storage, a bind mount (a host path) names
// none.
func mountOf(key string, mp proxmox.MountPoint) guestapi.Mount {
	m := guestapi.Mount{Key: key, MountPoint: mp.Path, Backup: mp.Options["backup"] == "1", ReadOnly: mp.Options["ro"] == "1"}
	if st, _, ok := strings.Cut(mp.Volume, ":"); ok && !strings.HasPrefix(mp.Volume, "/") {
		m.Storage = st
	}
	m.Size = parseSize(mp.Size)
	return m
}

// parseSize reads PVE's disk size ("8G", "512M", "1T", bytes without a
// unit); 0 when unreadable.
func parseSize(s string) uint64 {
	if s == "" {
		return 0
	}
	mult := uint64(1)
	switch s[len(s)-1] {
	case 'K', 'k':
		mult = 1 << 10
	case 'M', 'm':
		mult = 1 << 20
	case 'G', 'g':
		mult = 1 << 30
	case 'T', 't':
		mult = 1 << 40
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0
	}
	return uint64(f * float64(mult))
}

func (b guestBackend) Status(ctx context.Context, vmid int) (guestapi.GuestStatus, error) {
	g, err := b.a.guestOf(ctx, vmid)
	if err != nil {
		return guestapi.GuestStatus{}, err
	}
	st, err := b.a.guest.cfg.Proxmox.GuestStatus(ctx, g.Type, vmid)
	if err != nil {
		return guestapi.GuestStatus{}, fmt.Errorf("guest %d status: %w", vmid, err)
	}
	return guestapi.GuestStatus{VMID: vmid, Name: st.Name, Type: string(g.Type), Status: st.Status, Lock: st.Lock,
		Uptime: st.Uptime, CPUs: st.CPUs, CPU: st.CPU, Mem: st.Mem, MaxMem: st.MaxMem, Disk: st.Disk, MaxDisk: st.MaxDisk}, nil
}

// Health reads the monitors (builtins.ReadHealth, the monitors' own
// code) and keeps what is the host's: no guest appears in it, and disks
// are named, not pathed.
func (b guestBackend) Health(ctx context.Context) (guestapi.Health, error) {
	env := b.a.cfg.Engine.Env // a copy: this reading's own context
	env.Context, env.Logger, env.Gauges, env.Locks, env.Desired, env.Notify = ctx, b.a.log.With("part", "guest-api"), nil, nil, nil, nil
	h := builtins.ReadHealth(ctx, &env)
	out := guestapi.Health{Storage: []guestapi.StorageHealth{}, Disks: []guestapi.DiskHealth{}, Sensors: []guestapi.SensorHealth{}}
	if n := h.Node; n != nil {
		out.Node = &guestapi.NodeHealth{Uptime: n.Uptime, CPU: n.CPU, LoadAvg: n.LoadAvg[:], MemUsed: n.Memory.Used, MemTotal: n.Memory.Total}
	}
	for _, s := range h.Storage {
		out.Storage = append(out.Storage, guestapi.StorageHealth{Storage: s.Storage, Type: s.Type, Active: s.Active,
			Total: s.Total, Used: s.Used, Avail: s.Avail, UsedPct: s.UsedPercent()})
	}
	for _, d := range h.Disks {
		out.Disks = append(out.Disks, guestapi.DiskHealth{Disk: filepath.Base(d.Device), Model: d.Model, Healthy: d.Passed, Temperature: d.Temperature})
	}
	for _, s := range h.Sensors {
		out.Sensors = append(out.Sensors, guestapi.SensorHealth{Name: s.Label, Value: s.Celsius})
	}
	for name := range h.Errors {
		if name == "tunnel" {
			continue
		}
		if out.Errors == nil {
			out.Errors = map[string]string{}
		}
		out.Errors[name] = "unreadable" // the reason may name host paths; the agent's log has it
	}
	return out, nil
}

// startGuest starts trigger for guest vmid through the one start path.
func (b guestBackend) startGuest(ctx context.Context, vmid int, trigger string, req guestapi.JobRequest) (store.Run, error) {
	if _, err := b.a.guestOf(ctx, vmid); err != nil {
		return store.Run{}, err
	}
	params := make(map[string]json.RawMessage, len(req.Params))
	for k, v := range req.Params {
		raw, err := json.Marshal(v)
		if err != nil {
			return store.Run{}, &guestapi.BadRequestError{Field: "params." + k, Msg: "not a JSON value"}
		}
		params[k] = raw
	}
	st, err := b.a.start(ctx, startRequest{Source: store.SourceGuest, Key: req.RequestID, Trigger: trigger,
		Params: params, Guest: vmid, Attrs: []any{"guest", vmid}})
	if err != nil {
		var r *startRefusal
		if !errors.As(err, &r) {
			return store.Run{}, err
		}
		switch r.Reason {
		case refusedParams:
			return store.Run{}, &guestapi.BadRequestError{Field: "params." + r.Param, Msg: r.Msg}
		case refusedUnknown:
			return store.Run{}, fmt.Errorf("%s: %w", r.Msg, guestapi.ErrNotServed)
		case refusedQueueFull:
			return store.Run{}, fmt.Errorf("%s: %w", r.Error(), guestapi.ErrTooMany)
		default:
			return store.Run{}, fmt.Errorf("%s: %w", r.Error(), guestapi.ErrUnavailable)
		}
	}
	if len(st.Runs) == 0 {
		return store.Run{}, errors.New("the start path recorded no run")
	}
	for _, run := range st.Runs {
		// An id another guest used (or any run not of this guest) is not
		// this guest's to follow.
		if v, ok := runGuest(run.Params); !ok || v != vmid || run.Source != store.SourceGuest {
			return store.Run{}, fmt.Errorf("request id %q belongs to another guest's job: %w", req.RequestID, guestapi.ErrForbidden)
		}
	}
	if st.Existing {
		b.a.log.Info("guest API: a repeated request id answers its job", "vmid", vmid, "run", st.Runs[0].ID)
	}
	return st.Runs[0], nil
}

func (b guestBackend) StartBackup(ctx context.Context, vmid int, req guestapi.JobRequest) (guestapi.BackupStatus, error) {
	run, err := b.startGuest(ctx, vmid, GuestTriggerBackup, req)
	if err != nil {
		return guestapi.BackupStatus{}, err
	}
	return b.backupStatus(ctx, vmid, run), nil
}

func (b guestBackend) Reboot(ctx context.Context, vmid int, req guestapi.JobRequest) (guestapi.Job, error) {
	run, err := b.startGuest(ctx, vmid, GuestTriggerReboot, req)
	if err != nil {
		return guestapi.Job{}, err
	}
	st := b.backupStatus(ctx, vmid, run)
	return guestapi.Job{VMID: vmid, JobID: run.ID, Phase: st.Phase, RequestID: run.Key, Error: st.Error}, nil
}

func (b guestBackend) BackupStatus(ctx context.Context, vmid int, jobID string) (guestapi.BackupStatus, error) {
	if jobID != "" {
		run, err := b.a.store.Get(ctx, jobID)
		if errors.Is(err, store.ErrNotFound) {
			return guestapi.BackupStatus{}, fmt.Errorf("job %s: %w", jobID, guestapi.ErrNotFound)
		}
		if err != nil {
			return guestapi.BackupStatus{}, err
		}
		if v, ok := runGuest(run.Params); !ok || v != vmid || run.Source != store.SourceGuest {
			return guestapi.BackupStatus{}, fmt.Errorf("job %s is not guest %d's: %w", jobID, vmid, guestapi.ErrForbidden)
		}
		return b.backupStatus(ctx, vmid, run), nil
	}
	run, ok, err := b.latest(ctx, vmid)
	if err != nil || !ok {
		return guestapi.BackupStatus{VMID: vmid, Phase: guestapi.PhaseIdle}, err
	}
	return b.backupStatus(ctx, vmid, run), nil
}

// backupPlaybooks are the serving playbooks that offer guests a backup.
func (b guestBackend) backupPlaybooks() []*engine.Playbook {
	var out []*engine.Playbook
	for _, pb := range b.a.registry.Playbooks() {
		if slices.Contains(pb.Decl.GuestTriggers, GuestTriggerBackup) {
			out = append(out, pb)
		}
	}
	return out
}

// latest is guest vmid's newest backup job.
func (b guestBackend) latest(ctx context.Context, vmid int) (store.Run, bool, error) {
	for _, pb := range b.backupPlaybooks() {
		before := ""
		for range 10 { // the newest 1,000 guest runs of the playbook
			runs, err := b.a.store.List(ctx, store.Filter{Playbook: pb.Name, Source: store.SourceGuest, Before: before, Limit: 100})
			if err != nil {
				return store.Run{}, false, err
			}
			for _, r := range runs {
				if v, ok := runGuest(r.Params); ok && v == vmid {
					full, err := b.a.store.Get(ctx, r.ID) // with its tasks
					return full, err == nil, err
				}
			}
			if len(runs) < 100 {
				break
			}
			before = runs[len(runs)-1].ID
		}
	}
	return store.Run{}, false, nil
}

// backupStatus is a guest run's phase: queued, running, snapshotted
// (vzdump's log says the storage snapshot exists), done or failed.
func (b guestBackend) backupStatus(ctx context.Context, vmid int, run store.Run) guestapi.BackupStatus {
	out := guestapi.BackupStatus{VMID: vmid, JobID: run.ID, RequestID: run.Key, Created: timePtr(run.Created),
		Started: timePtr(run.Started), Ended: timePtr(run.Ended)}
	switch {
	case run.Status == runstate.Queued:
		out.Phase = guestapi.PhaseQueued
	case run.Status == runstate.Succeeded:
		out.Phase = guestapi.PhaseDone
		out.Archive = archiveOf(run.Result, vmid)
	case run.Status.Terminal():
		out.Phase, out.Error = guestapi.PhaseFailed, run.Error
		if out.Error == "" {
			out.Error = "the backup ended " + string(run.Status)
		}
	default:
		out.Phase = guestapi.PhaseRunning
	}
	if at, ok := b.snapshotted(ctx, run); ok {
		out.Snapshotted = &at
		if out.Phase == guestapi.PhaseRunning {
			out.Phase = guestapi.PhaseSnapshotted
		}
	}
	return out
}

// snapshotted reports when run's vzdump task logged its storage
// snapshot, as the run's log shows it (remembered once seen). A guest
// asking follows the run (follow.go): its waits then read the vzdump's
// log into the run's log, so the guest API reads no task log itself, and
// a run nobody follows reads none at all.
func (b guestBackend) snapshotted(ctx context.Context, run store.Run) (time.Time, bool) {
	g := b.a.guest
	g.mu.Lock()
	at, ok := g.snaps[run.ID]
	after := g.seen[run.ID]
	g.mu.Unlock()
	if ok || run.Status == runstate.Queued {
		return at, ok
	}
	if !run.Status.Terminal() {
		b.a.followRead(run.ID)
	}
	for {
		lines, err := b.a.store.Logs(ctx, run.ID, after, guestLogPage)
		if err != nil {
			b.a.log.Warn("guest API: reading a run's log failed", "run", run.ID, "err", err)
			return time.Time{}, false
		}
		for _, l := range lines {
			after = l.Seq
			if !strings.Contains(l.Msg, snapshotLine) || !vzdumpLine(l.Attrs) {
				continue
			}
			at := l.Time.UTC()
			g.mu.Lock()
			if len(g.snaps) > 10000 {
				clear(g.snaps)
			}
			g.snaps[run.ID] = at
			delete(g.seen, run.ID)
			g.mu.Unlock()
			return at, true
		}
		if len(lines) < guestLogPage {
			break
		}
	}
	g.mu.Lock()
	if run.Status.Terminal() {
		delete(g.seen, run.ID)
	} else {
		if len(g.seen) > 10000 {
			clear(g.seen)
		}
		g.seen[run.ID] = after
	}
	g.mu.Unlock()
	return time.Time{}, false
}

// guestLogPage is how many of a run's log lines one look reads.
const guestLogPage = 500

// vzdumpLine reports whether a run log line's attributes make it a line of
// a vzdump task's log (builtins' progress records: upid, task_line).
func vzdumpLine(attrs json.RawMessage) bool {
	var a struct {
		UPID string `json:"upid"`
		Line *int   `json:"task_line"`
	}
	return json.Unmarshal(attrs, &a) == nil && a.Line != nil && strings.Contains(a.UPID, ":vzdump:")
}

// archiveOf is the archive a backup result names for vmid, by the
// shipped backup playbook's result shape.
func archiveOf(result json.RawMessage, vmid int) string {
	var r struct {
		Guests []struct {
			VMID    int    `json:"vmid"`
			Archive string `json:"archive"`
		} `json:"guests"`
	}
	if json.Unmarshal(result, &r) != nil {
		return ""
	}
	for _, g := range r.Guests {
		if g.VMID == vmid {
			return g.Archive
		}
	}
	return ""
}

// BackupDue: a backup is due when the guest has never been backed up, or
// its last successful backup is older than the backup timer's latest
// tick — unless one of its own backups is queued or under way.
func (b guestBackend) BackupDue(ctx context.Context, vmid int) (guestapi.Due, error) {
	out := guestapi.Due{VMID: vmid}
	pbs := b.backupPlaybooks()
	if len(pbs) == 0 {
		out.Reason = "no playbook offers guests a backup (guest_triggers)"
		return out, nil
	}
	if run, ok, err := b.latest(ctx, vmid); err != nil {
		return out, err
	} else if ok && !run.Status.Terminal() {
		out.Reason = "a backup of this guest is under way (job " + run.ID + ")"
		return out, nil
	}
	idx, err := b.a.store.GuestIndex(ctx)
	if err != nil {
		return out, err
	}
	last := idx[vmid][store.GuestBackup].LastOK.At
	out.LastBackup = timePtr(last)
	pb := pbs[0]
	out.Schedule = pb.Decl.Schedule
	now := time.Now()
	var tick time.Time
	if pb.Decl.Schedule != "" {
		if spec, err := schedule.ParseSpec(pb.Decl.Schedule, ""); err == nil {
			tick = spec.Prev(now)
			next := spec.Next(now)
			out.NextRun = &next
		}
	}
	switch {
	case last.IsZero():
		out.Due, out.Reason = true, "this guest has no successful backup yet"
	case tick.IsZero():
		out.Reason = "backed up at " + last.UTC().Format(time.RFC3339) + "; the backup playbook has no timer"
	case last.Before(tick):
		out.Due, out.Reason = true, "the last successful backup ("+last.UTC().Format(time.RFC3339)+") is older than the scheduled backup time "+tick.UTC().Format(time.RFC3339)
	default:
		out.Reason = "backed up at " + last.UTC().Format(time.RFC3339) + ", after the scheduled backup time " + tick.UTC().Format(time.RFC3339)
	}
	return out, nil
}

func (b guestBackend) RestoreTest(ctx context.Context, vmid int) (guestapi.RestoreTest, error) {
	if _, err := b.a.guestOf(ctx, vmid); err != nil {
		return guestapi.RestoreTest{}, err
	}
	idx, err := b.a.store.GuestIndex(ctx)
	if err != nil {
		return guestapi.RestoreTest{}, err
	}
	e, ok := idx[vmid][store.GuestRestoreDrill]
	out := guestapi.RestoreTest{VMID: vmid, Tested: ok && !e.Last.At.IsZero()}
	if out.Tested {
		out.OK, out.At = e.Last.OK, timePtr(e.Last.At)
		out.LastOK = timePtr(e.LastOK.At)
		return out, nil
	}
	// No drill in this agent's run store (the guest migrated here, or
	// another node's agent drilled it): the drills recorded on its
	// archives' notes.
	if st := storageHistory(ctx, b.a.guest.cfg.Proxmox, []int{vmid})[vmid]; st.drilled() {
		out.Tested, out.OK, out.At = true, st.Drill.OK, timePtr(st.Drill.At)
		out.LastOK = timePtr(st.DrillOK.At)
	}
	return out, nil
}
