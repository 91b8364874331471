package main

import (
	"io"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/agent"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// CLI is the whole command line: global flags plus one struct per command,
// each with Run(*Globals) error.
type CLI struct {
	Globals

	// VersionFlag is --version on every command: what `version` prints.
	VersionFlag kong.VersionFlag `name:"version" help:"Print the version, commit and build date, and exit." env:"-"`

	Run        RunCmd        `cmd:"" help:"Run one playbook once and print a summary."`
	Plan       PlanCmd       `cmd:"" help:"Print what a run of a playbook would do, changing nothing: the host is read with GETs only and mirrored."`
	Check      CheckCmd      `cmd:"" help:"Load and validate playbooks without running them."`
	Test       TestCmd       `cmd:"" help:"Run playbook tests (*_test.star), each on a fresh simulated host."`
	Fmt        FmtCmd        `cmd:"" help:"Format playbooks (buildifier's formatter)."`
	Doc        DocCmd        `cmd:"" help:"Print the reference of every builtin module."`
	Serve      ServeCmd      `cmd:"" help:"Run the agent daemon: hot-reloaded playbooks, hub triggers, timers, run store, local API, metrics."`
	Runs       RunsCmd       `cmd:"" help:"List, show, follow or cancel runs of a serving agent."`
	Trigger    TriggerCmd    `cmd:"" help:"Start a run of a playbook on a serving agent."`
	Playbooks  PlaybooksCmd  `cmd:"" help:"List a serving agent's playbooks."`
	Pending    PendingCmd    `cmd:"" help:"List the destructive operations waiting for an operator's signature."`
	Sign       SignCmd       `cmd:"" help:"Sign a pending operation (or a new one) with your SSH key or agent."`
	Approve    ApproveCmd    `cmd:"" help:"Submit a signed operation to a serving agent: the parked run goes on, or a new run carries it out."`
	State      StateCmd      `cmd:"" help:"Export or import the agent's state directory (backup, restore on a new host)."`
	GuestToken GuestTokenCmd `cmd:"" name:"guest-token" help:"Manage the guest API's per-container tokens on a serving agent."`
	Sim        SimCmd        `cmd:"" help:"Serve a simulated Proxmox VE host over TLS (for trying the agent and for tests)."`
	HubSim     HubSimCmd     `cmd:"" name:"hub-sim" help:"Serve a simulated Felhom hub over TLS (for trying the hub channel and for tests)."`
	Version    VersionCmd    `cmd:"" help:"Print the agent's version, commit and build date."`
	Man        ManCmd        `cmd:"" help:"Print the manual page (roff), generated from this command line (deploy/felhom-agent.1)."`

	Completion CompletionCmd `cmd:"" help:"Print the line that makes bash, zsh or fish complete felhom-agent's commands, flags, playbooks and run ids."`
}

// newParser builds the kong parser with the configuration resolver and the
// FELHOM_AGENT_ environment prefix.
func newParser(cli *CLI, stdout, stderr io.Writer) (*kong.Kong, error) {
	p, err := kong.New(cli,
		kong.Name("felhom-agent"),
		kong.Description("Felhom host agent for Proxmox VE: Starlark playbooks for provisioning, backup, restore, self-test and monitoring."),
		kong.UsageOnError(),
		kong.DefaultEnvars("FELHOM_AGENT"),
		kong.Configuration(jsonConfig),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		cliVars(),
	)
	if err == nil {
		groupGlobals(p)
	}
	return p, err
}

// globalGroup holds the flags every command inherits: a command's help
// lists its own flags first, then these under their own heading.
var globalGroup = &kong.Group{Key: "global", Title: "Global flags (every command; also FELHOM_AGENT_* and --config):"}

// groupGlobals puts the root's flags (Globals, --version) in globalGroup,
// except --help, which stays with the command's own.
func groupGlobals(p *kong.Kong) {
	for _, f := range p.Model.Flags {
		if f.Group == nil && f.Name != "help" {
			f.Group = globalGroup
		}
	}
}

// cliVars are the values interpolated into flag tags: the runtime's
// defaults are the CLI's, so there is one source of truth.
func cliVars() kong.Vars {
	return kong.Vars{
		"version":        versionLine(),
		"max_concurrent": strconv.Itoa(engine.DefaultMaxConcurrent),
		"max_steps":      strconv.FormatUint(engine.DefaultMaxSteps, 10),
		"max_memory_mib": strconv.Itoa(engine.DefaultMaxMemory >> 20),
		"queue_max":      strconv.Itoa(agent.DefaultQueueMax),
		"statuses":       statusEnum(),
		"status_names":   runstate.Names(),
		"state_dir_help": "The agent's state directory: the run store (runs.db) and its lock. Default $STATE_DIRECTORY under systemd, else " + systemStateDir + ", else (a user who cannot write it) $XDG_STATE_HOME/" + appDirName + ".",
		"sim_state_dir":  "$XDG_STATE_HOME/" + simDirName,
		"sim_socket":     socketName + " in $XDG_RUNTIME_DIR/" + simDirName,
		"socket_help":    "Unix socket of the serving agent's local API (mode 0660). Default " + socketName + " in $RUNTIME_DIRECTORY under systemd, else in " + systemRuntimeDir + ", else (a user who cannot write it) in $XDG_RUNTIME_DIR/" + appDirName + ".",
	}
}

// statusEnum is the run statuses as a kong enum ("" first: no filter),
// from the store's one table.
func statusEnum() string {
	var b strings.Builder
	for _, in := range runstate.All() {
		b.WriteByte(',')
		b.WriteString(string(in.Status))
	}
	return b.String()
}
