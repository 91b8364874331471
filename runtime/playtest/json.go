package playtest

import (
	"encoding/json"

	starjson "go.starlark.net/lib/json"
	"go.starlark.net/starlark"
)

// encodeJSON encodes a Starlark value with the json module playbooks use.
func encodeJSON(thread *starlark.Thread, v starlark.Value) (json.RawMessage, error) {
	out, err := starlark.Call(thread, starjson.Module.Members["encode"], starlark.Tuple{v}, nil)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(string(out.(starlark.String))), nil
}

// decodeJSON decodes JSON into Starlark values (objects become dicts).
func decodeJSON(thread *starlark.Thread, b json.RawMessage) (starlark.Value, error) {
	return starlark.Call(thread, starjson.Module.Members["decode"], starlark.Tuple{starlark.String(b)}, nil)
}
