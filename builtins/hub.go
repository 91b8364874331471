package builtins

import (
	"encoding/json"
	"fmt"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
)

// HubTable is the `hub` module: what a playbook may know of the hub, which
// is the desired state it last sent and this agent accepted — nothing
// else. The hub's address, key, envelope and jobs stay in the daemon.
var HubTable = &Table{
	Effect: Reads,
	Name:   "hub",
	Doc: "The desired state of this host, as the hub last sent it and this agent accepted it " +
		"(validated against the agent's schema, every default filled in; docs/hub-protocol.md). " +
		"Nothing else of the hub is reachable from a playbook.",
	Funcs: []Func{
		{Name: "desired_state", Journal: Replayed, Sig: "desired_state()", Fn: hubDesiredState,
			Doc: "Returns struct(generation, state): generation the int the hub numbered it with (0 when none was accepted yet), " +
				"state a dict of the document (schema, golden_vmid, storage, archive_storage, guests: a list of dicts with " +
				"vmid, kind, hostname, cores, memory, net, description, power, and customer_id when the hub names one — never a guest's retrieval_password, which stays in the agent) or None when there is none. " +
				"Fails when the agent has no hub configured (felhom-agent run and test have none unless a test sets one)."},
	},
}

// DesiredSource is where hub.desired_state() reads from: the daemon's hub
// channel, or a test's fixture. DesiredState returns the accepted
// generation and the normalized document as JSON (nil when none).
type DesiredSource interface {
	DesiredState() (generation int64, doc json.RawMessage)
}

// errNoHub is hub.desired_state() without a hub.
var errNoHub = fmt.Errorf("no hub is configured (hub.url)")

func hubDesiredState(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	env, err := RunEnv(thread, b)
	if err != nil {
		return nil, err
	}
	if env.Desired == nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), errNoHub)
	}
	gen, doc := env.Desired.DesiredState()
	state := starlark.Value(starlark.None)
	if len(doc) > 0 {
		decode := starjson.Module.Members["decode"].(*starlark.Builtin)
		v, err := starlark.Call(thread, decode, starlark.Tuple{starlark.String(doc)}, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		state = v
	}
	return newStruct(starlark.StringDict{
		"generation": starlark.MakeInt64(gen),
		"state":      state,
	}), nil
}
