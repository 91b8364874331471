package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/schedule"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/statedir"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// Defaults for the zero values of [Config].
const (
	DefaultShutdownGrace  = 60 * time.Second
	DefaultDebounce       = 10 * time.Millisecond
	DefaultHealthInterval = 30 * time.Second
	DefaultPruneInterval  = time.Hour
	// StoreFile is the run store's file name in Config.StateDir.
	StoreFile = statedir.StoreFile
)

// ProxmoxAPI is what the agent itself asks of Proxmox (*proxmox.Client
// implements it): its version, for the health probe, and waiting for a
// task, to follow the tasks of interrupted runs to their end.
type ProxmoxAPI interface {
	Version(ctx context.Context) (proxmox.Version, error)
	WaitTask(ctx context.Context, upid proxmox.UPID, o proxmox.WaitOptions) (proxmox.TaskStatus, error)
}

var _ ProxmoxAPI = (*proxmox.Client)(nil)

// Config configures an [Agent]. The zero value of each field is
// documented; PlaybooksDir and StateDir are required.
type Config struct {
	// PlaybooksDir is the playbooks root: its top-level *.star files are
	// the playbooks, its subdirectories the modules they load. It is
	// watched, subdirectories included, for hot reload.
	PlaybooksDir string
	// StateDir holds the run store (StoreFile); it is created (0700) if
	// missing. The agent holds its lock (runtime/statedir) from New to
	// Close: a second agent on the same directory is refused, naming the
	// first one's pid.
	StateDir string
	// Listen is the TCP address of the hub endpoints, /metrics and
	// /healthz, and of nothing else; "" means no TCP listener. The
	// command line's default is 127.0.0.1:8787.
	Listen string
	// Socket is the path of the local API's unix socket (mode 0660);
	// "" means no local API.
	Socket string
	// HubKeys are the public keys hub triggers must be signed with; none
	// refuses every trigger (401). Reconfigure replaces them.
	HubKeys hub.Keys
	// Retention says which run records are pruned (at start and every
	// PruneInterval). The zero value keeps every run.
	Retention store.Retention
	// ShutdownGrace is how long runs in flight may go on after Run's
	// context ends before they are cancelled; 0 means
	// DefaultShutdownGrace, negative cancels them at once.
	ShutdownGrace time.Duration
	// Engine configures the runs: Env carries the playbooks' Proxmox
	// client, the fenced host operations and the tunnel. Env.Gauges nil
	// means the agent's /metrics; Engine.Logger nil means Logger.
	Engine engine.Config
	// Proxmox is the agent's own use of Proxmox — the health probe and
	// following interrupted runs' tasks — normally the same
	// *proxmox.Client as Engine.Env.Proxmox. nil: /healthz reports no
	// client, and interrupted tasks are left for a later start.
	Proxmox ProxmoxAPI
	// Origin names the Proxmox the agent's runs are made against, which
	// each run records when it starts (origin.go): SimOrigin for a
	// simulated host, else the client's endpoint and node
	// (proxmox.Client.Target). An interrupted run recorded with another
	// origin is neither resumed nor undone, and its tasks are not
	// followed: it ends failed saying both. "" means the Target of
	// Engine.Env.Proxmox when that is a *proxmox.Client, else none.
	Origin string
	// Loader configures how playbooks load (builtin tables, load-time
	// step budget, cache size). Its Logger nil means Logger.
	Loader engine.LoaderOptions
	// Logger is the agent's log; nil means slog.Default(). Each run's
	// log goes to it as well as to the run store.
	Logger *slog.Logger
	// LogLevel, if set, is the level Logger's handler reads;
	// Reconfigure changes it.
	LogLevel *slog.LevelVar
	// Debounce is how long the watcher waits for a burst of file events
	// to end before reloading; 0 means DefaultDebounce.
	Debounce time.Duration
	// NoWatch turns hot reload off: playbooks load once at start.
	NoWatch bool
	// HealthInterval is the period of the Proxmox health probe; 0 means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// PruneInterval is the period of retention; 0 means
	// DefaultPruneInterval.
	PruneInterval time.Duration
	// MaxGaugeSeries caps the playbook gauge series on /metrics; 0 means
	// DefaultMaxGaugeSeries.
	MaxGaugeSeries int
	// Hub, when set, runs the outbound hub channel (hubchannel.go): host
	// reports, the control envelope, the desired state that
	// hub.desired_state() reads. nil: no hub; hub.desired_state() fails.
	Hub *HubConfig
	// QueueMax is how many runs of one playbook that does not run
	// concurrently may wait for it to be free (runs.queue_max); a trigger
	// that would queue more is refused (429). 0 means DefaultQueueMax.
	QueueMax int
	// Limits bound what one run writes into the store: a log line, its
	// whole log and its result (see limits.go). Zero fields mean the
	// defaults.
	Limits RunLimits
	// GuestAPI, when set, serves the guest API (guestapi.go,
	// docs/guest-api.md) on its own HTTPS listeners; nil: no guest API.
	GuestAPI *GuestAPIConfig
	// Safety configures the safety gate (safety.go, docs/safety.md).
	Safety SafetyConfig
	// Notifier tells people of failed and timed-out runs and missed
	// timer ticks, and carries the playbooks' notify.send (notify.go);
	// nil tells nobody. The caller owns it: it outlives Run, and closes
	// after it.
	Notifier *notify.Notifier
	// Planner plans a run of a playbook without changing anything (the
	// command line gives runtime/plan over a read-only client), for the
	// local API's POST /v1/plan; nil refuses plans (503).
	Planner func(ctx context.Context, pb *engine.Playbook, params *engine.Params) (any, error)
}

// HotConfig is the part of the configuration a running agent takes on
// without a restart (SIGHUP).
type HotConfig struct {
	// HubKeys replace the keys hub triggers are verified with.
	HubKeys hub.Keys
	// LogLevel is set on Config.LogLevel, if that is set.
	LogLevel slog.Level
	// Retention replaces Config.Retention from the next prune on.
	Retention store.Retention
}

// Agent is the long-running host agent (felhom-agent serve): it keeps the
// playbooks of one directory loaded and hot-reloaded, runs them on hub
// triggers, cron timers and local API requests, records every run in the
// run store, and serves metrics and health. See lifecycle.go for the
// order in which it starts and stops.
//
// New opens the store and binds the listeners; Run does the rest and
// returns after a graceful shutdown. An Agent runs once.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	registry *engine.Registry
	engine   *engine.Engine
	metrics  *agentMetrics
	health   *healthState
	queues   *runQueues
	limits   RunLimits // cfg.Limits with the defaults filled in
	sched    *schedule.Scheduler
	lock     *statedir.DirLock // the state directory's, held until Close
	safe     *agentSafety      // the safety gate's verifier and parked runs
	origin   string            // the Proxmox runs are made against (Config.Origin, origin.go)

	tcp   net.Listener // nil: none
	unix  net.Listener // nil: none
	guest *guestAPI    // nil: no guest API

	hubHandler atomic.Pointer[http.Handler] // replaced by Reconfigure
	hub        *channel.Channel             // nil: no hub channel
	hubBlocked atomic.Bool                  // the hub's envelope blocks this host
	retention  atomic.Pointer[store.Retention]

	// runsCtx is the parent of every run's context; it is cancelled with
	// errShutdown when the grace period ends.
	runsCtx    context.Context
	cancelRuns context.CancelCauseFunc
	// bgCtx is the context of background work (task followers, probes);
	// cancelled last.
	bgCtx    context.Context
	cancelBG context.CancelFunc
	bg       sync.WaitGroup // task followers

	running sync.WaitGroup // runs launched and not finished
	hurry   hurrySignal    // closed by Hurry: the grace period ends now

	mu       sync.Mutex
	live     map[string]*liveRun // by run id
	draining bool                // no new run starts
	secrets  map[string][]string // run id -> its secret parameters' values, while it runs

	// journalKey is the state directory's key (statekey.go): it seals
	// journaled secrets and keys the journal's digests.
	journalKey []byte

	timersMu sync.Mutex
	jobs     map[string]bool // playbooks with a timer set

	ran       atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// hooks let tests wait for events instead of sleeping.
	hooks struct {
		reloaded func(engine.Change) // after a load or reload has been applied
		draining func()              // when shutdown has stopped new runs
		probed   func()              // after a health probe has been recorded
		followed func(upid string)   // after a followed task's end has been recorded
	}
}

// New opens the run store, prepares the registry, the engine and the
// metrics, and binds the TCP listener and the unix socket, so that a
// configuration that cannot work fails here, before anything runs.
// Nothing is served and no playbook is loaded until Run.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.PlaybooksDir == "":
		return nil, errors.New("agent: the playbooks directory is not set")
	case cfg.StateDir == "":
		return nil, errors.New("agent: the state directory is not set")
	case cfg.QueueMax < 0:
		return nil, fmt.Errorf("agent: runs.queue_max %d is negative", cfg.QueueMax)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.Loader.Logger == nil {
		cfg.Loader.Logger = cfg.Logger
	}
	if cfg.Engine.Logger == nil {
		cfg.Engine.Logger = cfg.Logger
	}

	a := &Agent{cfg: cfg, log: cfg.Logger, live: map[string]*liveRun{}, jobs: map[string]bool{}, secrets: map[string][]string{}}
	a.origin = cfg.origin()
	a.hurry.init()
	a.metrics = newAgentMetrics(cfg.MaxGaugeSeries, cfg.Logger)
	if a.cfg.Engine.Env.Gauges == nil {
		a.cfg.Engine.Env.Gauges = a.metrics.gauges
	}
	if cfg.Notifier != nil {
		if a.cfg.Engine.Env.Notify == nil {
			a.cfg.Engine.Env.Notify = runNotifier{a}
		}
		a.metrics.registerNotifyMetrics(cfg.Notifier)
	}
	if a.cfg.Engine.Env.Progress.Followers == nil {
		a.cfg.Engine.Env.Progress.Followers = runFollowers{a}
	}
	if a.cfg.Engine.Env.History == nil {
		a.cfg.Engine.Env.History = taskHistory{a}
	}
	if cfg.GuestAPI != nil && a.cfg.Engine.Env.Guests == nil {
		a.cfg.Engine.Env.Guests = guestDelivery{a}
	}
	a.health = newHealthState()
	a.queues = newRunQueues(cfg.QueueMax)
	a.limits = cfg.Limits.withDefaults()
	a.retention.Store(&cfg.Retention)
	a.setHubKeys(cfg.HubKeys)
	a.runsCtx, a.cancelRuns = context.WithCancelCause(context.Background())
	a.bgCtx, a.cancelBG = context.WithCancel(context.Background())

	if cfg.Hub != nil {
		if err := a.newHubChannel(cfg.Hub); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.cfg.Engine.Env.Desired = a
	}
	reg, err := engine.NewRegistry(cfg.PlaybooksDir, cfg.Loader)
	if err != nil {
		return nil, &SettingError{Field: "PlaybooksDir", Err: fmt.Errorf("agent: %w", err)}
	}
	a.registry = reg
	a.engine = engine.NewEngine(a.cfg.Engine)
	a.sched, err = schedule.New(schedule.Options{
		Fire:    a.fireTimer,
		LastRun: a.timerLast,
		MarkRun: a.timerMark,
		Missed:  a.notifyMissed,
		Logger:  cfg.Logger.With("part", "timers"),
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}

	if a.lock, err = statedir.Lock(cfg.StateDir); err != nil {
		return nil, &SettingError{Field: "StateDir", Err: fmt.Errorf("agent: %w", err)}
	}
	if a.store, err = store.Open(filepath.Join(cfg.StateDir, StoreFile), store.Options{}); err != nil {
		a.lock.Close()
		return nil, &SettingError{Field: "StateDir", Err: fmt.Errorf("agent: %w", err)}
	}
	if a.journalKey, err = loadStateKey(cfg.StateDir); err != nil {
		a.Close()
		return nil, &SettingError{Field: "StateDir", Err: fmt.Errorf("agent: %w", err)}
	}
	if err := a.newSafety(); err != nil {
		a.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.metrics.reg.MustRegister(a.storeUpMetric())
	if cfg.Listen != "" {
		if a.tcp, err = net.Listen("tcp", cfg.Listen); err != nil {
			a.Close()
			return nil, &SettingError{Field: "Listen", Err: fmt.Errorf("agent: listen %s: %w", cfg.Listen, err)}
		}
	}
	if cfg.Socket != "" {
		if a.unix, err = listenSocket(cfg.Socket); err != nil {
			a.Close()
			return nil, &SettingError{Field: "Socket", Err: fmt.Errorf("agent: %w", err)}
		}
	}
	if cfg.GuestAPI != nil {
		if err := a.newGuestAPI(cfg.GuestAPI); err != nil {
			a.Close()
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return a, nil
}

// SettingError is a failure of [New] that one [Config] field caused (a
// state directory that cannot be locked or opened, an address or socket
// that cannot be bound, a playbooks directory that cannot be read), so
// that a front end can say which setting to change.
type SettingError struct {
	Field string // the Config field: "PlaybooksDir", "StateDir", "Listen" or "Socket"
	Err   error
}

func (e *SettingError) Error() string { return e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// Addr is the TCP listener's address (useful with port 0), or nil.
func (a *Agent) Addr() net.Addr {
	if a.tcp == nil {
		return nil
	}
	return a.tcp.Addr()
}

// Run serves until ctx ends, then shuts down gracefully (see
// lifecycle.go) and closes the agent. It returns nil after a clean
// shutdown, or the error that stopped the agent early. It may be called
// once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer a.Close()
	return a.lifecycle(ctx)
}

// Reconfigure applies what SIGHUP changes: hub keys, log level and
// retention. Runs in flight are not affected.
func (a *Agent) Reconfigure(h HotConfig) {
	a.setHubKeys(h.HubKeys)
	if a.cfg.LogLevel != nil {
		a.cfg.LogLevel.Set(h.LogLevel)
	}
	r := h.Retention
	a.retention.Store(&r)
	a.log.Info("configuration reloaded", "hub_keys", h.HubKeys, "log_level", h.LogLevel.String(),
		"runs_keep", r.KeepLast, "runs_max_age", r.MaxAge)
}

// setHubKeys swaps the hub handler for one verifying with keys; requests
// under way finish with the handler they started with.
func (a *Agent) setHubKeys(keys hub.Keys) {
	h := hub.NewHandler(&hub.Verifier{Keys: keys}, a, a.log.With("part", "hub"))
	a.hubHandler.Store(&h)
}

// Close releases what New opened: the listeners, the store and the state
// directory's lock. Run
// calls it; call it yourself only when Run is never called.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.safe != nil {
			errs = append(errs, a.safe.nonces.Close())
		}
		if a.tcp != nil {
			if err := a.tcp.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if a.unix != nil {
			if err := a.unix.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if a.guest != nil {
			a.guest.close()
		}
		a.cancelRuns(errShutdown)
		a.cancelBG()
		if a.store != nil {
			errs = append(errs, a.store.Close())
		}
		errs = append(errs, a.lock.Close()) // last: the store is closed under it
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}
