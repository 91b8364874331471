package builtins

import (
	"fmt"

	starjson "go.starlark.net/lib/json"
	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// JSONTable and TimeTable are go.starlark.net's lib/json and lib/time
// modules as Tables, so they are documented in the reference like our own
// modules. Every member delegates to the upstream builtin unchanged; a test
// fails if upstream gains a member these tables do not list.
var (
	JSONTable = &Table{
		Effect: Reads,
		Name:   "json",
		Doc:    "JSON encoding and decoding (go.starlark.net/lib/json).",
		Funcs: []Func{
			upstream(starjson.Module, "encode", "encode(x)", "Returns x as a JSON string: None, bools, ints, floats, strings, lists/tuples, dicts with string keys and structs (as objects). Fails on other values and on non-finite floats."),
			upstream(starjson.Module, "encode_indent", `encode_indent(x, /, *, prefix="", indent="\t")`, "Like encode, indented: json.indent(json.encode(x), prefix = prefix, indent = indent)."),
			boundedDecode(upstream(starjson.Module, "decode", "decode(x, default=?)", "Parses the JSON string x: objects become dicts, arrays lists, numbers int or float. Fails on invalid JSON unless default is given, which is then returned. A document whose decoded value would not fit under the run's memory limit fails before it is decoded (about 32 bytes per element plus its text).")),
			upstream(starjson.Module, "indent", `indent(str, /, *, prefix="", indent="\t")`, "Returns the valid JSON string str pretty-printed with the given line prefix and indentation unit."),
		},
	}

	TimeTable = &Table{
		Effect: Reads,
		Name:   "time",
		Doc:    "Times and durations (go.starlark.net/lib/time). Durations support arithmetic and comparison (2 * time.minute < time.hour) and are accepted wherever a builtin takes a duration.",
		Funcs: []Func{
			upstream(startime.Module, "from_timestamp", "from_timestamp(sec, nsec=0)", "Returns the time of the Unix timestamp sec seconds (plus nsec nanoseconds) after 1970-01-01 UTC."),
			upstream(startime.Module, "is_valid_timezone", "is_valid_timezone(loc)", "Reports whether loc is a time zone name the host knows, such as \"Europe/Budapest\"."),
			journaledAs(Replayed, refusingArgs(upstream(startime.Module, "now", "now()", "Returns the current local time on the run's clock: the host's, or in a playbook test the simulated host's (sim.now(), moved by sim.advance)."))),
			upstream(startime.Module, "parse_duration", "parse_duration(d)", "Parses a duration string such as \"1h30m\" or \"90s\"."),
			upstream(startime.Module, "parse_time", `parse_time(x, format="2006-01-02T15:04:05Z07:00", location="UTC")`, "Parses the time string x in Go's layout syntax (RFC 3339 by default) in the named location."),
			upstream(startime.Module, "time", `time(year=0, month=0, day=0, hour=0, minute=0, second=0, nanosecond=0, location="UTC")`, "Returns the time yyyy-mm-dd hh:mm:ss + nanosecond in the named location, normalizing out-of-range values as Go's time.Date does (month = 0 is December of the year before)."),
		},
		Attrs: []Attr{
			upstreamAttr(startime.Module, "nanosecond", "One nanosecond, as a duration."),
			upstreamAttr(startime.Module, "microsecond", "One microsecond, as a duration."),
			upstreamAttr(startime.Module, "millisecond", "One millisecond, as a duration."),
			upstreamAttr(startime.Module, "second", "One second, as a duration."),
			upstreamAttr(startime.Module, "minute", "One minute, as a duration."),
			upstreamAttr(startime.Module, "hour", "One hour, as a duration."),
		},
	}
)

// upstream wraps member name of m as a Func. It panics at package
// initialisation if upstream renamed or removed the member.
func upstream(m *starlarkstruct.Module, name, sig, doc string) Func {
	b, ok := m.Members[name].(*starlark.Builtin)
	if !ok {
		panic(fmt.Sprintf("builtins: %s.%s is not an upstream builtin", m.Name, name))
	}
	return Func{
		Name:    name,
		Sig:     sig,
		Doc:     doc,
		Journal: Pure,
		Fn: func(thread *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			// Upstream unpacks its own arguments, and its errors carry
			// its own name (unqualified for time's members).
			return b.CallInternal(thread, args, kwargs)
		},
	}
}

// refusingArgs makes f refuse arguments, which upstream's time.now ignores:
// every builtin unpacks its arguments, so a call check accepts does not
// fail at run time and the other way round.
func refusingArgs(f Func) Func {
	inner := f.Fn
	f.Fn = func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
			return nil, err
		}
		return inner(thread, b, nil, nil)
	}
	return f
}

// journaledAs is f declared as journaled by j: time.now is a source of
// variation, answered from the journal on replay.
func journaledAs(j Journaling, f Func) Func {
	f.Journal = j
	return f
}

func upstreamAttr(m *starlarkstruct.Module, name, doc string) Attr {
	v, ok := m.Members[name]
	if !ok {
		panic(fmt.Sprintf("builtins: %s.%s does not exist upstream", m.Name, name))
	}
	return Attr{Name: name, Doc: doc, Value: v}
}

// decodeCostPerElement estimates what one decoded JSON element costs
// beyond its text: an interface slot in its list or dict (16 bytes), the
// value's own header, and the slack of a growing slice.
const decodeCostPerElement = 32

// boundedDecode asks the run's memory budget (Env.Reserve) for the
// decoded size of the document before decoding it: one call of
// json.decode could otherwise allocate gigabytes in a single Starlark
// step, before any guard could act.
func boundedDecode(f Func) Func {
	inner := f.Fn
	f.Fn = func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if env := EnvOf(thread); env != nil && env.Reserve != nil && len(args) > 0 {
			if s, ok := starlark.AsString(args[0]); ok {
				if err := env.Reserve(decodeEstimate(s)); err != nil {
					return nil, fmt.Errorf("json.decode: a document of %d bytes: %w", len(s), err)
				}
			}
		}
		return inner(thread, b, args, kwargs)
	}
	return f
}

// decodeEstimate is the bytes a decoded document of text s takes, about:
// its text plus decodeCostPerElement per element (each ',', ':', '[' and
// '{' starts one).
func decodeEstimate(s string) uint64 {
	var elems uint64
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',', ':', '[', '{':
			elems++
		}
	}
	return uint64(len(s)) + (elems+1)*decodeCostPerElement
}
