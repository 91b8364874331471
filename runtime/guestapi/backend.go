package guestapi

import (
	"context"
	"errors"
	"time"
)

// Backend is what the guest API asks of the daemon. vmid is always the
// guest the request's token belongs to; every method may be called
// concurrently, and ctx is the request's.
//
// Errors: wrap ErrForbidden for a reference to another guest's things
// (403, logged), ErrNotFound for an unknown job (404), ErrTooMany for a
// full queue (429), ErrUnavailable for what cannot be done now (503),
// ErrNotServed for what the guest may not ask of this agent (403: a VM,
// a trigger no playbook offers guests); return a *BadRequestError for
// refused input (400, naming the field). Any other error is answered 500
// with a generic message and logged in full.
type Backend interface {
	// GuestByTokenHash returns the guest whose token hashes (SHA-256) to
	// hash; false when none does.
	GuestByTokenHash(ctx context.Context, hash [32]byte) (vmid int, ok bool, err error)
	// AdoptTokenHash is asked about a hash GuestByTokenHash does not
	// know, after the request passed the limit of requests without a
	// valid token: the guest that proves it holds it (a container that
	// migrated here with its identity), adopted, or false. It may be
	// slow (it reads Proxmox) and must bound its own cost.
	AdoptTokenHash(ctx context.Context, hash [32]byte) (vmid int, ok bool, err error)
	// Storage is the guest's mounts and their usage.
	Storage(ctx context.Context, vmid int) (Storage, error)
	// Status is the guest's own status.
	Status(ctx context.Context, vmid int) (GuestStatus, error)
	// Health is the host's health: node, storage fill, disks, sensors —
	// nothing about other guests.
	Health(ctx context.Context) (Health, error)
	// StartBackup starts a backup of the guest through the agent's one
	// start path, idempotent per req.RequestID.
	StartBackup(ctx context.Context, vmid int, req JobRequest) (BackupStatus, error)
	// BackupStatus follows job jobID, or the guest's latest backup job
	// when jobID is "" (Phase PhaseIdle when it has none).
	BackupStatus(ctx context.Context, vmid int, jobID string) (BackupStatus, error)
	// BackupDue says whether a backup of the guest is due.
	BackupDue(ctx context.Context, vmid int) (Due, error)
	// RestoreTest is the guest's last restore test.
	RestoreTest(ctx context.Context, vmid int) (RestoreTest, error)
	// Reboot starts a clean reboot of the guest, idempotent per
	// req.RequestID.
	Reboot(ctx context.Context, vmid int, req JobRequest) (Job, error)
}

// The errors a Backend wraps to choose the answer's status.
var (
	ErrForbidden   = errors.New("forbidden: that belongs to another guest")
	ErrNotFound    = errors.New("not found")
	ErrTooMany     = errors.New("too many requests")
	ErrUnavailable = errors.New("unavailable")
	ErrNotServed   = errors.New("not served to this guest")
)

// BadRequestError is refused input: 400, naming the field.
type BadRequestError struct {
	Field, Msg string
}

func (e *BadRequestError) Error() string { return e.Field + ": " + e.Msg }

// JobRequest is the body of POST /backup and POST /guest/reboot.
type JobRequest struct {
	// RequestID makes the request idempotent: the same id again answers
	// the job it started, and starts nothing. Optional, up to 128 bytes
	// of [A-Za-z0-9._:-].
	RequestID string `json:"request_id,omitempty"`
	// Params are the parameters the playbook declares guest-settable
	// (guest_params); anything else is refused.
	Params map[string]any `json:"params,omitempty"`
}

// The phases of a backup job, in order; PhaseDone and PhaseFailed end it.
const (
	PhaseIdle        = "idle"        // the guest has asked for no backup
	PhaseQueued      = "queued"      // accepted, waiting behind work on the same guest
	PhaseRunning     = "running"     // under way; the storage snapshot does not exist yet
	PhaseSnapshotted = "snapshotted" // vzdump's log says the storage snapshot exists: applications may restart
	PhaseDone        = "done"        // backed up and verified
	PhaseFailed      = "failed"      // ended without a backup; Error says why
)

// Job is a started job (POST /guest/reboot).
type Job struct {
	VMID      int    `json:"vmid"`
	JobID     string `json:"job_id"`
	Phase     string `json:"phase"`
	RequestID string `json:"request_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

// BackupStatus is the answer of POST /backup and GET /backup/status.
type BackupStatus struct {
	VMID      int        `json:"vmid"`
	JobID     string     `json:"job_id"`
	Phase     string     `json:"phase"`
	RequestID string     `json:"request_id,omitempty"`
	Error     string     `json:"error"`
	Created   *time.Time `json:"created,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
	Ended     *time.Time `json:"ended,omitempty"`
	// Snapshotted is when the storage snapshot was seen; nil before, and
	// for a backup whose mode takes none.
	Snapshotted *time.Time `json:"snapshotted,omitempty"`
	// Archive is the backup's volume id once done.
	Archive string `json:"archive,omitempty"`
}

// Due is GET /backup/due.
type Due struct {
	VMID   int    `json:"vmid"`
	Due    bool   `json:"due"`
	Reason string `json:"reason"`
	// LastBackup is the guest's last successful backup; nil for none.
	LastBackup *time.Time `json:"last_backup"`
	// Schedule is the backup timer's cron expression; "" for none.
	Schedule string `json:"schedule"`
	// NextRun is the timer's next tick; nil without a timer.
	NextRun *time.Time `json:"next_run"`
}

// RestoreTest is GET /restore-test/status.
type RestoreTest struct {
	VMID   int  `json:"vmid"`
	Tested bool `json:"tested"` // a restore test of the guest ever ended
	// OK and At are the last test's outcome and end.
	OK bool       `json:"ok"`
	At *time.Time `json:"at"`
	// LastOK is the last test that passed; nil for none.
	LastOK *time.Time `json:"last_ok"`
}

// Mount is one of the guest's mounts.
type Mount struct {
	Key        string `json:"key"`         // rootfs, mp0, ...
	Storage    string `json:"storage"`     // the PVE storage; "" for a bind mount
	MountPoint string `json:"mount_point"` // where the guest sees it
	Class      string `json:"class"`       // fast | slow | "" (unclassified)
	Backup     bool   `json:"backup"`      // included in the guest's backups
	ReadOnly   bool   `json:"read_only,omitempty"`
	Size       uint64 `json:"size,omitempty"` // bytes, as configured
	Used       uint64 `json:"used,omitempty"` // bytes in use (the root filesystem only, from PVE's status)
}

// Storage is GET /storage.
type Storage struct {
	VMID   int     `json:"vmid"`
	Mounts []Mount `json:"mounts"`
}

// GuestStatus is GET /status.
type GuestStatus struct {
	VMID    int     `json:"vmid"`
	Name    string  `json:"name"`
	Type    string  `json:"type"`
	Status  string  `json:"status"`
	Lock    string  `json:"lock,omitempty"`
	Uptime  int64   `json:"uptime"`
	CPUs    float64 `json:"cpus"`
	CPU     float64 `json:"cpu"`
	Mem     uint64  `json:"mem"`
	MaxMem  uint64  `json:"maxmem"`
	Disk    uint64  `json:"disk"`
	MaxDisk uint64  `json:"maxdisk"`
}

// Health is GET /health: the host's, nothing about other guests.
type Health struct {
	Node    *NodeHealth       `json:"node"`
	Storage []StorageHealth   `json:"storage"`
	Disks   []DiskHealth      `json:"disks"`
	Sensors []SensorHealth    `json:"sensors"`
	Errors  map[string]string `json:"errors,omitempty"` // monitor name -> why it failed
}

// NodeHealth is the node's load and memory.
type NodeHealth struct {
	Node     string    `json:"node"`
	Uptime   int64     `json:"uptime"`
	CPU      float64   `json:"cpu"`
	LoadAvg  []float64 `json:"loadavg"`
	MemUsed  uint64    `json:"mem_used"`
	MemTotal uint64    `json:"mem_total"`
}

// StorageHealth is one storage's fill.
type StorageHealth struct {
	Storage string  `json:"storage"`
	Type    string  `json:"type"`
	Active  bool    `json:"active"`
	Total   uint64  `json:"total"`
	Used    uint64  `json:"used"`
	Avail   uint64  `json:"avail"`
	UsedPct float64 `json:"used_pct"`
}

// DiskHealth is one physical disk's SMART verdict.
type DiskHealth struct {
	Disk        string `json:"disk"` // the device's name (sda), never its path
	Model       string `json:"model,omitempty"`
	Healthy     bool   `json:"healthy"`
	Temperature int    `json:"temperature_c,omitempty"`
}

// SensorHealth is one temperature sensor.
type SensorHealth struct {
	Name  string  `json:"name"`
	Value float64 `json:"value_c"`
}
