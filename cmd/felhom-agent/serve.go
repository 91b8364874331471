package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/agent"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/guestapi"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/notify"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// ServeCmd runs the agent daemon: it loads the playbooks directory and
// hot-reloads it on save, runs playbooks on signed hub triggers, cron
// timers and local API requests, records every run in the run store, and
// serves the hub endpoints, /metrics and /healthz on --listen and the
// local API on --socket. SIGINT/SIGTERM stop it gracefully (runs get
// --shutdown-grace to finish, then are cancelled); SIGHUP re-reads the
// configuration and applies hub keys, log level and retention.
type ServeCmd struct {
	Listen        string        `help:"TCP address of hub triggers, /metrics and /healthz; empty disables it. Put TLS in front when it leaves the host." default:"127.0.0.1:8787" placeholder:"ADDR" config:"listen"`
	Socket        string        `help:"${socket_help} With --sim, ${sim_socket} (never the real host agent's). A missing directory is made. The guest locks every run takes live beside it, in guests/." placeholder:"PATH" config:"socket"`
	StateDir      string        `help:"${state_dir_help} With --sim, ${sim_state_dir} (never the real host agent's)." placeholder:"DIR" config:"state_dir"`
	ShutdownGrace time.Duration `help:"On SIGTERM, how long runs may finish before they are cancelled." default:"60s" config:"shutdown_grace" valid:"nonnegative"`
	HealthEvery   time.Duration `name:"health-interval" help:"How often the Proxmox API is probed for /healthz." default:"30s" config:"health_interval" valid:"positive"`
	HubKeys       string        `name:"hub-keys" help:"Public keys of the hub: ID=BASE64[,ID=BASE64]... (in the config file, an object {\"ID\": \"BASE64\"}). None refuses every trigger." placeholder:"ID=BASE64,..." config:"hub.keys"`
	RunsKeep      int           `name:"runs-keep" help:"Run records kept per playbook, newest first; 0 keeps all." default:"10000" config:"runs.keep" valid:"nonnegative"`
	RunsMaxAge    time.Duration `name:"runs-max-age" help:"Run records older than this are deleted; 0 keeps them." default:"2160h" config:"runs.max_age" valid:"nonnegative"`
	LogLineKiB    int           `name:"runs-log-line-max-kib" help:"Longest log line a run records (KiB); longer ones are cut with a marker." default:"8" config:"runs.log_line_max_kib" valid:"positive"`
	LogMiB        int           `name:"runs-log-max-mib" help:"Most log a run records (MiB); past it one line says so and the rest is not recorded." default:"16" config:"runs.log_max_mib" valid:"positive"`
	ResultKiB     int           `name:"runs-result-max-kib" help:"Largest result a run records (KiB); a larger one fails the run with kind limit." default:"1024" config:"runs.result_max_kib" valid:"positive"`
	RunsQueueMax  int           `name:"runs-queue-max" help:"Runs of one non-concurrent playbook that may wait for it to be free; a trigger beyond is refused (429)." default:"${queue_max}" config:"runs.queue_max" valid:"positive"`
	Sim           bool          `help:"Serve against an in-process simulated Proxmox VE host (no host needed)." env:"-"`

	Notify NotifyFlags `embed:"" prefix:"notify-" group:"Notifications"`

	GuestAPIListen   []string `name:"guest-api-listen" sep:"none" help:"HTTPS addresses of the guest API in-guest controllers call (typically the host's bridge address, port 8443), comma-separated (in the config file, a list); empty: no guest API. A separate listener with a narrow surface: never run control." placeholder:"ADDR,..." config:"guest_api.listen" group:"Guest API"`
	GuestAPIEndpoint string   `name:"guest-api-endpoint" help:"host:port written into guests' bootstrap files; default the first --guest-api-listen address." placeholder:"ADDR" config:"guest_api.endpoint" group:"Guest API"`
	GuestAPIRate     float64  `name:"guest-api-rate" help:"Requests per second one guest may make, sustained (a token bucket)." default:"5" config:"guest_api.rate" valid:"positive" group:"Guest API"`
	GuestAPIBurst    int      `name:"guest-api-burst" help:"Requests one guest may make at once after a quiet spell." default:"20" config:"guest_api.burst" valid:"positive" group:"Guest API"`

	HubURL         string        `name:"hub-url" help:"The hub the agent reports to, https://HUB; empty: no hub channel." placeholder:"URL" config:"hub.url"`
	HubHostID      string        `name:"hub-host-id" help:"This host's id at the hub." placeholder:"ID" config:"hub.host_id"`
	HubAPIKey      string        `name:"hub-api-key" help:"This host's bearer key for the hub (prefer the environment or the config file: flags show in ps)." placeholder:"KEY" config:"hub.api_key"`
	HubCAFile      string        `name:"hub-ca-file" help:"PEM CA bundle to verify the hub's certificate; default the system's roots." placeholder:"FILE" config:"hub.ca_file"`
	HubFingerprint string        `name:"hub-fingerprint" help:"SHA-256 fingerprint of the hub's certificate to pin (AB:CD:...)." placeholder:"SHA256" config:"hub.fingerprint"`
	HubPollFloor   time.Duration `name:"hub-poll-floor" help:"The shortest poll interval the hub may ask for (tests lower it)." default:"60s" config:"hub.poll_floor" valid:"positive"`
	HubTimeout     time.Duration `name:"hub-timeout" help:"Timeout of one hub request." default:"30s" config:"hub.timeout" valid:"positive"`
	HubPlanTimeout time.Duration `name:"hub-plan-timeout" help:"How long one hub plan job may take (reading the host and running the playbook against a mirror); past it the job is answered not_planned. The channel's loop waits for it, so a report can be this much late." default:"1m" config:"hub.plan_timeout" valid:"positive"`
}

// maxPlanTimeout bounds hub.plan_timeout: a plan holds up the channel's
// loop, and with it the next report, for as long as it takes.
const maxPlanTimeout = 10 * time.Minute

// hubConfig is the hub channel's configuration, or nil when hub.url is
// not set. Every problem names its key; the API key never appears.
func (c *ServeCmd) hubConfig() (*agent.HubConfig, error) {
	if c.HubURL == "" {
		if c.HubHostID != "" || c.HubAPIKey != "" {
			return nil, errors.New("hub.url: is required when hub.host_id or hub.api_key is set")
		}
		return nil, nil
	}
	cfg := channel.Config{
		URL: c.HubURL, HostID: c.HubHostID, APIKey: channel.APIKey(c.HubAPIKey), Timeout: c.HubTimeout,
		TLS: proxmox.TLSTrust{CAFile: c.HubCAFile, Fingerprint: c.HubFingerprint},
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if c.HubPollFloor <= 0 || c.HubPollFloor > channel.MaxPoll {
		return nil, fmt.Errorf("hub.poll_floor: %s is not in (0, %s]", c.HubPollFloor, channel.MaxPoll)
	}
	if c.HubPlanTimeout <= 0 || c.HubPlanTimeout > maxPlanTimeout {
		return nil, fmt.Errorf("hub.plan_timeout: %s is not in (0, %s]", c.HubPlanTimeout, maxPlanTimeout)
	}
	return &agent.HubConfig{Client: cfg, MinPoll: c.HubPollFloor, PlanTimeout: c.HubPlanTimeout, AgentVersion: agentVersion()}, nil
}

// guestAPIConfig is the guest API's configuration, or nil when
// guest_api.listen is empty. Every problem names its key.
func (c *ServeCmd) guestAPIConfig(be *backend, hub *agent.HubConfig) (*agent.GuestAPIConfig, error) {
	listen := splitLists(c.GuestAPIListen) // comma-separated, or a list in the file

	if len(listen) == 0 {
		if c.GuestAPIEndpoint != "" {
			return nil, errors.New("guest_api.endpoint: is set but guest_api.listen is empty")
		}
		return nil, nil
	}
	for _, a := range listen {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("guest_api.listen: %q: want host:port (%v)", a, err)
		}
	}
	if c.GuestAPIEndpoint != "" {
		if _, _, err := net.SplitHostPort(c.GuestAPIEndpoint); err != nil {
			return nil, fmt.Errorf("guest_api.endpoint: %q: want host:port (%v)", c.GuestAPIEndpoint, err)
		}
	}
	if c.GuestAPIRate <= 0 || c.GuestAPIBurst < 1 {
		return nil, fmt.Errorf("guest_api.rate %v, guest_api.burst %d: want both above zero", c.GuestAPIRate, c.GuestAPIBurst)
	}
	abs, err := filepath.Abs(c.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	att, err := be.attacher(filepath.Join(filepath.Clean(abs), agent.GuestsDir))
	if err != nil {
		return nil, err
	}
	cfg := &agent.GuestAPIConfig{Listen: listen, Endpoint: c.GuestAPIEndpoint, Proxmox: be.Client,
		Limits: guestapi.Options{Rate: c.GuestAPIRate, Burst: c.GuestAPIBurst}}
	if att != nil {
		cfg.Attach = att
	}
	if hub != nil {
		cfg.HubURL = c.HubURL
	}
	return cfg, nil
}

// Run serves until SIGINT or SIGTERM. kctx (bound by kong) lets SIGHUP
// parse the same command line and configuration file again.
func (c *ServeCmd) Run(g *Globals, kctx *kong.Context) error {
	hot, err := c.hotConfig(g)
	if err != nil {
		return err
	}
	// The ranges of the flags (their valid tags) were checked when the
	// command line and the configuration file were parsed (configcheck.go).
	level := new(slog.LevelVar)
	level.Set(hot.LogLevel)
	logger := levelLogger(g, g.stderr, level)
	if err := c.defaultDirs(hostDirs(), logger); err != nil {
		return err
	}

	hubCfg, err := c.hubConfig()
	if err != nil {
		return err
	}
	safetyCfg, err := g.Safety.agentConfig(c.HubHostID, c.Sim)
	if err != nil {
		return err
	}
	be, err := openBackend(g, c.Sim, logger)
	if err != nil {
		return err
	}
	defer be.Close()
	// What each run records as the Proxmox it is made against: a run
	// interrupted against one is never resumed or undone against another.
	origin := be.Client.Target()
	if c.Sim {
		logger.Info("serving against a simulated Proxmox VE host", "endpoint", be.Server.Endpoint, "node", be.Server.Node)
		origin = agent.SimOrigin
	}

	if !c.Sim {
		// A simulated host's guests are the process's own; a real host's
		// are shared with the console's runs (felhom-agent run).
		locks, err := hostGuestLocks(c.Socket)
		if err != nil {
			return err
		}
		be.Env.Locks = locks
	}

	guestCfg, err := c.guestAPIConfig(be, hubCfg)
	if err != nil {
		return err
	}

	nt, err := c.Notify.notifier(c.StateDir, logger)
	if err != nil {
		return err
	}
	defer closeNotifier(nt, logger)

	// A plan reads the agent's desired state (hub.desired_state()), once
	// there is an agent with a hub channel.
	var planDesired atomic.Pointer[agent.Agent]
	desired := func() builtins.DesiredSource {
		if a := planDesired.Load(); a != nil {
			return a
		}
		return nil
	}
	ag, err := agent.New(agent.Config{
		PlaybooksDir:   g.Playbooks,
		StateDir:       c.StateDir,
		Listen:         c.Listen,
		Socket:         c.Socket,
		HubKeys:        hot.HubKeys,
		Retention:      hot.Retention,
		ShutdownGrace:  c.ShutdownGrace,
		HealthInterval: c.HealthEvery,
		QueueMax:       c.RunsQueueMax,
		Limits:         agent.RunLimits{LogLine: c.LogLineKiB << 10, Log: int64(c.LogMiB) << 20, Result: c.ResultKiB << 10},
		Proxmox:        be.Client,
		Origin:         origin,
		Engine: engine.Config{
			Env:           be.Env,
			MaxSteps:      g.Runtime.MaxSteps,
			MaxConcurrent: g.Runtime.MaxConcurrent,
			MaxMemory:     g.Runtime.engineMemory(),
		},
		Logger:   logger,
		LogLevel: level,
		Hub:      hubCfg,
		Notifier: nt,
		GuestAPI: guestCfg,
		Planner: func(ctx context.Context, pb *engine.Playbook, params *engine.Params) (any, error) {
			return be.planner(g, c.Sim, slog.New(slog.DiscardHandler), desired)(ctx, pb, params)
		},
		Safety: safetyCfg,
	})
	if err != nil {
		return withSetting(err)
	}
	if hubCfg != nil {
		planDesired.Store(ag)
	}
	if fp := ag.GuestAPIFingerprint(); fp != "" {
		fmt.Fprintf(g.stderr, "guest API on %v, certificate SHA-256 fingerprint %s\n", ag.GuestAPIAddrs(), fp)
	}

	ctx, release := stopOnSignals(ag, logger, c.ShutdownGrace)
	defer release()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				h, err := reloadServeConfig(kctx)
				if err != nil {
					logger.Error("configuration reload refused; keeping the running configuration", "err", err)
					continue
				}
				ag.Reconfigure(h)
			}
		}
	}()
	return ag.Run(ctx)
}

// defaultDirs fills in the state directory and the socket that no
// setting chose (dirs.go) — with --sim, the simulated host's own —
// creating a per-user default (mode 0700) and saying so.
func (c *ServeCmd) defaultDirs(e dirEnv, logger *slog.Logger) error {
	stateDir, socket := e.stateDir, e.socket
	if c.Sim {
		stateDir, socket = e.simStateDir, e.simSocket
	}
	if c.StateDir == "" {
		p := stateDir()
		if p.Note != "" {
			logger.Info(p.Note)
		}
		c.StateDir = p.Dir // the state directory's lock creates it
	}
	if c.Socket == "" {
		p := socket()
		if p.Note != "" {
			logger.Info(p.Note)
			if err := os.MkdirAll(filepath.Dir(p.Dir), 0o700); err != nil {
				return fmt.Errorf("socket: %w (set socket to choose another place)", err)
			}
		}
		c.Socket = p.Dir
	}
	return nil
}

// settingNames says, for each field an [agent.SettingError] names, which
// setting to change, in its three spellings (config key, flag,
// environment).
var settingNames = map[string]string{
	"PlaybooksDir":        "playbooks (--playbooks, FELHOM_AGENT_PLAYBOOKS)",
	"StateDir":            "state_dir (--state-dir, FELHOM_AGENT_STATE_DIR)",
	"Listen":              "listen (--listen, FELHOM_AGENT_LISTEN)",
	"Socket":              "socket (--socket, FELHOM_AGENT_SOCKET)",
	"Safety.OperatorKeys": "safety.operator_keys (--safety-operator-keys, FELHOM_AGENT_SAFETY_OPERATOR_KEYS)",
}

// withSetting adds to a fatal start error which setting to change.
func withSetting(err error) error {
	if se, ok := errors.AsType[*agent.SettingError](err); ok {
		if name := settingNames[se.Field]; name != "" {
			return fmt.Errorf("%w\n  the setting to change: %s", err, name)
		}
	}
	return err
}

// notifyDrain is how long a stopping agent still tries to deliver the
// notifications it has queued.
const notifyDrain = 10 * time.Second

// closeNotifier delivers what is queued, for a while, then stops.
func closeNotifier(nt *notify.Notifier, logger *slog.Logger) {
	if nt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyDrain)
	defer cancel()
	if err := nt.Close(ctx); err != nil {
		logger.Error("closing the notifier", "err", err)
	}
}

// stopOnSignals returns a context that the first SIGINT or SIGTERM ends —
// the agent's graceful stop — and makes the second hurry the stop (runs
// still going are cancelled at once), as a second Ctrl-C does in the
// tools operators know. release stops listening.
func stopOnSignals(ag *agent.Agent, logger *slog.Logger, grace time.Duration) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-sigs:
			logger.Info("stopping: runs in flight get the grace period; interrupt again to cancel them now", "signal", sig.String(), "grace", grace)
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			ag.Hurry()
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// hotConfig is what SIGHUP may change, from the flags.
func (c *ServeCmd) hotConfig(g *Globals) (agent.HotConfig, error) {
	var h agent.HotConfig
	if err := h.LogLevel.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return h, fmt.Errorf("log_level: %w", err)
	}
	keys, err := parseHubKeys(c.HubKeys)
	if err != nil {
		return h, err
	}
	h.HubKeys = keys
	h.Retention = store.Retention{KeepLast: c.RunsKeep, MaxAge: c.RunsMaxAge}
	return h, nil
}

// parseHubKeys reads hub.keys in either form: the configuration file's
// JSON object (which the resolver hands over as JSON text) or the
// environment's ID=BASE64[,ID=BASE64]. Errors never quote key material.
func parseHubKeys(s string) (hub.Keys, error) {
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		var m map[string]string
		if err := json.Unmarshal([]byte(t), &m); err != nil {
			return nil, errors.New("hub.keys: want an object of key id to base64 public key")
		}
		return hub.KeysFromMap(m)
	}
	return hub.ParseKeys(s)
}

// newServeParser builds a fresh parser of the whole command line, with
// the Globals it fills, for reloadServeConfig. Tests that mount ServeCmd
// in a command line of their own replace it.
var newServeParser = func() (*kong.Kong, *Globals, error) {
	var cli CLI
	p, err := newParser(&cli, io.Discard, io.Discard)
	return p, &cli.Globals, err
}

// reloadServeConfig parses the original command line again, which re-reads
// the configuration file and the environment, and returns what a running
// agent can take on.
func reloadServeConfig(kctx *kong.Context) (agent.HotConfig, error) {
	if kctx == nil {
		return agent.HotConfig{}, errors.New("no command line to reload from")
	}
	parser, g, err := newServeParser()
	if err != nil {
		return agent.HotConfig{}, err
	}
	k2, exited, err := parse(parser, kctx.Args)
	switch {
	case err != nil:
		return agent.HotConfig{}, err
	case exited != nil:
		return agent.HotConfig{}, errors.New("the command line no longer selects serve")
	}
	node := k2.Selected()
	if node == nil || !node.Target.CanAddr() {
		return agent.HotConfig{}, errors.New("the command line no longer selects serve")
	}
	sc, ok := node.Target.Addr().Interface().(*ServeCmd)
	if !ok {
		return agent.HotConfig{}, errors.New("the command line no longer selects serve")
	}
	return sc.hotConfig(g)
}

// levelLogger is Globals.logger with a level that can change while the
// agent runs.
func levelLogger(g *Globals, w io.Writer, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: humanReplaceAttr}
	if g.LogFormat == "json" {
		opts.ReplaceAttr = jsonReplaceAttr
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
