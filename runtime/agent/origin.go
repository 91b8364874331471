package agent

import (
	"context"
	"fmt"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// A run's origin is the Proxmox it was made against (Config.Origin), which
// it records when it is accepted and again when it starts
// (store.Run.Origin). A queued run accepted for another host is refused at
// the agent's start (requeue), never having started. An interrupted run is
// resumed, undone, or its tasks followed only by an agent that talks to the
// same one: against another host its journal's answers are another host's
// and its compensations would act on guests it never touched. Such a run
// ends failed, its error naming both origins, and nothing of it is sent to
// this agent's host. A run recorded without an origin (by an agent that
// did not record one) counts as made against the current host, as before.

// SimOrigin is the origin of runs made against a simulated host
// (felhom-agent serve --sim): every simulator is the same one, since each
// starts from the same default world, and none is a real host.
const SimOrigin = "sim"

// origin is the agent's own origin: Config.Origin, else the endpoint and
// node of the playbooks' client when it is a *proxmox.Client, else ""
// (none: runs record none, and no run is refused).
func (c *Config) origin() string {
	if c.Origin != "" {
		return c.Origin
	}
	if pc, ok := c.Engine.Env.Proxmox.(*proxmox.Client); ok && pc != nil {
		return pc.Target()
	}
	return ""
}

// describeOrigin is how an error names an origin.
func describeOrigin(o string) string {
	if o == SimOrigin {
		return "the simulator"
	}
	return o
}

// foreign says why a run recorded with origin o may not be resumed, undone
// or followed by this agent ("made against the simulator; this agent talks
// to …", the caller saying what it leaves undone), or "" when it may: it
// was made against this agent's Proxmox, or either side names none.
func (a *Agent) foreign(o string) string {
	if o == "" || a.origin == "" || o == a.origin {
		return ""
	}
	return fmt.Sprintf("made against %s; this agent talks to %s", describeOrigin(o), describeOrigin(a.origin))
}

// runOrigins looks up the origin of each run id once, for the task
// followers recovery starts; seen starts with the recovered runs'.
type runOrigins struct {
	a    *Agent
	seen map[string]string
}

// of is run id's origin, or ok false when it cannot be read (its task is
// then left for a later start).
func (o *runOrigins) of(ctx context.Context, id string) (origin string, ok bool) {
	if v, ok := o.seen[id]; ok {
		return v, true
	}
	r, err := o.a.store.Get(ctx, id)
	if err != nil {
		o.a.log.Warn("reading a recovered task's run failed; its task is followed at a later start", "run", id, "err", err)
		return "", false
	}
	o.seen[id] = r.Origin
	return r.Origin, true
}
