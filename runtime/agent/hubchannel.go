package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/safety"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// The outbound hub channel, as the agent runs it. runtime/hub/channel owns
// the protocol (report, envelope, desired state, backoff); the agent owns
// what goes into a report and what a new desired state starts:
//
//   - Collect reads the monitors through builtins.ReadHealth (the code
//     monitor.all() runs), this node's guests and their configuration, the
//     per-guest index and the runs that ended since the last accepted
//     report.
//   - A new desired-state generation starts the playbooks that answer the
//     trigger DesiredTrigger (the shipped reconcile.star) through the one
//     start path, with source "desired" and the key "generation-N", so a
//     generation is converged once, across restarts too.
//   - While the hub blocks the host, signed hub triggers are refused
//     (hub.ErrBlocked) and no new desired state is fetched; timers and
//     local work go on.

// DesiredTrigger is the trigger a new desired-state generation fires.
const DesiredTrigger = "desired_state"

// HubConfig configures the outbound hub channel.
type HubConfig struct {
	// Client says how to reach the hub; see channel.Config.
	Client channel.Config
	// MinPoll is the floor of the poll interval; 0 means channel.MinPoll.
	MinPoll time.Duration
	// AgentVersion goes into every report.
	AgentVersion string
	// PlanTimeout bounds one plan job (hubplan.go; config
	// hub.plan_timeout); 0 means DefaultPlanTimeout.
	PlanTimeout time.Duration
}

// hubStateKey is the channel's entry in the store's hub_state.
const hubStateKey = "channel"

// maxReportRuns bounds the runs of one report; the rest wait for the next.
const maxReportRuns = 500

// newHubChannel builds the channel for cfg.Hub.
func (a *Agent) newHubChannel(cfg *HubConfig) error {
	client, err := channel.NewClient(cfg.Client)
	if err != nil {
		return err
	}
	a.hub = &channel.Channel{
		Hub:          client,
		HostID:       cfg.Client.HostID,
		AgentVersion: cfg.AgentVersion,
		Collect:      a.collectReport,
		Store:        hubStateStore{a},
		OnDesired:    a.desiredAccepted,
		OnBlocked:    func(b bool) { a.hubBlocked.Store(b) },
		Jobs:         a.hubJob,
		Plans:        a.hubPlan, // plan jobs: hubplan.go
		MinPoll:      cfg.MinPoll,
		Logger:       a.log.With("part", "hub-channel"),
	}
	a.metrics.registerHub(a.hub.Stats)
	return nil
}

// DesiredState implements builtins.DesiredSource for hub.desired_state().
func (a *Agent) DesiredState() (int64, json.RawMessage) {
	if a.hub == nil {
		return 0, nil
	}
	gen, d := a.hub.Desired()
	if d == nil {
		return gen, nil
	}
	return gen, d.PlaybookJSON() // no retrieval password ever reaches Starlark
}

// desiredGuest is guest vmid of the accepted desired state, or nil.
func (a *Agent) desiredGuest(vmid int) *channel.DesiredGuest {
	if a.hub == nil {
		return nil
	}
	if _, d := a.hub.Desired(); d != nil {
		return d.Guest(vmid)
	}
	return nil
}

// HubStats reports how the hub channel is doing; ok is false without one.
func (a *Agent) HubStats() (channel.Stats, bool) {
	if a.hub == nil {
		return channel.Stats{}, false
	}
	return a.hub.Stats(), true
}

// desiredAccepted starts the convergence of a desired-state generation.
func (a *Agent) desiredAccepted(gen int64, d *channel.DesiredState) {
	key := "generation-" + strconv.FormatInt(gen, 10)
	st, err := a.start(context.Background(), startRequest{
		Source: store.SourceDesired, Key: key, Trigger: DesiredTrigger,
		RecordRefusal: true, RefusalHint: "; a desired-state generation passes no parameters",
		Attrs: []any{"generation", gen, "guests", len(d.Guests)},
	})
	if r, ok := errors.AsType[*startRefusal](err); ok {
		if r.Reason == refusedUnknown {
			a.log.Warn("a desired state was accepted but no playbook answers its trigger", "trigger", DesiredTrigger, "generation", gen)
		}
		return
	}
	if err != nil {
		a.log.Error("starting the convergence of a desired state failed", "generation", gen, "err", err)
		return
	}
	if st.Existing {
		a.log.Debug("this desired-state generation was converged before", "generation", gen)
	}
}

// hubJob decides one operator-signed job from the hub: AcceptSigned
// verifies it (the same verifier as every signed operation: allow-listed
// key, signature over the received bytes, this host, the time window, a
// playbook that accepts its params, and its nonce, recorded durably, last)
// and carries it out through the one start path with source "job" and the
// job id as the idempotency key — so a job fetched twice, or again after a
// restart, runs once. A refusal is final (the job is cleared and the
// report says why), except where the job may still go on later, its
// nonce unused: not valid yet (issued beyond the clock skew) or its
// playbook's queue full — it waits, reported as such — and a nonce that
// could not be recorded or an agent that is stopping, which leave it
// queued for the next fetch.
func (a *Agent) hubJob(ctx context.Context, j channel.Job) (channel.JobOutcome, error) {
	ap, err := a.AcceptSigned(context.WithoutCancel(ctx), store.SourceJob, j.ID, j.Blob, j.Sig)
	if err != nil {
		r, refused := errors.AsType[*startRefusal](err)
		switch {
		case errors.Is(err, safety.ErrNonceUnrecorded), refused && r.Reason == refusedDraining:
			return channel.JobOutcome{}, err
		case errors.Is(err, safety.ErrNotYetValid), refused && r.Reason == refusedQueueFull:
			return channel.JobOutcome{Outcome: channel.JobWaiting, Reason: err.Error()}, nil
		}
		return channel.JobOutcome{Outcome: channel.JobRefused, Reason: err.Error()}, nil
	}
	out := channel.JobOutcome{Outcome: channel.JobAccepted, Run: ap.Run, Resumed: ap.Resumed, Pending: ap.Pending, Signer: ap.Signer}
	if ap.Run != "" {
		if r, err := a.store.Get(ctx, ap.Run); err == nil {
			out.RunStatus = string(r.Status)
		}
	}
	return out, nil
}

// hubStateStore keeps the channel's state in the run store.
type hubStateStore struct{ a *Agent }

func (s hubStateStore) LoadState(ctx context.Context) (channel.State, bool, error) {
	b, ok, err := s.a.store.HubState(ctx, hubStateKey)
	if err != nil || !ok {
		return channel.State{}, false, err
	}
	// Sealed with the state key since the desired state holds guests'
	// retrieval passwords; a state stored before that is plain JSON.
	if len(b) > 0 && b[0] != '{' {
		if b, err = s.a.openSealed(b); err != nil {
			s.a.log.Error("the hub channel's stored state cannot be opened with the state key; starting afresh", "err", err)
			return channel.State{}, false, nil
		}
	}
	var st channel.State
	if err := json.Unmarshal(b, &st); err != nil {
		s.a.log.Error("the hub channel's stored state does not decode; starting afresh", "err", err)
		return channel.State{}, false, nil
	}
	return st, true, nil
}

func (s hubStateStore) SaveState(ctx context.Context, st channel.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if b, err = s.a.seal(b); err != nil {
		return fmt.Errorf("sealing the hub channel's state: %w", err)
	}
	return s.a.store.SetHubState(ctx, hubStateKey, b)
}

// collectReport builds the host parts of a report. Only an unreadable
// node fails it; every other missing part is named in Errors.
func (a *Agent) collectReport(ctx context.Context, since channel.Cursor) (*channel.Report, error) {
	env := a.cfg.Engine.Env // a copy: the report's own reading context
	env.Context, env.Logger, env.Gauges, env.Locks, env.Desired = ctx, a.log.With("part", "hub-report"), nil, nil, nil
	h := builtins.ReadHealth(ctx, &env)
	if h.Node == nil {
		return nil, errors.New(h.Errors["node"])
	}
	rep := &channel.Report{ReportedAt: time.Now().UTC(), Errors: map[string]string{}}
	maps.Copy(rep.Errors, h.Errors) // not h.Skipped: privileged operations off is nothing to report
	n := h.Node
	rep.Host = channel.HostMetrics{
		CPUPercent: n.CPU * 100, CPUs: n.CPUs, Load: n.LoadAvg,
		MemUsed: n.Memory.Used, MemTotal: n.Memory.Total, MemPercent: n.Memory.Percent(),
		DiskUsed: n.RootFS.Used, DiskTotal: n.RootFS.Total, DiskPercent: n.RootFS.Percent(),
		SwapPercent: n.Swap.Percent(), UptimeSeconds: int64(n.Uptime), CPUTempC: cpuTemp(h.Sensors),
	}
	if env.Proxmox != nil {
		rep.Host.Node = env.Proxmox.Node()
	}
	for _, s := range h.Storage {
		rep.Storage = append(rep.Storage, channel.Storage{Storage: s.Storage, Type: s.Type, Active: s.Active, Enabled: s.Enabled,
			Used: s.Used, Total: s.Total, Avail: s.Avail, UsedPercent: s.UsedPercent()})
	}
	for _, d := range h.Disks {
		rep.Disks = append(rep.Disks, channel.Disk{Device: d.Device, Model: d.Model, Health: d.Health, Passed: d.Passed,
			Temperature: d.Temperature, Reallocated: d.Reallocated, Error: d.Error})
	}
	for _, s := range h.Sensors {
		rep.Sensors = append(rep.Sensors, channel.Sensor{Chip: s.Chip, Label: s.Label, Celsius: s.Celsius, High: s.High, Crit: s.Crit})
	}
	if t := h.Tunnel; t != nil {
		rep.Tunnel = &channel.Tunnel{Endpoint: t.Endpoint, Up: t.Up, LatencyMS: t.Latency.Milliseconds(), Error: t.Error}
	}
	a.reportGuests(ctx, env.Proxmox, rep)

	runs, more, err := a.store.EndedSince(ctx, since.Ended, since.ID, maxReportRuns)
	if err != nil {
		rep.Errors["runs"] = err.Error()
	}
	for _, r := range runs {
		rep.Runs = append(rep.Runs, channel.Run{ID: r.ID, Playbook: r.Playbook, Source: string(r.Source), Key: r.Key, Status: string(r.Status),
			ErrorKind: r.ErrorKind, Error: r.Error, Created: r.Created.UTC(), Ended: r.Ended.UTC()})
	}
	rep.RunsOmitted = more
	a.reportSafety(ctx, since.Audit, rep)
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	return rep, nil
}

// Bounds of the safety parts of one report: pending operations listed, gate
// audit entries sent (the rest follow), one entry's size.
const (
	maxReportPending    = 100
	maxReportAudit      = 500
	maxReportAuditEntry = 2 << 10
)

// reportSafety adds the open pending operations (each with the canonical
// blob to sign) and the gate's audit entries after seq.
func (a *Agent) reportSafety(ctx context.Context, seq int64, rep *channel.Report) {
	rep.Pending, rep.Audit = []channel.PendingOp{}, []channel.AuditEntry{}
	pend, err := a.store.PendingOps(ctx, true, maxReportPending+1)
	if err != nil {
		rep.Errors["pending_operations"] = err.Error()
	}
	if len(pend) > maxReportPending {
		pend, rep.PendingOmitted = pend[:maxReportPending], 1 // at least one more
		if all, err := a.store.PendingOps(ctx, true, 1<<20); err == nil {
			rep.PendingOmitted = len(all) - maxReportPending
		}
	}
	for _, p := range pend {
		rep.Pending = append(rep.Pending, channel.PendingOp{ID: p.ID, Run: p.Run, Playbook: p.Playbook, Guest: p.Guest, What: p.What,
			OpBlobB64: base64.StdEncoding.EncodeToString(p.Blob), Created: p.Created.UTC(), Expires: p.Expires.UTC()})
	}
	audit, err := a.store.Audit(ctx, seq, "", maxReportAudit+1)
	if err != nil {
		rep.Errors["gate_audit"] = err.Error()
	}
	if len(audit) > maxReportAudit {
		audit, rep.AuditOmitted = audit[:maxReportAudit], 1 // at least one more; counted next time
	}
	for _, e := range audit {
		entry := e.Entry
		if len(entry) > maxReportAuditEntry {
			entry, _ = json.Marshal(map[string]any{"at": e.At, "run": e.Run, "truncated": true,
				"entry": clip.String(string(e.Entry), maxReportAuditEntry/2)})
		}
		rep.Audit = append(rep.Audit, channel.AuditEntry{Seq: e.Seq, Entry: entry})
	}
}

// reportGuests adds this node's guests, each with its spec and its entries
// of the per-guest index. A guest whose configuration cannot be read is
// "unknown", with the reason.
func (a *Agent) reportGuests(ctx context.Context, pve builtins.GuestAPI, rep *channel.Report) {
	if pve == nil {
		rep.Errors["guests"] = "no Proxmox client is configured"
		return
	}
	guests, err := pve.Guests(ctx)
	if err != nil {
		rep.Errors["guests"] = err.Error()
		return
	}
	idx, err := a.store.GuestIndex(ctx)
	if err != nil {
		rep.Errors["guest_index"] = err.Error()
	}
	// A guest the run store knows no backup of (one that migrated here:
	// its backups were made by another node's agent) takes its last
	// backup from storage content — one listing per backup storage, made
	// only when such a guest exists.
	// The same holds for its last restore drill, which a drill records on
	// the archive it verified (proxmox.record_drill).
	var unindexed []int
	for _, g := range guests {
		_, backup := idx[g.VMID][store.GuestBackup]
		_, drill := idx[g.VMID][store.GuestRestoreDrill]
		if !backup || !drill {
			unindexed = append(unindexed, g.VMID)
		}
	}
	onStorage := storageHistory(ctx, pve, unindexed)
	rep.Guests = make([]channel.Guest, 0, len(guests))
	for _, g := range guests {
		out := channel.Guest{VMID: g.VMID, Kind: string(g.Type), Name: g.Name, Status: g.Status, Template: g.Template}
		if cfg, err := pve.GuestConfig(ctx, g.Type, g.VMID); err != nil {
			out.Status, out.Error = "unknown", err.Error()
		} else {
			// Name is a container's hostname and a VM's name.
			out.Spec = &channel.GuestSpec{Hostname: cfg.Name, Cores: cfg.Cores, Memory: int64(cfg.Memory),
				Net: cfg.Raw["net0"], Description: strings.TrimSuffix(cfg.Description, "\n"), OnBoot: cfg.OnBoot}
		}
		if out.Status == "" {
			out.Status = "unknown"
		}
		if e, ok := idx[g.VMID][store.GuestBackup]; ok {
			out.LastBackup = guestEvent(e.Last)
			if !e.Last.OK && !e.LastOK.At.IsZero() {
				out.LastBackupOK = guestEvent(e.LastOK)
			}
		}
		if v := onStorage[g.VMID].Backup; v.VolID != "" && out.LastBackup == nil {
			out.LastBackup = &channel.GuestEvent{At: v.CTime.UTC(), OK: true, Detail: "on storage: " + v.VolID}
		}
		if e, ok := idx[g.VMID][store.GuestRestoreDrill]; ok {
			out.LastRestoreDrill = guestEvent(e.Last)
		} else if st := onStorage[g.VMID]; st.drilled() {
			out.LastRestoreDrill = &channel.GuestEvent{At: st.Drill.At.UTC(), OK: st.Drill.OK, Detail: "on storage: " + st.DrillArchive}
		}
		rep.Guests = append(rep.Guests, out)
	}
}

// backupLister is what storageHistory reads.
type backupLister interface {
	Storages(ctx context.Context) ([]proxmox.Storage, error)
	StorageContent(ctx context.Context, storage, content string, vmid int) ([]proxmox.Volume, error)
}

// storedGuest is what the storages this node sees say of one guest,
// whatever agent wrote it: its newest backup archive (zero VolID for
// none) and the restore drills recorded on its archives' notes
// ([builtins.DrillNote]): the newest, and the newest that passed.
type storedGuest struct {
	Backup                  proxmox.Volume
	Drill, DrillOK          builtins.DrillNote
	DrillArchive, OKArchive string
}

// drilled says whether any drill of the guest is recorded on storage.
func (g storedGuest) drilled() bool { return !g.Drill.At.IsZero() }

// storageHistory is what the enabled backup storages this node sees
// (shared ones included) say of each of vmids: one listing per backup
// storage, whose notes carry a drill's first line (the listing shows no
// more; record_drill puts it first). Storages that cannot be listed are
// skipped: the report says what is known.
func storageHistory(ctx context.Context, api backupLister, vmids []int) map[int]storedGuest {
	if len(vmids) == 0 {
		return nil
	}
	want := map[int]bool{}
	for _, v := range vmids {
		want[v] = true
	}
	stores, err := api.Storages(ctx)
	if err != nil {
		return nil
	}
	out := map[int]storedGuest{}
	for _, s := range stores {
		if !s.Enabled || !slices.Contains(s.Content, "backup") {
			continue
		}
		vols, err := api.StorageContent(ctx, s.Storage, "backup", 0)
		if err != nil {
			continue
		}
		for _, v := range vols {
			if !want[v.VMID] {
				continue
			}
			g := out[v.VMID]
			if v.CTime.After(g.Backup.CTime) {
				g.Backup = v
			}
			if n, ok := builtins.ParseDrillNote(v.Notes); ok {
				if n.At.After(g.Drill.At) {
					g.Drill, g.DrillArchive = n, v.VolID
				}
				if n.OK && n.At.After(g.DrillOK.At) {
					g.DrillOK, g.OKArchive = n, v.VolID
				}
			}
			out[v.VMID] = g
		}
	}
	return out
}

func guestEvent(e store.GuestEvent) *channel.GuestEvent {
	return &channel.GuestEvent{At: e.At.UTC(), OK: e.OK, Run: e.Run, Detail: e.Detail}
}

// cpuTemp is the hottest CPU package sensor (coretemp, k10temp,
// zenpower), or nil when there is none.
func cpuTemp(ss []proxmox.SensorReading) *float64 {
	var hot *float64
	for _, s := range ss {
		if !strings.HasPrefix(s.Chip, "coretemp") && !strings.HasPrefix(s.Chip, "k10temp") && !strings.HasPrefix(s.Chip, "zenpower") {
			continue
		}
		if hot == nil || s.Celsius > *hot {
			c := s.Celsius
			hot = &c
		}
	}
	return hot
}

// indexTask records a finished vzdump of one guest in the per-guest index:
// a backup attempt, ok when PVE's exit status is OK (or WARNINGS). A
// vzdump of several guests at once has no vmid in its UPID and is not
// indexed (the shipped backup playbook backs up one guest per task).
func (a *Agent) indexTask(run, upid, exit string) {
	u, err := proxmox.ParseUPID(upid)
	if err != nil || u.Type != "vzdump" {
		return
	}
	vmid, err := strconv.Atoi(u.ID)
	if err != nil || vmid <= 0 {
		return
	}
	ok := exit == "OK" || strings.HasPrefix(exit, "WARNINGS")
	detail := upid
	if !ok {
		detail = exit
	}
	if err := a.store.IndexGuest(context.Background(), store.GuestEvent{VMID: vmid, Kind: store.GuestBackup, OK: ok, Run: run, Detail: detail}); err != nil {
		a.log.Error("recording a backup in the per-guest index failed", "vmid", vmid, "err", err)
	}
}

// indexResult records what a finished run says it did to guests, by the
// result convention the shipped restore playbook follows: a result dict
// with "guest_index", a list of {vmid, kind ("backup" or
// "restore_drill"), ok, detail}.
func (a *Agent) indexResult(run string, result json.RawMessage) {
	if len(result) == 0 || result[0] != '{' {
		return
	}
	var r struct {
		Index []struct {
			VMID   int    `json:"vmid"`
			Kind   string `json:"kind"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"guest_index"`
	}
	if json.Unmarshal(result, &r) != nil {
		return
	}
	for _, e := range r.Index {
		err := a.store.IndexGuest(context.Background(), store.GuestEvent{VMID: e.VMID, Kind: e.Kind, OK: e.OK, Run: run, Detail: e.Detail})
		if err != nil {
			a.log.Warn("a run's guest_index entry was not recorded", "run", run, "vmid", e.VMID, "kind", e.Kind, "err", err)
		}
	}
}
