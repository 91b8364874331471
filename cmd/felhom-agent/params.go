package main

import (
	"errors"
	"fmt"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
)

// A refused parameter is told to people as what to type: a missing one
// names the flag to pass (`-p vmid=N`), an unknown one what is declared.

// paramPlaceholder is what to type for a value of an API type name
// ("int", "list(int)", "enum(a|b)"): N, N,N, a|b, ...
func paramPlaceholder(typ string) string {
	switch {
	case typ == "int":
		return "N"
	case typ == "bool":
		return "true|false"
	case typ == "duration":
		return "DURATION"
	case strings.HasPrefix(typ, "enum(") && strings.HasSuffix(typ, ")"):
		return strings.TrimSuffix(strings.TrimPrefix(typ, "enum("), ")")
	case strings.HasPrefix(typ, "list(") && strings.HasSuffix(typ, ")"):
		e := paramPlaceholder(strings.TrimSuffix(strings.TrimPrefix(typ, "list("), ")"))
		return e + "," + e
	}
	return "VALUE"
}

// engineTypeName is a declared type by its API name ("list(int)").
func engineTypeName(t *engine.ParamType) string {
	switch t.Kind {
	case engine.KindList:
		return "list(" + engineTypeName(t.Elem) + ")"
	case engine.KindEnum:
		return "enum(" + strings.Join(t.Values, "|") + ")"
	}
	return string(t.Kind)
}

// passFlag is the hint for a missing parameter: "-p vmid=N".
func passFlag(name, typ string) string {
	return "-p " + name + "=" + paramPlaceholder(typ)
}

// explainParamErrors rewrites the refusals of [engine.Declaration.Coerce]
// for `felhom-agent run`: each missing parameter names the flag to pass.
// Other errors pass unchanged.
func explainParamErrors(err error, d *engine.Declaration) error {
	var all []error
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		all = joined.Unwrap()
	} else {
		all = []error{err}
	}
	var out []error
	for _, e := range all {
		pe, ok := errors.AsType[*engine.ParamError](e)
		if ok && !pe.Unknown && pe.Got == "" {
			if p := d.Param(pe.Param); p != nil {
				out = append(out, fmt.Errorf("parameter %s is required (%s, no default): pass %s", pe.Param,
					engineTypeName(&p.Type), passFlag(pe.Param, engineTypeName(&p.Type))))
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// explainAPIParamError adds the flag to pass to the agent's refusal of a
// missing parameter ("params.vmid: is required ..."), from the declared
// parameters of the playbooks the request went to.
func explainAPIParamError(err error, pbs []api.Playbook) error {
	ae, ok := errors.AsType[*api.Error](err)
	if !ok || ae.Status != 400 || !strings.HasPrefix(ae.Field, "params.") {
		return err
	}
	name := strings.TrimPrefix(ae.Field, "params.")
	for _, pb := range pbs {
		for _, p := range pb.Params {
			if p.Name != name {
				continue
			}
			if strings.Contains(ae.Message, "is required") {
				return fmt.Errorf("parameter %s of %s is required (%s, no default): pass %s", name, pb.Name, p.Type, passFlag(name, p.Type))
			}
			return fmt.Errorf("%w (%s is %s: %s)", err, name, p.Type, passFlag(name, p.Type))
		}
	}
	return err
}
