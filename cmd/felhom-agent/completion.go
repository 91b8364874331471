package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// Shell completion is kongplete's (github.com/willabides/kongplete): it
// derives commands, flags and enum values from the kong model, and the
// predictors below complete what only a serving agent knows — playbook
// names, trigger names and run ids — over its socket, with a short
// timeout, so that completing never hangs when no agent runs.
//
// kongplete over github.com/jotaen/kong-completion: kong-completion
// (v0.0.4, October 2022) is a fork of kongplete whose own README says it
// was based on it; kongplete is the original, still released (v0.4.0,
// November 2023, against a newer kong), with fewer dependencies (no
// github.com/pkg/errors), and both drive the same posener/complete
// protocol for bash, zsh and fish with named dynamic predictors. The
// shell side is one line per shell, printed by `felhom-agent completion`.

// completeTimeout bounds a predictor's question to the agent.
const completeTimeout = 500 * time.Millisecond

// complete answers a completion request from the shell (COMP_LINE is
// set) and reports whether it did; the process then exits 0.
func completeRequest(parser *kong.Kong) bool {
	if os.Getenv("COMP_LINE") == "" {
		return false
	}
	answered := false
	kongplete.Complete(parser,
		kongplete.WithPredictor("playbook", agentPredictor(playbookNames)),
		kongplete.WithPredictor("trigger", agentPredictor(triggerNames)),
		kongplete.WithPredictor("run", agentPredictor(runIDs)),
		kongplete.WithExitFunc(func(int) { answered = true }),
		kongplete.WithErrorHandler(func(error) {}),
	)
	return answered
}

// agentPredictor completes from the serving agent's answers; the socket is
// the --socket of the line being completed, else FELHOM_AGENT_SOCKET, else
// the default.
func agentPredictor(list func(context.Context, *api.Client) []string) complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		cl := api.NewClient(socketOf(a.All))
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
		defer cancel()
		return list(ctx, cl)
	})
}

// socketOf finds the socket a command line names.
func socketOf(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--socket="); ok {
			return v
		}
		if a == "--socket" && i+1 < len(args) {
			return args[i+1]
		}
	}
	if v := os.Getenv("FELHOM_AGENT_SOCKET"); v != "" {
		return v
	}
	return hostDirs().socket().Dir
}

func playbookNames(ctx context.Context, cl *api.Client) []string {
	pbs, _ := cl.Playbooks(ctx)
	var out []string
	for _, p := range pbs {
		out = append(out, p.Name)
	}
	return out
}

func triggerNames(ctx context.Context, cl *api.Client) []string {
	pbs, _ := cl.Playbooks(ctx)
	seen := map[string]bool{}
	var out []string
	for _, p := range pbs {
		for _, n := range append(append([]string{}, p.Triggers...), p.Name) {
			if p.Version != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

func runIDs(ctx context.Context, cl *api.Client) []string {
	runs, _ := cl.Runs(ctx, api.ListFilter{Limit: 50})
	var out []string
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

// CompletionCmd prints the line that makes a shell complete felhom-agent.
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"The shell: bash, zsh or fish."`
}

// Help says where the line goes.
func (c *CompletionCmd) Help() string {
	return `Add the output to your shell's start-up file:

  bash:  echo 'eval "$(felhom-agent completion bash)"' >> ~/.bashrc
  zsh:   echo 'eval "$(felhom-agent completion zsh)"' >> ~/.zshrc
  fish:  felhom-agent completion fish > ~/.config/fish/completions/felhom-agent.fish

Commands, flags, enum values, playbook and trigger names and run ids complete
(the last three from the serving agent, when one answers on --socket).`
}

// Run prints the script for the shell, naming this binary by its path.
func (c *CompletionCmd) Run(g *Globals) error {
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		if bin, err = exec.LookPath("felhom-agent"); err != nil {
			return fmt.Errorf("completion: cannot find this binary's path: %w", err)
		}
	}
	q := shellQuote(bin)
	var script string
	switch c.Shell {
	case "bash":
		script = "complete -o default -C " + q + " felhom-agent\n"
	case "zsh":
		script = "autoload -U +X bashcompinit && bashcompinit\ncomplete -o default -C " + q + " felhom-agent\n"
	case "fish":
		script = `function __complete_felhom_agent
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    ` + q + `
end
complete -f -c felhom-agent -a "(__complete_felhom_agent)"
`
	}
	_, err = fmt.Fprint(g.stdout, script)
	return err
}

// shellQuote quotes s for bash, zsh and fish alike.
func shellQuote(s string) string {
	if !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
