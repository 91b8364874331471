package main

import (
	"fmt"
)

// GuestTokenCmd groups the guest API's token commands.
type GuestTokenCmd struct {
	Rotate GuestTokenRotateCmd `cmd:"" help:"Give a container a new guest API token: print it once, rewrite its bootstrap file, attach the file read-only."`
}

// GuestTokenRotateCmd asks the serving agent for a new token for one
// container. The old token stops answering at once; the new one is
// printed here once and written into the guest's bootstrap file, and
// appears nowhere else (the agent keeps only its hash).
type GuestTokenRotateCmd struct {
	remoteFlags
	VMID int `arg:"" help:"The container's id." placeholder:"VMID"`
}

// Run mints the token and prints it with where it was delivered.
func (c *GuestTokenRotateCmd) Run(g *Globals) error {
	cl, ctx, done := c.session()
	defer done()
	tok, err := cl.MintGuestToken(ctx, c.VMID)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(g.stdout, tok)
	}
	fmt.Fprintf(g.stdout, "guest %d: new token (shown only now; the old one no longer answers)\n%s\n", tok.VMID, tok.Token)
	fmt.Fprintf(g.stdout, "bootstrap file: %s\n", tok.Bootstrap)
	switch {
	case tok.Mount != "":
		fmt.Fprintf(g.stdout, "attached read-only to the container as %s at /etc/felhom-bootstrap\n", tok.Mount)
	case tok.Attached:
		fmt.Fprintln(g.stdout, "already attached to the container at /etc/felhom-bootstrap")
	default:
		fmt.Fprintln(g.stdout, "not attached to the container (privileged operations are off)")
	}
	if tok.Warning != "" {
		fmt.Fprintf(g.stderr, "warning: %s\n", tok.Warning)
	}
	return nil
}
