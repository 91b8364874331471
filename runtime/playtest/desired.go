package playtest

import (
	"encoding/json"
	"fmt"
	"sync"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub/channel"
)

// testDesired is a test's stand-in for the hub channel: what
// hub.desired_state() reads, set with sim.set_desired_state.
type testDesired struct {
	mu  sync.Mutex
	gen int64
	doc json.RawMessage
}

// DesiredState implements builtins.DesiredSource.
func (d *testDesired) DesiredState() (int64, json.RawMessage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gen, d.doc
}

const desiredKey = "felhom.playtest.desired"

// simSetDesired validates a desired state as the agent validates the
// hub's and makes it the accepted one, under the next generation (or
// generation when given).
func simSetDesired(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		doc starlark.Value
		gen int64
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "doc", &doc, "generation?", &gen); err != nil {
		return nil, err
	}
	d, ok := thread.Local(desiredKey).(*testDesired)
	if !ok {
		return nil, fmt.Errorf("%s: no desired state in this test", b.Name())
	}
	encode := starjson.Module.Members["encode"].(*starlark.Builtin)
	s, err := starlark.Call(thread, encode, starlark.Tuple{doc}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	parsed, err := channel.ParseDesiredState([]byte(string(s.(starlark.String))))
	if err != nil {
		return nil, fmt.Errorf("%s: the agent would refuse it: %w", b.Name(), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen == 0 {
		gen = d.gen + 1
	}
	d.gen, d.doc = gen, parsed.PlaybookJSON() // as the agent gives it: no retrieval password
	return starlark.MakeInt64(gen), nil
}
