package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/internal/spell"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// ParamKind is the kind of a declared parameter.
type ParamKind string

// The parameter kinds a playbook can declare with param.*.
const (
	KindString   ParamKind = "string"
	KindInt      ParamKind = "int"      // a 64-bit signed integer
	KindBool     ParamKind = "bool"     //
	KindDuration ParamKind = "duration" // "90s", "1h30m", or whole seconds
	KindEnum     ParamKind = "enum"     // one of a declared set of strings
	KindSecret   ParamKind = "secret"   // a string redacted in run records
	KindList     ParamKind = "list"     // a list of one scalar kind
)

// Redacted replaces a secret parameter's value in run records.
const Redacted = "[redacted]"

// ParamType is a declared parameter's type, with the constraints the
// declaration adds to its kind. Every value a run is given, and every
// declared default, satisfies them: a value that does not is refused by
// [Declaration.Coerce] before any run exists.
type ParamType struct {
	Kind   ParamKind
	Values []string   // KindEnum: the allowed values, in declaration order
	Elem   *ParamType // KindList: the element type, never a list or secret

	// Format names a shape that a constructor fixes ([FormatVMID],
	// [FormatHostname], [FormatFQDN]); "" for none. The format implies the
	// constraints below (a vmid's Min and Max) or checks of its own.
	Format string
	// Min and Max bound a KindInt value, inclusive; nil means unbounded.
	Min, Max *int64
	// MaxLen bounds a string's length in bytes (KindString, KindSecret);
	// 0 means no bound.
	MaxLen int
	// Pattern is a regular expression (RE2 syntax) that the whole of a
	// KindString value must match; "" means any string.
	Pattern string

	re *regexp.Regexp // Pattern compiled, anchored at both ends
}

// The formats of param.vmid() and param.hostname(). Their rules are
// Proxmox VE's, from pve-common's src/PVE/JSONSchema.pm: pve_verify_vmid
// (pve-vmid, "^[1-9][0-9]{2,8}$", so 100..999999999), pve_verify_node_name
// (pve-node: one label, [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?) and
// pve_verify_dns_name (dns-name: such labels joined by '.'), with RFC
// 1123's length limits (a label at most 63 bytes, a name at most 253),
// which PVE's regular expressions leave to the resolver.
const (
	FormatVMID     = "vmid"
	FormatHostname = "hostname" // one DNS label, as PVE names nodes and pct writes /etc/hostname
	FormatFQDN     = "fqdn"     // a DNS name: labels joined by '.'
)

// String names the type the way refusals say what was expected: "int",
// "list of int", `one of "snapshot", "stop"`.
func (t *ParamType) String() string {
	switch t.Kind {
	case KindEnum:
		quoted := make([]string, len(t.Values))
		for i, v := range t.Values {
			quoted[i] = strconv.Quote(v)
		}
		return "one of " + strings.Join(quoted, ", ")
	case KindList:
		return "list of " + t.Elem.String()
	case KindDuration:
		return `duration (such as "90s" or "1h30m")`
	}
	switch t.Format {
	case FormatVMID:
		return fmt.Sprintf("vmid (%d..%d)", proxmox.MinVMID, proxmox.MaxVMID)
	case FormatHostname:
		return "hostname (one DNS label: letters, digits and inner '-', at most 63)"
	case FormatFQDN:
		return "DNS name (labels of letters, digits and inner '-', joined by '.', at most 253)"
	}
	s := string(t.Kind)
	switch {
	case t.Min != nil && t.Max != nil:
		s += fmt.Sprintf(" in %d..%d", *t.Min, *t.Max)
	case t.Min != nil:
		s += fmt.Sprintf(" >= %d", *t.Min)
	case t.Max != nil:
		s += fmt.Sprintf(" <= %d", *t.Max)
	}
	if t.Pattern != "" {
		s += " matching " + strconv.Quote(t.Pattern)
	}
	if t.MaxLen > 0 {
		s += fmt.Sprintf(" of at most %d bytes", t.MaxLen)
	}
	return s
}

// Valid strings: every string a run is given is valid UTF-8 (a record is
// JSON, which cannot carry anything else unchanged) and holds no NUL
// (which C-string consumers — PVE's Perl, pct, a shell — would cut at).
func validString(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

var (
	labelPattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
)

// constrain checks a converted value against t's constraints (recursively
// for a list's elements). It returns errMismatch or a describing error.
func (t *ParamType) constrain(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	switch t.Kind {
	case KindList:
		l, ok := v.(*starlark.List)
		if !ok {
			return errMismatch
		}
		for i := range l.Len() {
			if err := t.Elem.constrain(l.Index(i)); err != nil {
				return err
			}
		}
		return nil
	case KindInt:
		n, ok := v.(starlark.Int).Int64()
		if !ok || (t.Min != nil && n < *t.Min) || (t.Max != nil && n > *t.Max) {
			return errMismatch
		}
		return nil
	case KindString, KindSecret, KindEnum:
		s, _ := starlark.AsString(v)
		if !validString(s) || (t.MaxLen > 0 && len(s) > t.MaxLen) {
			return errMismatch
		}
		if t.re != nil && !t.re.MatchString(s) {
			return errMismatch
		}
		switch t.Format {
		case FormatHostname:
			if !labelPattern.MatchString(s) {
				return errMismatch
			}
		case FormatFQDN:
			if len(s) > 253 {
				return errMismatch
			}
			for label := range strings.SplitSeq(s, ".") {
				if !labelPattern.MatchString(label) {
					return errMismatch
				}
			}
		}
	}
	return nil
}

// compile prepares Pattern; a declaration calls it once.
func (t *ParamType) compile() error {
	if t.Pattern == "" {
		return nil
	}
	re, err := regexp.Compile(`^(?:` + t.Pattern + `)$`)
	if err != nil {
		return err
	}
	t.re = re
	return nil
}

// Param is one declared parameter.
type Param struct {
	Name string
	Type ParamType
	Doc  string
	// Required is set when the declaration gives no default: a run must be
	// given a value.
	Required bool
	// Default is the frozen value used when none is given (None for
	// default = None); nil when Required.
	Default starlark.Value
}

// ParamError refuses one parameter value. Its message names the parameter
// and the expected type, and never contains a secret's value.
type ParamError struct {
	Param string // the parameter's name as given
	// Want is the expected type ("int", "list of int"); for an unknown
	// parameter it lists the declared names instead.
	Want string
	// Got shows what was given: the value quoted (shortened when long), a
	// JSON type name for secrets, or "" when a required value is missing.
	Got     string
	Unknown bool // no parameter of this name is declared
	// Nearest is, for an unknown parameter, the declared name it is
	// likely a typo of ("" for none).
	Nearest string
}

func (e *ParamError) Error() string {
	switch {
	case e.Unknown && e.Nearest != "":
		return fmt.Sprintf("unknown parameter %q: did you mean %s? (declared: %s)", e.Param, e.Nearest, e.Want)
	case e.Unknown:
		return fmt.Sprintf("unknown parameter %q (declared: %s)", e.Param, e.Want)
	case e.Got == "":
		return fmt.Sprintf("parameter %q: expected %s, got no value (it has no default)", e.Param, e.Want)
	}
	return fmt.Sprintf("parameter %q: expected %s, got %s", e.Param, e.Want, e.Got)
}

// Params are a run's parameter values, coerced and validated against one
// Declaration by [Declaration.Coerce]. A Params is immutable.
type Params struct {
	decl   *Declaration
	value  *starlarkstruct.Struct
	record map[string]any
}

// Value is ctx.params: a frozen struct with one field per declared
// parameter.
func (p *Params) Value() starlark.Value { return p.value }

// Record returns the values for the run record: JSON-able (strings, int64,
// bool, nil, []any; durations as Go duration strings) with every secret
// replaced by [Redacted]. The map is a fresh copy.
func (p *Params) Record() map[string]any { return maps.Clone(p.record) }

// Secrets returns the values of the secret parameters that were given
// (not empty), for scrubbing what a run writes. Nothing else may keep them.
// SecretValues returns the secret parameters' values by name (none: an
// empty map), for a caller that keeps them sealed (the agent, so that a
// queued or interrupted run can run after a restart). Never log them.
func (p *Params) SecretValues() map[string]string {
	out := map[string]string{}
	for _, dp := range p.decl.Params {
		if dp.Type.Kind != KindSecret {
			continue
		}
		if v, err := p.value.Attr(dp.Name); err == nil {
			if s, ok := starlark.AsString(v); ok {
				out[dp.Name] = s
			}
		}
	}
	return out
}

func (p *Params) Secrets() []string {
	var out []string
	for _, dp := range p.decl.Params {
		if dp.Type.Kind != KindSecret {
			continue
		}
		v, err := p.value.Attr(dp.Name)
		if err != nil {
			continue
		}
		if s, ok := starlark.AsString(v); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// MarshalJSON encodes [Params.Record].
func (p *Params) MarshalJSON() ([]byte, error) { return json.Marshal(p.record) }

// Coerce checks untrusted input against the declaration and converts it:
// strs are command-line values (--param k=v, always strings), raw are JSON
// values (from the hub or the local API). A name may appear in only one
// of them. A JSON null counts as not given.
//
// It refuses unknown names, values of the wrong type and missing required
// parameters; the error joins one *[ParamError] per problem, in parameter
// name order, so errors.As finds the first.
func (d *Declaration) Coerce(strs map[string]string, raw map[string]json.RawMessage) (*Params, error) {
	onlyDefaults := len(strs)+len(raw) == 0
	if p := d.defaults.Load(); onlyDefaults && p != nil {
		return p, nil // Params are immutable, and so are the defaults
	}
	var errs []error
	if !onlyDefaults { // a run of defaults (a timer's) has nothing to check here
		given := map[string]bool{}
		for _, name := range slices.Sorted(maps.Keys(strs)) {
			given[name] = true
		}
		for _, name := range slices.Sorted(maps.Keys(raw)) {
			if given[name] {
				errs = append(errs, &ParamError{Param: name, Want: "one value", Got: "two (as a string and as JSON)"})
			}
			given[name] = true
		}
		for _, name := range slices.Sorted(maps.Keys(given)) {
			if d.Param(name) == nil {
				errs = append(errs, &ParamError{Param: name, Want: d.paramNames(), Unknown: true, Nearest: spell.Nearest(name, d.names())})
			}
		}
	}

	fields := make(starlark.StringDict, len(d.Params))
	record := make(map[string]any, len(d.Params))
	for i := range d.Params {
		p := &d.Params[i]
		var v starlark.Value
		var err error
		s, isStr := strs[p.Name]
		r, isRaw := raw[p.Name]
		if isRaw && bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
			isRaw = false
		}
		switch {
		case isStr:
			v, err = p.Type.fromString(s)
		case isRaw:
			v, err = p.Type.fromJSON(r)
		case p.Required:
			err = errMissing
		default:
			v = p.Default
		}
		if err == nil && (isStr || isRaw) {
			err = p.Type.constrain(v)
		}
		if err != nil {
			errs = append(errs, p.refusal(err, isStr, s, r))
			continue
		}
		fields[p.Name] = v
		record[p.Name] = recordValue(&p.Type, v)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	st := starlarkstruct.FromStringDict(starlarkstruct.Default, fields)
	st.Freeze()
	p := &Params{decl: d, value: st, record: record}
	if onlyDefaults {
		d.defaults.Store(p)
	}
	return p, nil
}

// errMissing and errMismatch are the two ways a value is refused; the
// ParamError built from them carries the details.
var (
	errMissing  = errors.New("missing")
	errMismatch = errors.New("mismatch")
)

func (p *Param) refusal(err error, isStr bool, s string, raw json.RawMessage) *ParamError {
	e := &ParamError{Param: p.Name, Want: p.Type.String()}
	switch {
	case err == errMissing:
	case p.Type.Kind == KindSecret:
		e.Got = jsonKind(raw)
		if isStr {
			e.Got = "a string"
		}
	case isStr:
		e.Got = clip.String(strconv.Quote(s), refusalQuote)
	default:
		var buf bytes.Buffer
		if !utf8.Valid(raw) {
			e.Got = "invalid UTF-8"
		} else if json.Compact(&buf, raw) != nil {
			e.Got = "invalid JSON"
		} else {
			e.Got = clip.String(buf.String(), refusalQuote)
		}
	}
	return e
}

// refusalQuote is how much of a refused value a refusal quotes, so it
// stays readable when the input is long.
const refusalQuote = 64

func (d *Declaration) paramNames() string {
	if len(d.Params) == 0 {
		return "none"
	}
	return strings.Join(d.names(), ", ")
}

// names are the declared parameters' names, in declaration order.
func (d *Declaration) names() []string {
	names := make([]string, len(d.Params))
	for i, p := range d.Params {
		names[i] = p.Name
	}
	return names
}

// jsonKind names the JSON type of raw, for refusals that must not echo
// the value.
func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// fromString converts a command-line value.
func (t *ParamType) fromString(s string) (starlark.Value, error) {
	// A record is JSON, which cannot carry invalid UTF-8 unchanged.
	if !validString(s) {
		return nil, errMismatch
	}
	switch t.Kind {
	case KindString, KindSecret:
		return starlark.String(s), nil
	case KindInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, errMismatch
		}
		return starlark.MakeInt64(n), nil
	case KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errMismatch
		}
		return starlark.Bool(b), nil
	case KindDuration:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return durationFromSeconds(n)
		}
		return t.fromStarlark(starlark.String(s))
	case KindEnum:
		return t.fromStarlark(starlark.String(s))
	case KindList:
		// A JSON array is exact; the comma form is what people type.
		if trimmed := strings.TrimSpace(s); strings.HasPrefix(trimmed, "[") {
			return t.fromJSON(json.RawMessage(trimmed))
		}
		var elems []starlark.Value
		if strings.TrimSpace(s) != "" {
			for part := range strings.SplitSeq(s, ",") {
				v, err := t.Elem.fromString(strings.TrimSpace(part))
				if err != nil {
					return nil, err
				}
				elems = append(elems, v)
			}
		}
		return frozenList(elems), nil
	}
	return nil, fmt.Errorf("parameter kind %q: %w", t.Kind, errMismatch)
}

// fromJSON converts a JSON value.
func (t *ParamType) fromJSON(raw json.RawMessage) (starlark.Value, error) {
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD: the
	// value would not be what was sent.
	if !utf8.Valid(raw) {
		return nil, errMismatch
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errMismatch
	}
	if dec.More() {
		return nil, errMismatch
	}
	return t.fromAny(v)
}

func (t *ParamType) fromAny(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case string:
		if t.Kind == KindInt || t.Kind == KindBool || t.Kind == KindList {
			return nil, errMismatch
		}
		return t.fromStarlark(starlark.String(x))
	case json.Number:
		switch t.Kind {
		case KindInt:
			n, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil {
				return nil, errMismatch
			}
			return starlark.MakeInt64(n), nil
		case KindDuration:
			n, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil {
				return nil, errMismatch
			}
			return durationFromSeconds(n)
		}
	case bool:
		if t.Kind == KindBool {
			return starlark.Bool(x), nil
		}
	case []any:
		if t.Kind == KindList {
			elems := make([]starlark.Value, len(x))
			for i, e := range x {
				ev, err := t.Elem.fromAny(e)
				if err != nil {
					return nil, err
				}
				elems[i] = ev
			}
			return frozenList(elems), nil
		}
	}
	return nil, errMismatch
}

func durationFromSeconds(n int64) (starlark.Value, error) {
	var d builtins.Duration
	if err := d.Unpack(starlark.MakeInt64(n)); err != nil {
		return nil, errMismatch
	}
	return startime.Duration(d), nil
}

// fromStarlark converts a value from Starlark (a declared default, or a
// string parsed above) to the parameter's canonical frozen value. Its
// errors read "expected int, got string".
func (t *ParamType) fromStarlark(v starlark.Value) (starlark.Value, error) {
	mismatch := func() error { return fmt.Errorf("expected %s, got %s", t, describe(v)) }
	switch t.Kind {
	case KindString, KindSecret:
		if s, ok := v.(starlark.String); ok {
			return s, nil
		}
	case KindInt:
		if i, ok := v.(starlark.Int); ok {
			if _, ok := i.Int64(); ok {
				return i, nil
			}
			return nil, fmt.Errorf("expected %s, got %s (out of the 64-bit range)", t, i)
		}
	case KindBool:
		if b, ok := v.(starlark.Bool); ok {
			return b, nil
		}
	case KindDuration:
		var d builtins.Duration
		if err := d.Unpack(v); err != nil {
			return nil, mismatch()
		}
		return startime.Duration(d), nil
	case KindEnum:
		if s, ok := v.(starlark.String); ok && slices.Contains(t.Values, string(s)) {
			return s, nil
		}
	case KindList:
		var seq starlark.Indexable
		switch x := v.(type) {
		case *starlark.List:
			seq = x
		case starlark.Tuple:
			seq = x
		default:
			return nil, mismatch()
		}
		elems := make([]starlark.Value, seq.Len())
		for i := range elems {
			e, err := t.Elem.fromStarlark(seq.Index(i))
			if err != nil {
				return nil, fmt.Errorf("element %d: %w", i, err)
			}
			elems[i] = e
		}
		return frozenList(elems), nil
	}
	return nil, mismatch()
}

// describe names a Starlark value in a mismatch: its type, and for short
// strings the value too.
func describe(v starlark.Value) string {
	if s, ok := v.(starlark.String); ok {
		return "string " + clip.String(strconv.Quote(string(s)), refusalQuote)
	}
	return v.Type()
}

// describeValue names a value that has the right type but breaks a
// constraint: its type and (shortened) value.
func describeValue(v starlark.Value) string {
	if s, ok := v.(starlark.String); ok {
		return describe(s)
	}
	return v.Type() + " " + clip.String(v.String(), refusalQuote)
}

func frozenList(elems []starlark.Value) *starlark.List {
	l := starlark.NewList(elems)
	l.Freeze()
	return l
}

// recordValue is v as the run record shows it.
func recordValue(t *ParamType, v starlark.Value) any {
	if v == starlark.None {
		return nil
	}
	switch t.Kind {
	case KindSecret:
		return Redacted
	case KindInt:
		n, _ := v.(starlark.Int).Int64()
		return n
	case KindBool:
		return bool(v.(starlark.Bool))
	case KindDuration:
		return time.Duration(v.(startime.Duration)).String()
	case KindList:
		l := v.(*starlark.List)
		out := make([]any, l.Len())
		for i := range out {
			out[i] = recordValue(t.Elem, l.Index(i))
		}
		return out
	}
	s, _ := starlark.AsString(v)
	return s
}
