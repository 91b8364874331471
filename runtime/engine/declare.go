package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/schedule"
)

// Declaration is what a playbook file declares about itself with
// playbook(...) while it loads. The runtime reads it after the file's top
// level has run; a Declaration is immutable and safe to share between
// concurrent runs.
type Declaration struct {
	Name string // unique among the loaded playbooks: [a-z][a-z0-9_-]*
	// Doc is the doc= argument, or else the file's docstring, trimmed.
	Doc string
	// Params are the declared parameters, sorted by name.
	Params []Param
	// Schedule is the cron expression as declared, optionally prefixed
	// "TZ=Area/City "; "" when the playbook has no timer.
	Schedule string
	// Jitter delays each timer run by a random duration below it, so hosts
	// sharing a schedule do not hit shared targets at once; 0 means none.
	Jitter time.Duration
	// Triggers are the hub trigger names that start this playbook.
	Triggers []string
	// Timeout bounds one run; 0 means the engine's default.
	Timeout time.Duration
	// Concurrent allows runs of this playbook to overlap.
	Concurrent bool
	// Resume: a run the agent's stop interrupted resumes at the agent's
	// next start from its journal (same id, parameters and version),
	// instead of being undone.
	Resume bool
	// UndoTimeout bounds the run's compensations (undo()) once it failed;
	// 0 means DefaultUndoTimeout.
	UndoTimeout time.Duration
	// GuestTriggers are the triggers (a subset of Triggers) an in-guest
	// controller may start over the guest API, for its own guest only:
	// the guest's vmid is bound to the parameter GuestVMID names and the
	// guest may set only GuestParams; everything else keeps its default.
	GuestTriggers []string
	// GuestVMID names the parameter the asking guest's vmid is bound to:
	// "vmid" (a param.vmid()) or "vmids" (a param.list(param.vmid()),
	// bound to [vmid]); "" when GuestTriggers is empty.
	GuestVMID string
	// GuestParams are the parameters a guest may set, sorted; never
	// GuestVMID, never a secret.
	GuestParams []string
	// Pos is where playbook(...) was called.
	Pos syntax.Position

	run starlark.Callable // the frozen entry point, called with ctx
	// defaults is Coerce(nil, nil) once it succeeded: a run of defaults
	// (a timer's, the CLI's without --param) shares its immutable Params.
	defaults atomic.Pointer[Params]
}

// Param returns the declared parameter called name, or nil.
func (d *Declaration) Param(name string) *Param {
	i, ok := slices.BinarySearchFunc(d.Params, name, func(p Param, name string) int { return strings.Compare(p.Name, name) })
	if !ok {
		return nil
	}
	return &d.Params[i]
}

// Entry is the function a run calls with its ctx.
func (d *Declaration) Entry() starlark.Callable { return d.run }

// Load time declares, run time acts: playbook() and param.* only build a
// Declaration. playbook() finds the declaration under way in a thread
// local that the loader sets on the thread executing a playbook file.

const declKey = "felhom.declaration"

type declState struct {
	file string       // the file being executed, for messages
	lib  bool         // a loaded module, not a playbook file
	decl *Declaration // set by the playbook() call
}

var (
	namePattern      = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	paramNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// PlaybookTable documents and implements playbook(), the global every
// playbook file calls once to declare itself. DeclarationTables lists it
// with [ParamTable] for the loader and the reference.
var PlaybookTable = &builtins.Table{
	Effect: builtins.Reads,
	Name:   "",
	Doc:    "Declaring a playbook. Each playbook file calls playbook() once at its top level; a loaded module (a file in a subdirectory) must not. The declaration is read when the file loads, before anything runs.",
	Funcs: []builtins.Func{{
		Name: "playbook", Journal: builtins.Pure,
		Sig: `playbook(*, name, run, params={}, schedule="", jitter=None, triggers=[], timeout=None, concurrent=False, resume=False, undo_timeout=None, guest_triggers=[], guest_params=[], doc=None)`,
		Doc: `Declares this file's playbook. Keyword arguments only:
  name        unique name, [a-z][a-z0-9_-]*, used by "felhom-agent trigger NAME", timers and the run store
  run         the entry point: a function taking one argument, ctx
  params      dict of name -> param.*(...); ctx.params has one field per entry; a parameter given as None
            (JSON null from the hub or the API) counts as not given: its default, or refused when it has none
  schedule    cron expression ("0 3 * * *", "@daily"), optionally "TZ=Europe/Budapest 0 3 * * *"
  jitter      delay each timer run by a random duration below this ("10m"), so hosts sharing a schedule spread out
  triggers    names of hub triggers that start this playbook
  timeout     a run's deadline: "4h", a time duration, or seconds; None means the agent's default
  concurrent  allow runs of this playbook to overlap (default: a second run is refused)
  resume      True: a run the agent's stop interrupted (a crash, kill -9, a stop past the grace period) resumes at the
              agent's next start — same run id, parameters and playbook version — by re-executing from the top with every
              builtin call answered from the run's journal until it ends, then going on live; a recorded Proxmox task is
              waited for, never sent again. False: such a run is replayed to where it stopped and its undo() compensations
              run. Either way a run that diverges from its journal ("non-deterministic replay at file:line:col") is undone.
  undo_timeout  how long the compensations registered with undo() may take in all once the run failed (default "10m")
  guest_triggers  the triggers (also in triggers) an in-guest controller may start over the guest API, for its own guest:
              its vmid is bound to the parameter vmid (param.vmid()) or vmids (param.list(param.vmid()), as [vmid])
  guest_params    the parameters such a guest may set (never the vmid, never a secret); the others keep their defaults
  doc         description; defaults to the file's docstring
ctx has the fields params, run_id, playbook, version (of the sources) and trigger ("cli", "timer", "hub", ...).
What run returns is the run's result: None, or values json.encode accepts (durations and times become strings).
Top-level values are frozen once the file has loaded, so every run starts from the same state and cannot change it.`,
		Fn: playbookBuiltin,
	}},
}

// DeclarationTables are the declaration builtins the runtime adds to the
// builtins' tables: playbook() and the param module.
func DeclarationTables() []*builtins.Table { return []*builtins.Table{PlaybookTable, ParamTable} }

// Reference is every table a playbook can use, in the order `felhom-agent
// doc` renders them: the declaration builtins, then builtins.Tables().
func Reference() []*builtins.Table { return append(DeclarationTables(), builtins.Tables()...) }

func playbookBuiltin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	st, _ := thread.Local(declKey).(*declState)
	switch {
	case st == nil:
		return nil, builtins.Errorf(b, "may only be called while a playbook file loads, not while it runs")
	case st.lib:
		return nil, builtins.Errorf(b, "may only be called by a playbook file, not by the loaded module %s", st.file)
	case st.decl != nil:
		return nil, builtins.Errorf(b, "called twice (first at %s)", st.decl.Pos)
	case len(args) > 0:
		return nil, builtins.Errorf(b, "takes keyword arguments only (name = ..., run = ...)")
	}
	var (
		name       string
		run        starlark.Callable
		params     *starlark.Dict
		schedule   string
		triggers   builtins.StringList
		timeout    starlark.Value = starlark.None
		jitter     starlark.Value = starlark.None
		concurrent bool
		resume     bool
		undoT      starlark.Value = starlark.None
		doc        starlark.Value = starlark.None
		guestTrig  builtins.StringList
		guestPars  builtins.StringList
	)
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs,
		"name", &name, "run", &run, "params?", &params, "schedule?", &schedule, "jitter?", &jitter,
		"triggers?", &triggers, "timeout?", &timeout, "concurrent?", &concurrent, "resume?", &resume, "undo_timeout?", &undoT,
		"guest_triggers?", &guestTrig, "guest_params?", &guestPars, "doc?", &doc,
	); err != nil {
		return nil, err
	}
	pos, _ := sourcePos(thread.CallStack())
	d := &Declaration{Name: name, Schedule: schedule, Concurrent: concurrent, Resume: resume, Pos: pos, run: run}
	if !namePattern.MatchString(name) {
		return nil, builtins.Errorf(b, "name %q: want lower-case letters, digits, '-' and '_', starting with a letter", name)
	}
	if err := checkEntry(run); err != nil {
		return nil, builtins.Errorf(b, "run: %w", err)
	}
	if err := d.setParams(params); err != nil {
		return nil, builtins.Errorf(b, "params: %w", err)
	}
	if err := validateSchedule(schedule); err != nil {
		return nil, builtins.Errorf(b, "schedule: %w", err)
	}
	if jitter != starlark.None {
		var dur builtins.Duration
		if err := dur.Unpack(jitter); err != nil {
			return nil, builtins.Errorf(b, "jitter: %w", err)
		}
		if dur < 0 || schedule == "" {
			return nil, builtins.Errorf(b, "jitter: want a duration of zero or more, with a schedule")
		}
		d.Jitter = time.Duration(dur)
	}
	for i, t := range triggers {
		if !namePattern.MatchString(t) {
			return nil, builtins.Errorf(b, "triggers[%d] %q: want lower-case letters, digits, '-' and '_', starting with a letter", i, t)
		}
		if slices.Contains(triggers[:i], t) {
			return nil, builtins.Errorf(b, "triggers: %q is listed twice", t)
		}
	}
	d.Triggers = slices.Clip([]string(triggers))
	if err := d.setGuest(guestTrig, guestPars); err != nil {
		return nil, builtins.Errorf(b, "%w", err)
	}
	if timeout != starlark.None {
		var dur builtins.Duration
		if err := dur.Unpack(timeout); err != nil {
			return nil, builtins.Errorf(b, "timeout: %w", err)
		}
		if dur <= 0 {
			return nil, builtins.Errorf(b, "timeout: must be longer than zero (omit it for the agent's default)")
		}
		d.Timeout = time.Duration(dur)
	}
	if undoT != starlark.None {
		var dur builtins.Duration
		if err := dur.Unpack(undoT); err != nil {
			return nil, builtins.Errorf(b, "undo_timeout: %w", err)
		}
		if dur <= 0 {
			return nil, builtins.Errorf(b, "undo_timeout: must be longer than zero (omit it for the default)")
		}
		d.UndoTimeout = time.Duration(dur)
	}
	if doc != starlark.None {
		s, ok := starlark.AsString(doc)
		if !ok {
			return nil, builtins.Errorf(b, "doc: got %s, want string", doc.Type())
		}
		d.Doc = strings.TrimSpace(s)
	}
	st.decl = d
	return starlark.None, nil
}

// setGuest checks and records what a guest may start (guest_triggers)
// and set (guest_params).
func (d *Declaration) setGuest(trigs, pars []string) error {
	for i, t := range trigs {
		if !slices.Contains(d.Triggers, t) {
			return fmt.Errorf("guest_triggers[%d] %q: not among triggers %v", i, t, d.Triggers)
		}
		if slices.Contains(trigs[:i], t) {
			return fmt.Errorf("guest_triggers: %q is listed twice", t)
		}
	}
	if len(trigs) == 0 {
		if len(pars) > 0 {
			return fmt.Errorf("guest_params: given without guest_triggers")
		}
		return nil
	}
	vmid, vmids := d.Param("vmid"), d.Param("vmids")
	switch {
	case vmid != nil && vmid.Type.Format == FormatVMID:
		d.GuestVMID = "vmid"
	case vmids != nil && vmids.Type.Kind == KindList && vmids.Type.Elem.Format == FormatVMID:
		d.GuestVMID = "vmids"
	default:
		return fmt.Errorf("guest_triggers: the playbook needs a parameter vmid = param.vmid() or vmids = param.list(param.vmid()) for the guest's own vmid")
	}
	for i, name := range pars {
		p := d.Param(name)
		switch {
		case p == nil:
			return fmt.Errorf("guest_params[%d] %q: not a declared parameter", i, name)
		case name == d.GuestVMID:
			return fmt.Errorf("guest_params[%d] %q: the guest's vmid is bound by the agent, never set by the guest", i, name)
		case p.Type.Kind == KindSecret:
			return fmt.Errorf("guest_params[%d] %q: a secret cannot come from a guest", i, name)
		case slices.Contains(pars[:i], name):
			return fmt.Errorf("guest_params: %q is listed twice", name)
		}
	}
	d.GuestTriggers = slices.Clip(trigs)
	d.GuestParams = slices.Sorted(slices.Values(pars))
	return nil
}

// checkEntry makes sure run can be called as run(ctx).
func checkEntry(run starlark.Callable) error {
	fn, ok := run.(*starlark.Function)
	if !ok {
		return fmt.Errorf("got %s %s, want a function defined with def", run.Type(), run.Name())
	}
	ordinary := fn.NumParams()
	if fn.HasVarargs() {
		ordinary--
	}
	if fn.HasKwargs() {
		ordinary--
	}
	positional := ordinary - fn.NumKwonlyParams()
	if positional == 0 && !fn.HasVarargs() {
		return fmt.Errorf("%s takes no parameters; it must take one (ctx)", fn.Name())
	}
	required := 0
	for i := range ordinary {
		if fn.ParamDefault(i) == nil {
			if i >= positional {
				name, _ := fn.Param(i)
				return fmt.Errorf("%s has the required keyword-only parameter %s; it is called with ctx only", fn.Name(), name)
			}
			required++
		}
	}
	if required > 1 {
		return fmt.Errorf("%s has %d required parameters; it is called with one (ctx)", fn.Name(), required)
	}
	return nil
}

func (d *Declaration) setParams(params *starlark.Dict) error {
	if params == nil {
		return nil
	}
	for _, item := range params.Items() {
		name, ok := starlark.AsString(item[0])
		if !ok {
			return fmt.Errorf("key %s: got %s, want string", item[0], item[0].Type())
		}
		if !paramNamePattern.MatchString(name) {
			return fmt.Errorf("%q: a parameter name is lower-case letters, digits and '_', starting with a letter or '_'", name)
		}
		spec, ok := item[1].(*paramSpec)
		if !ok {
			return fmt.Errorf("%q: got %s, want a param.*() declaration such as param.string()", name, item[1].Type())
		}
		p := Param{Name: name, Type: spec.typ, Doc: spec.doc, Required: !spec.hasDefault, Default: spec.def}
		d.Params = append(d.Params, p)
	}
	slices.SortFunc(d.Params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

// validateSchedule checks a schedule with the parser the timers use
// (runtime/schedule), so a declaration that loads is one the timers run:
// five fields or a macro like "@daily", optionally prefixed with
// "TZ=Area/City ".
func validateSchedule(s string) error {
	if s == "" {
		return nil
	}
	if _, err := schedule.ParseSpec(s, ""); err != nil {
		return err
	}
	return nil
}

// ParamTable is the param module: one constructor per parameter kind.
// Each returns a declaration value for playbook(params = {...}); a
// default, when given, is checked against the type as the file loads.
var ParamTable = &builtins.Table{
	Effect: builtins.Reads,
	Name:   "param",
	Doc:    "Parameter declarations for playbook(params = {...}). A parameter without a default is required; default = None makes it optional with the value None. Values given to a run (--param k=v, or JSON from the hub) are checked against the declaration before the run starts.",
	Funcs: []builtins.Func{
		{Name: "string", Journal: builtins.Pure, Sig: `string(default=?, doc="", pattern="", max_len=0)`, Doc: "A string: valid UTF-8 without NUL bytes. pattern is a regular expression (RE2 syntax, as Go's regexp) the whole value must match; max_len bounds its length in bytes (0: no bound).", Fn: stringParam},
		{Name: "int", Journal: builtins.Pure, Sig: `int(default=?, doc="", min=None, max=None)`, Doc: "A 64-bit integer, at least min and at most max when they are given.", Fn: intParam},
		{Name: "vmid", Journal: builtins.Pure, Sig: `vmid(default=?, doc="")`, Doc: "A Proxmox VE guest id: an integer 100..999999999 (PVE's pve-vmid format). In a run it is an int.", Fn: vmidParam},
		{Name: "hostname", Journal: builtins.Pure, Sig: `hostname(default=?, doc="", fqdn=False)`, Doc: "A host name as Proxmox VE accepts it (RFC 1123): one DNS label of letters, digits and inner '-', at most 63 bytes (PVE's pve-node format); with fqdn = True labels joined by '.', at most 253 bytes (PVE's dns-name). In a run it is a string.", Fn: hostnameParam},
		{Name: "bool", Journal: builtins.Pure, Sig: `bool(default=?, doc="")`, Doc: "True or False; on the command line true/false/1/0.", Fn: scalarParam(KindBool)},
		{Name: "duration", Journal: builtins.Pure, Sig: `duration(default=?, doc="")`, Doc: "A length of time: \"90s\", \"1h30m\" or whole seconds. The value is a time duration.", Fn: scalarParam(KindDuration)},
		{Name: "secret", Journal: builtins.Pure, Sig: `secret(doc="")`, Doc: "A string (valid UTF-8 without NUL bytes) that the agent never writes in clear: run records show [redacted], and its value is replaced by [redacted] in the run's log, its error, its fail() message and its result (as given, and JSON-escaped; a transformed value — upper-cased, encoded, a slice of it — is not recognised, so never log one). It has no default, since a default would be in the playbook's source.", Fn: secretParam},
		{Name: "enum", Journal: builtins.Pure, Sig: `enum(values, default=?, doc="")`, Doc: "One of values, a non-empty list of distinct strings.", Fn: enumParam},
		{Name: "list", Journal: builtins.Pure, Sig: `list(elem, default=?, doc="")`, Doc: "A list whose elements are of the type elem (a param.string, int, bool, duration or enum without default). On the command line: comma-separated (101,102) or a JSON array.", Fn: listParam},
	},
}

// paramSpec is the Starlark value param.*() returns. It is immutable.
type paramSpec struct {
	typ        ParamType
	def        starlark.Value // frozen canonical default; nil when none
	hasDefault bool
	doc        string
}

var _ starlark.Value = (*paramSpec)(nil)

func (p *paramSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "param.%s(", p.typ.Kind)
	if p.hasDefault {
		fmt.Fprintf(&b, "default = %s", p.def)
	}
	b.WriteString(")")
	return b.String()
}
func (p *paramSpec) Type() string          { return "param" }
func (p *paramSpec) Freeze()               {}
func (p *paramSpec) Truth() starlark.Bool  { return true }
func (p *paramSpec) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable type: param") }

// newSpec checks def (nil: not given) against typ and builds the spec.
func newSpec(b *starlark.Builtin, typ ParamType, def starlark.Value, doc string) (*paramSpec, error) {
	spec := &paramSpec{typ: typ, doc: strings.TrimSpace(doc)}
	if def == nil {
		return spec, nil
	}
	spec.hasDefault = true
	if def == starlark.None {
		spec.def = starlark.None
		return spec, nil
	}
	v, err := typ.fromStarlark(def)
	if err == nil {
		if cerr := typ.constrain(v); cerr != nil {
			err = fmt.Errorf("expected %s, got %s", &typ, describeValue(v))
		}
	}
	if err != nil {
		return nil, builtins.Errorf(b, "default: %w", err)
	}
	v.Freeze()
	spec.def = v
	return spec, nil
}

func scalarParam(kind ParamKind) func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
	return func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var def starlark.Value
		var doc string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &def, "doc?", &doc); err != nil {
			return nil, err
		}
		return newSpec(b, ParamType{Kind: kind}, def, doc)
	}
}

func stringParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var def starlark.Value
	var doc, pattern string
	var maxLen int
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &def, "doc?", &doc, "pattern?", &pattern, "max_len?", &maxLen); err != nil {
		return nil, err
	}
	if maxLen < 0 {
		return nil, builtins.Errorf(b, "max_len: want 0 (no bound) or more, got %d", maxLen)
	}
	typ := ParamType{Kind: KindString, Pattern: pattern, MaxLen: maxLen}
	if err := typ.compile(); err != nil {
		return nil, builtins.Errorf(b, "pattern: %w", err)
	}
	return newSpec(b, typ, def, doc)
}

func intParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var def, lo, hi starlark.Value
	var doc string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &def, "doc?", &doc, "min?", &lo, "max?", &hi); err != nil {
		return nil, err
	}
	typ := ParamType{Kind: KindInt}
	for _, bound := range []struct {
		name string
		v    starlark.Value
		dst  **int64
	}{{"min", lo, &typ.Min}, {"max", hi, &typ.Max}} {
		if bound.v == nil || bound.v == starlark.None {
			continue
		}
		i, ok := bound.v.(starlark.Int)
		if !ok {
			return nil, builtins.Errorf(b, "%s: got %s, want int", bound.name, bound.v.Type())
		}
		n64, ok := i.Int64()
		if !ok {
			return nil, builtins.Errorf(b, "%s: %s is out of the 64-bit range", bound.name, i)
		}
		*bound.dst = &n64
	}
	if typ.Min != nil && typ.Max != nil && *typ.Min > *typ.Max {
		return nil, builtins.Errorf(b, "min %d is above max %d", *typ.Min, *typ.Max)
	}
	return newSpec(b, typ, def, doc)
}

func vmidParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var def starlark.Value
	var doc string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &def, "doc?", &doc); err != nil {
		return nil, err
	}
	lo, hi := int64(proxmox.MinVMID), int64(proxmox.MaxVMID)
	return newSpec(b, ParamType{Kind: KindInt, Format: FormatVMID, Min: &lo, Max: &hi}, def, doc)
}

func hostnameParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var def starlark.Value
	var doc string
	var fqdn bool
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "default?", &def, "doc?", &doc, "fqdn?", &fqdn); err != nil {
		return nil, err
	}
	format := FormatHostname
	if fqdn {
		format = FormatFQDN
	}
	return newSpec(b, ParamType{Kind: KindString, Format: format}, def, doc)
}

func secretParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var doc string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "doc?", &doc); err != nil {
		return nil, err
	}
	return newSpec(b, ParamType{Kind: KindSecret}, nil, doc)
}

func enumParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var values builtins.StringList
	var def starlark.Value
	var doc string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "values", &values, "default?", &def, "doc?", &doc); err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return nil, builtins.Errorf(b, "values: want at least one value")
	}
	for i, v := range values {
		if v == "" {
			return nil, builtins.Errorf(b, "values[%d]: want a non-empty string", i)
		}
		if slices.Contains(values[:i], v) {
			return nil, builtins.Errorf(b, "values: %q is listed twice", v)
		}
	}
	return newSpec(b, ParamType{Kind: KindEnum, Values: slices.Clip([]string(values))}, def, doc)
}

func listParam(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var elem *paramSpec
	var def starlark.Value
	var doc string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "elem", &elem, "default?", &def, "doc?", &doc); err != nil {
		return nil, err
	}
	switch {
	case elem.typ.Kind == KindList || elem.typ.Kind == KindSecret:
		return nil, builtins.Errorf(b, "elem: a list's elements cannot be of kind %s", elem.typ.Kind)
	case elem.hasDefault:
		return nil, builtins.Errorf(b, "elem: an element type has no default (give the list one instead)")
	}
	elemType := elem.typ
	return newSpec(b, ParamType{Kind: KindList, Elem: &elemType}, def, doc)
}
