package main

import (
	"fmt"
	"runtime/debug"
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

// VersionCmd prints the agent's version and the Go version it was built with.
type VersionCmd struct{}

// Run prints "felhom-agent VERSION (GOVERSION)".
func (VersionCmd) Run(g *Globals) error {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
	}
	_, err := fmt.Fprintf(g.stdout, "felhom-agent %s (%s)\n", agentVersion(), goVersion)
	return err
}
