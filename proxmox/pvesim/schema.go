package pvesim

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The official schema of the endpoints the agent uses, cut from the PVE API
// viewer data (pve-docs api-viewer/apidata.js): parameters with types,
// formats, patterns and limits, permission checks, and return shapes. The
// simulator validates every request against it the way pve-common's
// PVE::JSONSchema does, so a request PVE would refuse is refused here with
// the same per-parameter text.
//
//go:embed schema/pve-api-extract.json
var extractJSON []byte

// endpoint is one "METHOD /path" of the extract.
type endpoint struct {
	key         string
	Parameters  objectSchema `json:"parameters"`
	Permissions permissions  `json:"permissions"`
	Returns     *propSchema  `json:"returns"`
}

type objectSchema struct {
	Properties map[string]*propSchema `json:"properties"`
}

// propSchema is one JSON-schema property as PVE writes it.
type propSchema struct {
	Type       string                 `json:"type"`
	Optional   flag                   `json:"optional"`
	Format     json.RawMessage        `json:"format"`
	Pattern    string                 `json:"pattern"`
	Enum       []any                  `json:"enum"`
	Minimum    *number                `json:"minimum"`
	Maximum    *number                `json:"maximum"`
	MinLength  *int                   `json:"minLength"`
	MaxLength  *int                   `json:"maxLength"`
	DefaultKey flag                   `json:"default_key"`
	Alias      string                 `json:"alias"`
	KeyAlias   string                 `json:"keyAlias"` // the key an alias's own name is the value of (a VM NIC's "virtio=MAC": model=virtio)
	Requires   string                 `json:"requires"`
	Items      *propSchema            `json:"items"`
	Properties map[string]*propSchema `json:"properties"`

	formatName  string                 // a named format, e.g. "pve-node" or "pve-vmid-list"
	formatProps map[string]*propSchema // a property-string format (net[n], rootfs, ...)
	re          *regexp.Regexp         // Pattern, anchored like PVE's m/^$pattern$/
}

// flag decodes PVE's 0/1 integers (and booleans) as a bool.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch s := strings.Trim(string(b), `"`); s {
	case "1", "true":
		*f = true
	case "0", "false", "null", "":
		*f = false
	default:
		return fmt.Errorf("flag: unexpected %s", b)
	}
	return nil
}

// number decodes a JSON number or a numeric string (PVE writes minimum =>
// '0' for a few parameters).
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseFloat(strings.Trim(string(b), `"`), 64)
	if err != nil {
		return fmt.Errorf("number: %w", err)
	}
	*n = number(v)
	return nil
}

// permissions is an endpoint's permission description. Check is PVE's
// check list (["perm", path, [privs], "any", 1], ["or", ...], ...); User
// "all" means the handler checks for itself.
type permissions struct {
	Check []any  `json:"check"`
	User  string `json:"user"`
}

var loadSchema = sync.OnceValue(func() map[string]*endpoint {
	var raw map[string]*endpoint
	if err := json.Unmarshal(extractJSON, &raw); err != nil {
		panic(fmt.Sprintf("pvesim: embedded schema: %v", err))
	}
	for key, ep := range raw {
		ep.key = key
		for name, p := range ep.Parameters.Properties {
			if err := p.compile(); err != nil {
				panic(fmt.Sprintf("pvesim: embedded schema %s %s: %v", key, name, err))
			}
		}
	}
	return raw
})

// compile resolves the format and pattern of p (and of a property-string
// format's keys) once, at load.
func (p *propSchema) compile() error {
	if len(p.Format) > 0 {
		var name string
		if err := json.Unmarshal(p.Format, &name); err == nil {
			p.formatName = name
		} else if err := json.Unmarshal(p.Format, &p.formatProps); err != nil {
			return fmt.Errorf("format: %w", err)
		}
	}
	if p.formatName != "" {
		if props, ok := namedPropertyFormats[p.formatName]; ok {
			p.formatProps, p.formatName = props, ""
		}
	}
	for name, sub := range p.formatProps {
		if err := sub.compile(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if p.Pattern != "" {
		re, err := regexp.Compile(`^(?:` + perlToGoRegexp(p.Pattern) + `)$`)
		if err != nil {
			return fmt.Errorf("pattern: %w", err)
		}
		p.re = re
	}
	if p.Items != nil {
		return p.Items.compile()
	}
	return nil
}

// perlToGoRegexp rewrites the Perl-only syntax found in PVE's patterns:
// stringified qr// groups "(?^:...)" become plain groups.
func perlToGoRegexp(p string) string { return strings.ReplaceAll(p, "(?^:", "(?:") }

// indexedLimits bounds the N of "net[n]"-style keys like PVE does
// (net0..net31, mp0..mp255, ...); a key past its limit is unknown to PVE.
var indexedLimits = map[string]int{
	"net": 32, "mp": 256, "unused": 256, "dev": 256, "scsi": 31, "ide": 4, "sata": 6,
	"virtio": 16, "usb": 14, "hostpci": 16, "ipconfig": 32, "numa": 8, "serial": 4,
	"parallel": 3, "virtiofs": 10,
}

var indexedKey = regexp.MustCompile(`^([a-z]+)(0|[1-9][0-9]*)$`)

// property finds the schema of parameter name, expanding "net[n]" keys.
func (o *objectSchema) property(name string) *propSchema {
	if p, ok := o.Properties[name]; ok && !strings.HasSuffix(name, "[n]") {
		return p
	}
	m := indexedKey.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	p, ok := o.Properties[m[1]+"[n]"]
	if !ok {
		return nil
	}
	n, _ := strconv.Atoi(m[2])
	if limit, ok := indexedLimits[m[1]]; ok && n >= limit {
		return nil
	}
	return p
}

// Exact per-parameter texts of pve-common PVE::JSONSchema.
const (
	msgUnknownParam = "property is not defined in schema and the schema does not allow additional properties"
	msgMissing      = "property is missing and it is not optional"
	msgParamFailed  = "Parameter verification failed.\n"
)

// validate checks params against the endpoint's parameter schema and
// returns PVE's per-parameter errors, or nil when all is well.
func (e *endpoint) validate(params map[string][]string) map[string]string {
	errs := map[string]string{}
	checkObject("", &e.Parameters, params, errs)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// checkObject is PVE::JSONSchema::check_object for a flat object whose
// values are the strings of a request or a property string. prefix is the
// path of the object ("net0" for a property string, "" at the top).
func checkObject(prefix string, o *objectSchema, values map[string][]string, errs map[string]string) {
	at := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	for _, name := range slices.Sorted(maps.Keys(o.Properties)) {
		p := o.Properties[name]
		if strings.HasSuffix(name, "[n]") || p.Alias != "" {
			continue
		}
		if _, ok := values[name]; !ok && !bool(p.Optional) {
			addError(errs, at(name), msgMissing)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		p := o.property(name)
		if p == nil {
			addError(errs, at(name), msgUnknownParam)
			continue
		}
		if p.Requires != "" {
			if _, ok := values[p.Requires]; !ok {
				addError(errs, at(p.Requires), fmt.Sprintf("missing property required by '%s'", at(name)))
			}
		}
		checkProp(at(name), p, values[name], errs)
	}
}

func addError(errs map[string]string, path, msg string) {
	if path == "" {
		path = "_root"
	}
	if old, ok := errs[path]; ok {
		// PVE joins with a single-quoted '\n': a literal backslash and n.
		errs[path] = old + `\n` + msg
		return
	}
	errs[path] = msg
}

var (
	isIntegerRe = regexp.MustCompile(`^[+-]?\d+$`)
	isNumberRe  = regexp.MustCompile(`^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`)
)

// checkProp is PVE::JSONSchema::check_prop for one request value: type,
// then format, pattern, lengths, range and enum, stopping at the first
// failure like PVE.
func checkProp(path string, p *propSchema, vals []string, errs map[string]string) {
	if p.Type == "array" {
		for i, v := range vals {
			if p.Items != nil {
				checkProp(fmt.Sprintf("%s[%d]", path, i), p.Items, []string{v}, errs)
			}
		}
		return
	}
	if len(vals) > 1 && p.Type != "" {
		// A repeated form key arrives as a list (pve-http-server
		// decode_urlencoded), which check_type refuses for a scalar.
		addError(errs, path, fmt.Sprintf("type check ('%s') failed - got ARRAY", p.Type))
		return
	}
	v := ""
	if len(vals) > 0 {
		v = vals[0]
	}
	switch p.Type {
	case "boolean":
		if v != "0" && v != "1" {
			addError(errs, path, fmt.Sprintf("type check ('boolean') failed - got '%s'", v))
			return
		}
	case "integer":
		if !isIntegerRe.MatchString(v) {
			addError(errs, path, fmt.Sprintf("type check ('integer') failed - got '%s'", v))
			return
		}
	case "number":
		if !isNumberRe.MatchString(v) {
			addError(errs, path, fmt.Sprintf("type check ('number') failed - got '%s'", v))
			return
		}
	case "object":
		addError(errs, path, "type check ('object') failed")
		return
	}
	if p.formatProps != nil {
		if why := checkPropertyString(path, p.formatProps, v); why != "" {
			addError(errs, path, "invalid format - "+why)
			return
		}
	} else if p.formatName != "" {
		if why := checkNamedFormat(p.formatName, v); why != "" {
			addError(errs, path, "invalid format - "+why)
			return
		}
	}
	if p.re != nil && !p.re.MatchString(v) {
		addError(errs, path, "value does not match the regex pattern")
		return
	}
	if p.MaxLength != nil && len([]rune(v)) > *p.MaxLength {
		addError(errs, path, fmt.Sprintf("value may only be %d characters long", *p.MaxLength))
		return
	}
	if p.MinLength != nil && len([]rune(v)) < *p.MinLength {
		addError(errs, path, fmt.Sprintf("value must be at least %d characters long", *p.MinLength))
		return
	}
	if isNumberRe.MatchString(v) {
		f, _ := strconv.ParseFloat(v, 64)
		if p.Maximum != nil && f > float64(*p.Maximum) {
			addError(errs, path, "value must have a maximum value of "+perlNumber(float64(*p.Maximum)))
			return
		}
		if p.Minimum != nil && f < float64(*p.Minimum) {
			addError(errs, path, "value must have a minimum value of "+perlNumber(float64(*p.Minimum)))
			return
		}
	}
	if len(p.Enum) > 0 {
		names := make([]string, len(p.Enum))
		for i, e := range p.Enum {
			names[i] = fmt.Sprint(e)
		}
		if !slices.Contains(names, v) {
			addError(errs, path, fmt.Sprintf("value '%s' does not have a value in the enumeration '%s'", v, strings.Join(names, ", ")))
		}
	}
}

// perlNumber prints a number the way Perl stringifies it.
func perlNumber(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// checkPropertyString is PVE::JSONSchema::parse_property_string followed by
// check_object; it returns the text after "invalid format - " (with PVE's
// trailing newline) or "".
func checkPropertyString(path string, format map[string]*propSchema, data string) string {
	_, why := parsePropertyString(path, format, data)
	return why
}

// parsePropertyString parses "key=value,..." (with an unnamed default key)
// against format and returns the values, or PVE's failure text.
func parsePropertyString(path string, format map[string]*propSchema, data string) (map[string]string, string) {
	res := map[string]string{}
	defaultKey := ""
	for _, part := range strings.Split(data, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, hasEq := strings.Cut(part, "=")
		switch {
		case hasEq && k != "" && v != "":
			if _, dup := res[k]; dup {
				return nil, "duplicate key in comma-separated list property: " + k + "\n"
			}
			s, ok := format[k]
			if ok && s.Alias != "" {
				// pve-common JSONSchema.pm parse_property_string: with
				// keyAlias the key itself is that key's value.
				if ka := s.KeyAlias; ka != "" {
					if _, dup := res[ka]; dup {
						return nil, "key '" + ka + "' is already defined\n"
					}
					res[ka] = k
				}
				k, s = s.Alias, format[s.Alias]
				if _, dup := res[k]; dup {
					return nil, "key '" + k + "' is already defined (via alias)\n"
				}
			}
			if s == nil {
				return nil, "invalid key in comma-separated list property: " + k + "\n"
			}
			if s.Type == "boolean" {
				v = parseBoolean(v)
			}
			res[k] = v
		case !hasEq:
			if defaultKey != "" {
				return nil, "duplicate key in comma-separated list property: " + defaultKey + "\n"
			}
			for _, name := range slices.Sorted(maps.Keys(format)) {
				if format[name].DefaultKey {
					defaultKey = name
				}
			}
			if defaultKey == "" {
				return nil, "value without key, but schema does not define a default key\n"
			}
			if _, dup := res[defaultKey]; dup {
				return nil, "duplicate key in comma-separated list property: " + defaultKey + "\n"
			}
			if format[defaultKey].Type == "boolean" {
				part = parseBoolean(part)
			}
			res[defaultKey] = part
		default:
			return nil, "missing key in comma-separated list property\n"
		}
	}
	errs := map[string]string{}
	vals := make(map[string][]string, len(res))
	for k, v := range res {
		vals[k] = []string{v}
	}
	checkObject(path, &objectSchema{Properties: format}, vals, errs)
	if len(errs) > 0 {
		var b strings.Builder
		b.WriteString("format error\n")
		for _, k := range slices.Sorted(maps.Keys(errs)) {
			fmt.Fprintf(&b, "%s: %s\n", k, errs[k])
		}
		return nil, b.String()
	}
	return res, ""
}

// parseBoolean is PVE's parse_boolean: on/yes/true and off/no/false become
// 1 and 0; anything else stays as written (and fails the type check).
func parseBoolean(v string) string {
	switch strings.ToLower(v) {
	case "1", "on", "yes", "true":
		return "1"
	case "0", "off", "no", "false":
		return "0"
	}
	return v
}
