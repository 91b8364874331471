package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = ""

// agentVersion is the link-time version, else the module version recorded
// in the build info, else "devel".
func agentVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// buildInfo is what `version` and --version print, from the binary's build
// info: the commit and its time as the go command recorded them (vcs.*
// settings; "+dirty" when the tree had changes), and the Go version.
type buildInfo struct {
	Version, Commit, Date, Go string
	Dirty                     bool
}

func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoOf(bi)
}

// buildInfoOf reads bi (nil: nothing recorded).
func buildInfoOf(bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: agentVersion(), Commit: "unknown", Date: "unknown", Go: "unknown"}
	if bi == nil {
		return b
	}
	b.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Date = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}

// String is "felhom-agent VERSION (commit 1a2b3c4d5e6f[+dirty], built
// DATE, GOVERSION)".
func (b buildInfo) String() string {
	commit := b.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if b.Dirty {
		commit += "+dirty"
	}
	return fmt.Sprintf("felhom-agent %s (commit %s, built %s, %s)", b.Version, commit, b.Date, b.Go)
}

// VersionCmd prints the agent's version, commit, build date and Go version.
type VersionCmd struct {
	JSON bool `name:"json" help:"Print JSON: version, commit, date, go, dirty." env:"-"`
}

// Run prints the one line (or the JSON object).
func (c VersionCmd) Run(g *Globals) error {
	b := readBuildInfo()
	if c.JSON {
		return writeJSON(g.stdout, map[string]any{"version": b.Version, "commit": b.Commit, "date": b.Date, "go": b.Go, "dirty": b.Dirty})
	}
	_, err := fmt.Fprintln(g.stdout, b.String())
	return err
}

// versionLine is --version's text; kong prints it from the "version" var.
func versionLine() string { return strings.TrimSpace(readBuildInfo().String()) }
