package playtest

import (
	"fmt"
	"slices"
	"strings"

	"go.starlark.net/starlark"

	"gitea.dooplex.hu/admin/felhom-agent/internal/spell"
)

// checkKeywords refuses a keyword argument that is not among names, with
// the name probably meant: "sim.fail_task: unexpected keyword argument
// "mesage" (did you mean message?)". starlark.UnpackArgs says the same
// but suggests only among the first half of the parameters, and a
// Starlark function (assert's) suggests nothing.
func checkKeywords(fnname string, kwargs []starlark.Tuple, names []string) error {
	for _, kv := range kwargs {
		k, _ := starlark.AsString(kv[0])
		if slices.Contains(names, k) {
			continue
		}
		err := fmt.Errorf("%s: unexpected keyword argument %q", fnname, k)
		if n := spell.Nearest(k, names); n != "" {
			err = fmt.Errorf("%w (did you mean %s?)", err, n)
		}
		return err
	}
	return nil
}

// pairNames are the parameter names of starlark.UnpackArgs pairs, without
// their "?" and "??" marks.
func pairNames(pairs []any) []string {
	var out []string
	for i := 0; i < len(pairs); i += 2 {
		if s, ok := pairs[i].(string); ok {
			out = append(out, strings.TrimRight(s, "?"))
		}
	}
	return out
}
