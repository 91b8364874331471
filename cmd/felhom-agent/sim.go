package main

// SimCmd serves the simulator's default world; wired once pvesim lands.
type SimCmd struct{}

// Run is not wired yet.
func (SimCmd) Run(g *Globals) error { return nil }
