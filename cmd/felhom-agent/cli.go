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

	Run       RunCmd       `cmd:"" help:"Run one playbook once and print a summary."`
	Check     CheckCmd     `cmd:"" help:"Load and validate playbooks without running them."`
	Test      TestCmd      `cmd:"" help:"Run playbook tests (*_test.star), each on a fresh simulated host."`
	Fmt       FmtCmd       `cmd:"" help:"Format playbooks (buildifier's formatter)."`
	Doc       DocCmd       `cmd:"" help:"Print the reference of every builtin module."`
	Serve     ServeCmd     `cmd:"" help:"Run the agent daemon: hot-reloaded playbooks, hub triggers, timers, run store, local API, metrics."`
	Runs      RunsCmd      `cmd:"" help:"List, show, follow or cancel runs of a serving agent."`
	Trigger   TriggerCmd   `cmd:"" help:"Start a run of a playbook on a serving agent."`
	Playbooks PlaybooksCmd `cmd:"" help:"List a serving agent's playbooks."`
	State     StateCmd     `cmd:"" help:"Export or import the agent's state directory (backup, restore on a new host)."`
	Sim       SimCmd       `cmd:"" help:"Serve a simulated Proxmox VE host over TLS (for trying the agent and for tests)."`
	HubSim    HubSimCmd    `cmd:"" name:"hub-sim" help:"Serve a simulated Felhom hub over TLS (for trying the hub channel and for tests)."`
	Version   VersionCmd   `cmd:"" help:"Print the agent's version."`
}

// newParser builds the kong parser with the configuration resolver and the
// FELHOM_AGENT_ environment prefix.
func newParser(cli *CLI, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(cli,
		kong.Name("felhom-agent"),
		kong.Description("Felhom host agent for Proxmox VE: Starlark playbooks for provisioning, backup, restore, self-test and monitoring."),
		kong.UsageOnError(),
		kong.DefaultEnvars("FELHOM_AGENT"),
		kong.Configuration(jsonConfig),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		cliVars(),
	)
}

// cliVars are the values interpolated into flag tags: the runtime's
// defaults are the CLI's, so there is one source of truth.
func cliVars() kong.Vars {
	return kong.Vars{
		"version":        agentVersion(),
		"max_concurrent": strconv.Itoa(engine.DefaultMaxConcurrent),
		"max_steps":      strconv.FormatUint(engine.DefaultMaxSteps, 10),
		"max_memory_mib": strconv.Itoa(engine.DefaultMaxMemory >> 20),
		"queue_max":      strconv.Itoa(agent.DefaultQueueMax),
		"statuses":       statusEnum(),
		"status_names":   runstate.Names(),
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
