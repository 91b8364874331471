package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
)

// The configuration's types, as a JSON file writes them, follow the flag
// each key sets: a string flag takes a JSON string (one of its values, if
// it is an enum), a bool flag true or false, an integer flag a whole JSON
// number, a float flag a number, a duration flag a string time.Duration
// reads ("30s", "1h30m"), a list flag a JSON list of its element type (or
// one string), and hub.keys an object of key id to base64 public key. A
// flag's `valid` tag bounds its value, in the file and on the command
// line alike:
//
//	valid:"positive"     more than zero (a count, a size, a period)
//	valid:"nonnegative"  zero or more (where the flag's help says what 0 means)
const (
	validPositive    = "positive"
	validNonnegative = "nonnegative"
)

var durationType = reflect.TypeFor[time.Duration]()

// leafObjects are configuration keys whose value is itself an object.
var leafObjects = map[string]bool{"hub.keys": true}

// checkConfig checks a whole configuration file against every flag of the
// application that has a `config` key, whichever command is run: each
// unknown key, object where a value belongs (or value where a section
// belongs), value of the wrong JSON type and value out of its key's range
// is one problem, named by its dotted key. String values never appear in
// a problem (a secret may be one); numbers, durations and enum values of
// the keys that take them do. It returns the checked values by dotted key.
func checkConfig(file string, doc map[string]any, app *kong.Application) (map[string]any, error) {
	known := map[string]*kong.Flag{}
	_ = kong.Visit(app, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok {
			if key := f.Tag.Get("config"); key != "" {
				known[key] = f
			}
		}
		return next(nil)
	})
	sections := map[string]bool{}
	for key := range known {
		for i := range len(key) {
			if key[i] == '.' {
				sections[key[:i]] = true
			}
		}
	}
	values := map[string]any{}
	var problems []string
	var walk func(prefix string, obj map[string]any)
	walk = func(prefix string, obj map[string]any) {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if strings.HasPrefix(k, "_") {
				continue // a comment, as in deploy/agent.example.json
			}
			v, key := obj[k], k
			if prefix != "" {
				key = prefix + "." + k
			}
			f, isFlag := known[key]
			switch sub, isObj := v.(map[string]any); {
			case isFlag:
				if p := checkValue(key, f, v); p != "" {
					problems = append(problems, key+": "+p)
					continue
				}
				values[key] = v
			case sections[key] && isObj:
				walk(key, sub)
			case sections[key]:
				problems = append(problems, fmt.Sprintf("%s: want an object, got %s", key, jsonType(v)))
			default:
				problems = append(problems, fmt.Sprintf("unknown key %q", key))
			}
		}
	}
	walk("", doc)
	if len(problems) > 0 {
		return nil, &configError{file: file, problems: problems}
	}
	return values, nil
}

// checkValue is what is wrong with v as the value of f's key, or "".
func checkValue(key string, f *kong.Flag, v any) string {
	t := f.Target.Type()
	switch {
	case leafObjects[key]:
		return checkHubKeys(v)
	case t == durationType:
		const want = `expected a duration such as "30s", got `
		s, ok := v.(string)
		if !ok {
			return want + literal(v)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return want + strconv.Quote(s)
		}
		return checkRange(f, reflect.ValueOf(d))
	case t.Kind() == reflect.Slice:
		return checkList(t.Elem(), v)
	}
	if p := checkScalar(t, v); p != "" {
		return p
	}
	switch t.Kind() {
	case reflect.String:
		if f.Enum != "" && !slices.Contains(f.EnumSlice(), v.(string)) {
			return fmt.Sprintf("want one of %s, got %q", quoteAll(f.EnumSlice()), v)
		}
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Float64:
		n := v.(json.Number)
		rv := numberValue(t, n)
		if !rv.IsValid() {
			return "want a whole number, got " + string(n)
		}
		if p := checkRange(f, rv); p != "" {
			return p
		}
		if rv.Type() != t { // a negative number for an unsigned flag
			return "want 0 or more, got " + string(n)
		}
	}
	return ""
}

// checkScalar is what is wrong with the JSON type of v as the value of a
// flag of type t, or "".
func checkScalar(t reflect.Type, v any) string {
	want := ""
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			want = "a string"
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			want = "true or false"
		}
	case reflect.Int, reflect.Int64, reflect.Uint64:
		if _, ok := v.(json.Number); !ok {
			want = "a whole number"
		}
	case reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			want = "a number"
		}
	}
	if want != "" {
		return "want " + want + ", got " + jsonType(v)
	}
	return ""
}

// numberValue is n as a value of type t — for an unsigned t and a negative
// n, an int64 — or the zero Value when it is none (a fraction for an
// integer, too big).
func numberValue(t reflect.Type, n json.Number) reflect.Value {
	switch t.Kind() {
	case reflect.Float64:
		if x, err := n.Float64(); err == nil {
			return reflect.ValueOf(x)
		}
		return reflect.Value{}
	case reflect.Uint64:
		if x, err := strconv.ParseUint(string(n), 10, 64); err == nil {
			return reflect.ValueOf(x).Convert(t)
		}
	}
	if x, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if t.Kind() == reflect.Uint64 {
			return reflect.ValueOf(x)
		}
		return reflect.ValueOf(x).Convert(t)
	}
	return reflect.Value{}
}

// checkList is what is wrong with v as a list of elem, or "". One string
// is a list of one (or, for a flag that splits them, of its
// comma-separated items).
func checkList(elem reflect.Type, v any) string {
	want := "a list of strings"
	if elem.Kind() != reflect.String {
		want = "a list of whole numbers"
	}
	switch v := v.(type) {
	case string:
		if elem.Kind() == reflect.String {
			return ""
		}
	case []any:
		for i, e := range v {
			if p := checkScalar(elem, e); p != "" {
				return fmt.Sprintf("want %s, got %s at [%d]", want, jsonType(e), i)
			}
		}
		return ""
	}
	return fmt.Sprintf("want %s, got %s", want, jsonType(v))
}

// checkHubKeys is what is wrong with v as hub.keys, or "". Key material
// is never quoted.
func checkHubKeys(v any) string {
	const want = "want an object of key id to base64 public key"
	obj, ok := v.(map[string]any)
	if !ok {
		return want + ", got " + jsonType(v)
	}
	m := make(map[string]string, len(obj))
	for id, k := range obj {
		s, ok := k.(string)
		if !ok {
			return fmt.Sprintf("%s, got %s for a key", want, jsonType(k))
		}
		m[id] = s
	}
	if _, err := hub.KeysFromMap(m); err != nil {
		return strings.TrimPrefix(err.Error(), "hub keys: ")
	}
	return ""
}

// checkRange is what is wrong with rv as the value of f by f's `valid`
// tag, or "".
func checkRange(f *kong.Flag, rv reflect.Value) string {
	valid := f.Tag.Get("valid")
	if valid == "" {
		return ""
	}
	var sign int
	switch rv.Kind() {
	case reflect.Int, reflect.Int64:
		sign = cmpZero(rv.Int())
	case reflect.Uint64:
		sign = cmpZero(rv.Uint())
	case reflect.Float64:
		sign = cmpZero(rv.Float())
	default:
		panic(fmt.Sprintf("--%s: valid tag on a %s", f.Name, rv.Type()))
	}
	got := fmt.Sprint(rv.Interface())
	wantPos, wantNonneg := "at least 1", "0 or more"
	switch {
	case rv.Type() == durationType:
		got = strconv.Quote(got)
		wantPos, wantNonneg = `a duration above zero such as "30s"`, `zero or a positive duration such as "30s"`
	case rv.Kind() == reflect.Float64:
		wantPos = "more than 0"
	}
	switch {
	case valid == validPositive && sign <= 0:
		return "want " + wantPos + ", got " + got
	case valid == validNonnegative && sign < 0:
		return "want " + wantNonneg + ", got " + got
	case valid != validPositive && valid != validNonnegative:
		panic(fmt.Sprintf("--%s: unknown valid tag %q", f.Name, valid))
	}
	return ""
}

func cmpZero[T int64 | uint64 | float64](x T) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// checkFlagRanges checks the range of every flag of the parsed command
// line that has a `valid` tag. The file's values have passed checkConfig,
// so a value out of range came from the command line (named by its flag)
// or the environment (named by its variable).
func checkFlagRanges(kctx *kong.Context) error {
	onCommandLine := map[*kong.Flag]bool{}
	for _, p := range kctx.Path {
		if p.Flag != nil && !p.Resolved {
			onCommandLine[p.Flag] = true
		}
	}
	var errs []error
	for _, f := range kctx.Flags() {
		p := checkRange(f, f.Target)
		if p == "" {
			continue
		}
		name := "--" + f.Name
		if !onCommandLine[f] {
			for _, env := range f.Tag.Envs {
				if _, set := os.LookupEnv(env); set {
					name = env
				}
			}
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, p))
	}
	return errors.Join(errs...)
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// literal is a JSON number or boolean as written, a string quoted, and
// the type of anything else. Only for keys that take no string, so no
// secret is ever quoted.
func literal(v any) string {
	switch v := v.(type) {
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case string:
		return strconv.Quote(v)
	}
	return jsonType(v)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
