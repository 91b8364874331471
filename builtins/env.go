package builtins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// ErrAtLoadTime is returned by every builtin that acts (calls Proxmox,
// runs a root command, waits, reads the host) when it is called while a
// file is being loaded. Load time only declares; run time acts.
var ErrAtLoadTime = errors.New("may only be called while a playbook runs, not while its file is loaded")

// Env is everything one run gives the builtins. The runtime builds one per
// run and attaches it to the run's thread with [SetEnv]; a thread without
// an Env is loading a file, and acting builtins refuse with [ErrAtLoadTime].
//
// Every field may be nil/zero except Context and Logger; a builtin whose
// dependency is missing fails with an error naming what is not configured.
// Env holds no secret: the API token stays inside the proxmox.Client.
type Env struct {
	// Context is the run's context. Every blocking builtin selects on it,
	// because starlark.Thread.Cancel does not interrupt a running builtin.
	Context context.Context
	// Logger is tagged with the run; log.* and print write to it.
	Logger *slog.Logger
	// Proxmox is the API client (a *proxmox.Client in production).
	Proxmox GuestAPI
	// Host runs the fenced root operations; nil when the configuration
	// does not enable privileged operations.
	Host HostOps
	// Locks serializes mutations per guest across runs; nil means none.
	Locks GuestLocker
	// Gauges receives gauges that playbooks publish; nil drops them.
	Gauges GaugeSink
	// Tunnel is the host:port that monitor.tunnel() checks; "" means no
	// tunnel is configured.
	Tunnel string
	// Wait tunes every task wait a builtin does.
	Wait proxmox.WaitOptions
	// History says how long a task is expected to run, from how long the
	// same kind of task took on the same guest before; each wait passes it
	// on as WaitOptions.Expected. nil means no history.
	History TaskHistory
	// Progress tunes what a task wait writes to the run log while the
	// task runs: its new log lines and a heartbeat (progress.go).
	Progress ProgressOptions
	// Now is the run's clock, which time.now() reads; nil means the
	// host's. Playbook tests give the simulated host's, so that a test
	// moves time for the playbook and the host at once (sim.advance).
	Now func() time.Time
	// Parked counts the calls of waiting builtins (proxmox, task, host,
	// monitor) the run is inside; Module maintains it. The memory guard
	// reads it: a parked run is not the one allocating. nil: not counted.
	Parked *atomic.Int32
	// Reserve reports whether about n more bytes fit under the run's
	// memory limit, and fails (naming the limit) when they do not.
	// Builtins that can allocate much in one call — json.decode — ask
	// before they start. nil means no limit.
	Reserve func(n uint64) error
	// Desired is what hub.desired_state() reads; nil when no hub is
	// configured.
	Desired DesiredSource
	// Notify sends notify.send's notifications; nil means no channel is
	// configured (notify.send returns False).
	Notify Notifier
	// Journal journals the run's builtin calls and answers them on
	// replay (journal.go); nil means the run is not journaled.
	Journal Journal
	// Undo holds the compensations the run registered with undo(); nil
	// means undo() fails (nothing would run them).
	Undo *UndoStack

	// Guests delivers guest API bootstrap files (guest.deliver_bootstrap);
	// nil when the process serves no guest API.
	Guests GuestDelivery

	call *journalState // the journaled call in progress
}

// SetEnv attaches env to the run's thread, and env.Now (when set) as the
// thread's clock for time.now(). When env's client keeps no memory of
// guest kinds of its own it also gives the thread an empty one (kinds.go).
func SetEnv(thread *starlark.Thread, env *Env) {
	thread.SetLocal(envKey, env)
	if km, ok := env.Proxmox.(kindMemory); !ok || km.Kinds() == nil {
		thread.SetLocal(kindsKey, new(proxmox.GuestKinds))
	}
	if now := env.Now; now != nil {
		startime.SetNow(thread, func() (time.Time, error) { return now(), nil })
	}
}

// EnvOf returns the thread's Env, or nil while a file loads.
func EnvOf(thread *starlark.Thread) *Env {
	env, _ := thread.Local(envKey).(*Env)
	return env
}

// RunEnv is how acting builtins start: it returns the run's Env, or an
// error naming the builtin and wrapping [ErrAtLoadTime].
func RunEnv(thread *starlark.Thread, b *starlark.Builtin) (*Env, error) {
	env := EnvOf(thread)
	if env == nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), ErrAtLoadTime)
	}
	return env, nil
}

const envKey = "felhom.env"

// The Proxmox client as each builtin module uses it: small interfaces,
// declared here where they are used, each sized to what its callers call,
// so that a test substitutes only what it exercises. *proxmox.Client
// implements them all; [GuestAPI] is their union, what Env carries.

// nodeReader is what the monitors read about this node (monitor module).
type nodeReader interface {
	NodeStatus(ctx context.Context) (proxmox.NodeStatus, error)
	NodeStorages(ctx context.Context) ([]proxmox.Storage, error)
	Disks(ctx context.Context) ([]proxmox.Disk, error)
}

// guestReader is the read side of the proxmox module.
type guestReader interface {
	nodeReader
	Node() string
	Version(ctx context.Context) (proxmox.Version, error)
	Nodes(ctx context.Context) ([]proxmox.Node, error)
	ClusterResources(ctx context.Context, typ string) ([]proxmox.Resource, error)
	guestLister
	GuestStatus(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestStatus, error)
	GuestConfig(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.GuestConfig, error)
	Storages(ctx context.Context) ([]proxmox.Storage, error)
	StorageContent(ctx context.Context, storage, content string, vmid int) ([]proxmox.Volume, error)
	VolumeNotes(ctx context.Context, volid string) (string, error)
	Snapshots(ctx context.Context, kind proxmox.GuestKind, vmid int) ([]proxmox.Snapshot, error)
	Tasks(ctx context.Context, f proxmox.TaskFilter) ([]proxmox.Task, error)
	NextID(ctx context.Context) (int, error)
	DiskSMART(ctx context.Context, devpath string) (proxmox.SMARTData, error)
}

// guestMutator is the mutating side of the proxmox module: each call
// returns the UPID of the task it started (zero for a synchronous one).
type guestMutator interface {
	RestoreGuest(ctx context.Context, o proxmox.RestoreOptions) (proxmox.UPID, error)
	Vzdump(ctx context.Context, o proxmox.VzdumpOptions) (proxmox.UPID, error)
	Snapshot(ctx context.Context, kind proxmox.GuestKind, vmid int, o proxmox.SnapshotOptions) (proxmox.UPID, error)
	Rollback(ctx context.Context, kind proxmox.GuestKind, vmid int, name string) (proxmox.UPID, error)
	DeleteSnapshot(ctx context.Context, kind proxmox.GuestKind, vmid int, name string) (proxmox.UPID, error)
	Start(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)
	Stop(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)
	Reboot(ctx context.Context, kind proxmox.GuestKind, vmid int) (proxmox.UPID, error)
	Shutdown(ctx context.Context, kind proxmox.GuestKind, vmid int, timeout int) (proxmox.UPID, error)
	DeleteGuest(ctx context.Context, kind proxmox.GuestKind, vmid int, purge bool) (proxmox.UPID, error)
	DeleteVolume(ctx context.Context, storage, volid string) (proxmox.UPID, error)
	SetVolumeNotes(ctx context.Context, volid, notes string) error
	SetConfig(ctx context.Context, kind proxmox.GuestKind, vmid int, set map[string]string, del []string) (proxmox.UPID, error)
}

// guestLister lists every guest of the node, both kinds; what it lists
// also teaches the memory of kinds ([guestKind]).
type guestLister interface {
	Guests(ctx context.Context) ([]proxmox.Guest, error)
}

// taskWaiter is what waiting for a task needs: the proxmox module's
// mutations (which wait by default) and task.wait.
type taskWaiter interface {
	proxmox.TaskLogSource // the progress of a wait (progress.go)
	WaitTask(ctx context.Context, upid proxmox.UPID, o proxmox.WaitOptions) (proxmox.TaskStatus, error)
	VzdumpBackups(ctx context.Context, upid proxmox.UPID, storage string) (string, []proxmox.Volume, error)
}

// taskAPI is the task module: waiting, plus a task's status, log and stop.
type taskAPI interface {
	taskWaiter
	TaskStatusOnce(ctx context.Context, upid proxmox.UPID) (proxmox.TaskStatus, error)
	TaskLogTail(ctx context.Context, upid proxmox.UPID, n int) ([]string, error)
	StopTask(ctx context.Context, upid proxmox.UPID) error
}

// GuestAPI is the whole of *proxmox.Client that the builtins use: the
// union of the modules' interfaces above. It is what [Env.Proxmox] holds.
type GuestAPI interface {
	guestReader
	guestMutator
	taskAPI
}

var _ GuestAPI = (*proxmox.Client)(nil)

// HostOps is the part of *proxmox.Privileged the host module calls.
type HostOps interface {
	CreateGoldenLXC(ctx context.Context, spec proxmox.GoldenSpec) error
	MountUSBByUUID(ctx context.Context, uuid, target string) (string, error)
	SMART(ctx context.Context, device string) (proxmox.SMARTReport, error)
	Sensors(ctx context.Context) ([]proxmox.SensorReading, error)
}

// TaskHistory is what a task wait asks the run store: how long upid's
// task is expected to run, by the tasks of its kind (worker type, guest,
// node) that finished before; 0 when there is no history or it cannot be
// read. Safe for concurrent use.
type TaskHistory interface {
	ExpectedDuration(ctx context.Context, upid proxmox.UPID) time.Duration
}

// GuestLocker serializes mutations of one guest across concurrent runs.
// LockGuest blocks until the guest is free or ctx ends (then it returns
// ctx's error wrapped); unlock releases it and is safe to call once.
type GuestLocker interface {
	LockGuest(ctx context.Context, vmid int) (unlock func(), err error)
}

// GaugeSink receives gauges a playbook publishes (monitor.gauge) and
// answers what was last published (monitor.gauge_value), so a playbook can
// compare a reading with the previous run's. Names are validated by the
// builtin ([a-z_][a-z0-9_]*); the sink prefixes them. Values live as long
// as the sink (the agent process); [LastGauges] implements the memory.
type GaugeSink interface {
	SetGauge(name string, labels map[string]string, value float64)
	Gauge(name string, labels map[string]string) (float64, bool)
}
