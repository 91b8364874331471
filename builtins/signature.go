package builtins

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// A Signature is a Func's Sig read as a Starlark def header, which it is
// written as: "vzdump(vmid=None, *, storage, mode=\"snapshot\")". `felhom-agent
// check` holds calls of the builtin to it, so the Sig is a promise, and
// [Table.Check] tests it against what the builtin's unpacker accepts.
//
// A default written "=?" ("decode(x, default=?)") is an optional parameter
// with no default value to show; a "/" ends the positional-only parameters,
// as in Python ("indent(str, /, *, prefix=\"\")").
type Signature struct {
	Params []SigParam // in the order of the Sig
	// Positional is how many leading Params may be passed by position: all
	// of those before a bare "*" or "*args".
	Positional int
	// Varargs and Kwargs report a "*args" and a "**kwargs": the builtin
	// takes any number of further positional, or keyword, arguments.
	Varargs, Kwargs bool
}

// SigParam is one named parameter of a [Signature].
type SigParam struct {
	Name string
	// Required is a parameter without a default.
	Required bool
	// KeywordOnly is a parameter after a bare "*" or "*args".
	KeywordOnly bool
	// PositionalOnly is a parameter before a "/".
	PositionalOnly bool
}

// Param returns the parameter called name, or nil.
func (s *Signature) Param(name string) *SigParam {
	for i := range s.Params {
		if s.Params[i].Name == name {
			return &s.Params[i]
		}
	}
	return nil
}

// Names are the parameters' names, in order.
func (s *Signature) Names() []string {
	out := make([]string, len(s.Params))
	for i, p := range s.Params {
		out[i] = p.Name
	}
	return out
}

// Signature parses f's Sig.
func (f *Func) Signature() (*Signature, error) {
	src := "def " + positionalOnly.ReplaceAllString(strings.ReplaceAll(f.Sig, "=?", "=None"), "${1}"+slashParam+"$2") + ": pass\n"
	file, err := (&syntax.FileOptions{}).Parse(f.Name+".sig", src, 0)
	if err != nil {
		return nil, fmt.Errorf("sig %q is not a def header: %v", f.Sig, err)
	}
	def, ok := file.Stmts[0].(*syntax.DefStmt)
	if !ok || len(file.Stmts) != 1 {
		return nil, fmt.Errorf("sig %q is not a def header", f.Sig)
	}
	s := &Signature{}
	kwOnly := false
	for _, p := range def.Params {
		switch p := p.(type) {
		case *syntax.Ident:
			if p.Name == slashParam {
				for i := range s.Params {
					s.Params[i].PositionalOnly = true
				}
				continue
			}
			s.Params = append(s.Params, SigParam{Name: p.Name, Required: true, KeywordOnly: kwOnly})
		case *syntax.BinaryExpr: // name=default
			s.Params = append(s.Params, SigParam{Name: p.X.(*syntax.Ident).Name, KeywordOnly: kwOnly})
		case *syntax.UnaryExpr:
			switch {
			case p.Op == syntax.STARSTAR:
				s.Kwargs = true
			case p.X != nil:
				s.Varargs = true
				kwOnly = true
			default:
				kwOnly = true
			}
		}
		if !kwOnly {
			s.Positional = len(s.Params)
		}
	}
	return s, nil
}

// positionalOnly finds a "/" parameter, which Starlark's parser does not
// know; it parses as the parameter slashParam instead.
var positionalOnly = regexp.MustCompile(`([(,]\s*)/(\s*[,)])`)

const slashParam = "__positional_only__"

// probeKeyword is a keyword no builtin has: passed last, it makes the
// builtin's unpacker fail after it has judged every argument before it,
// so that probing a builtin never runs it.
const probeKeyword = " probe"

// Probe reports how f's unpacker judges args, a subset of a call's
// arguments passed by name: the error of the first it refuses
// ("proxmox.guest: for parameter vmid: got string, want int"), or nil.
// The builtin is never run: a keyword no builtin has follows args, so the
// unpacking fails before the body — every builtin starts with
// starlark.UnpackArgs — and is called on a thread of its own that is not a
// run's (acting builtins would refuse anyway). Only a refusal of one of
// args is returned, never one of the missing rest or of the probe.
//
// `felhom-agent check` probes the literal arguments of calls, so a
// literal the builtin refuses is reported with the builtin's own words,
// before the playbook runs. A Func with *args or **kwargs is not probed
// (it could accept the probe's keyword): Probe returns nil.
func (f *Func) Probe(name string, args []starlark.Tuple) (err error) {
	sig, serr := f.Signature()
	if serr != nil || sig.Varargs || sig.Kwargs || len(args) == 0 {
		return nil
	}
	defer func() {
		if recover() != nil {
			err = nil // a builtin that panics unpacking is not check's to report
		}
	}()
	kwargs := append(append([]starlark.Tuple(nil), args...), starlark.Tuple{starlark.String(probeKeyword), starlark.None})
	thread := &starlark.Thread{Name: "probe " + name}
	_, callErr := f.Fn(thread, starlark.NewBuiltin(name, f.Fn), nil, kwargs)
	if callErr == nil {
		return nil
	}
	m := forParameter.FindStringSubmatch(callErr.Error())
	if m == nil {
		return nil
	}
	for _, a := range args {
		if string(a[0].(starlark.String)) == m[1] {
			return callErr
		}
	}
	return nil
}

// forParameter matches starlark.UnpackArgs's refusal of one argument.
var forParameter = regexp.MustCompile(`^\S+: for parameter "?(\w+)"?: `)

// checkSignature holds f's unpacker to its Sig wherever a call can tell:
// every parameter the Sig names is a keyword the unpacker knows; it takes
// no more positional arguments than the Sig allows; and it refuses a call
// without the parameters the Sig requires. A builtin that refuses for
// another reason first (one that may only be called while a file loads)
// cannot be told apart and passes.
func checkSignature(name string, f *Func) []error {
	sig, err := f.Signature()
	if err != nil {
		return []error{err}
	}
	if sig.Varargs || sig.Kwargs {
		return nil
	}
	var errs []error
	call := func(args starlark.Tuple, kwargs []starlark.Tuple) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		_, err = f.Fn(&starlark.Thread{Name: "check " + name}, starlark.NewBuiltin(name, f.Fn), args, kwargs)
		return err
	}
	probe := starlark.Tuple{starlark.String(probeKeyword), starlark.None}
	for _, p := range sig.Params {
		if p.PositionalOnly {
			continue
		}
		err := call(nil, []starlark.Tuple{{starlark.String(p.Name), starlark.None}, probe})
		if err != nil && regexp.MustCompile(`unexpected keyword argument "?`+regexp.QuoteMeta(p.Name)+`\b`).MatchString(err.Error()) {
			errs = append(errs, fmt.Errorf("sig names parameter %s, which the builtin does not take: %v", p.Name, err))
		}
	}
	// Nones one more than the Sig allows by position: an error that comes
	// from judging them, or none, means the count was accepted.
	nones := make(starlark.Tuple, sig.Positional+1)
	for i := range nones {
		nones[i] = starlark.None
	}
	if err := call(nones, nil); accepted(err) {
		errs = append(errs, fmt.Errorf("sig allows %d positional arguments, but the builtin took %d (%v)", sig.Positional, len(nones), err))
	}
	for _, p := range sig.Params {
		if p.Required {
			if err := call(nil, nil); accepted(err) {
				errs = append(errs, fmt.Errorf("sig requires %s, but the builtin accepted a call without it (%v)", p.Name, err))
			}
			break
		}
	}
	return errs
}

// accepted reports whether err shows that a call got past the counting of
// its arguments: no error, an acting builtin's refusal at load time, or a
// refusal of one argument's value.
func accepted(err error) bool {
	return err == nil || errors.Is(err, ErrAtLoadTime) || forParameter.MatchString(err.Error()) ||
		strings.Contains(err.Error(), ": for parameter ")
}
