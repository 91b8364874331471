package engine

import (
	"context"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// TestSizedOperators: the rewritten + and * (and += / *= on names) give
// Starlark's own results, keep a list's identity under +=, leave
// keyword arguments and parameter defaults working, and fail with
// Starlark's own errors at the operator.
func TestSizedOperators(t *testing.T) {
	body := `    l = [1]
    same = l
    l += l
    l += (2, 3)
    frozen = FROZEN
    n = 2
    n += 3
    n *= 4
    s = "ab"
    s += "c"
    s *= 2
    d = {"k": [0]}
    d["k"] += [1]
    return {
        "adds": ["a" + "b", [1] + [2], (1,) + (2,), 2 + 3, 1.5 + 1, (1 << 70) + 1],
        "muls": ["ab" * 3, 3 * "ab", [1] * 2, 2 * [1], 0 * "x", -1 * "x", 6 * 7],
        "l": l, "same": same, "n": n, "s": s, "d": d["k"],
        "kw": kw(a = 1 + 2), "default": dflt(), "lam": (lambda x = "q" + "r": x + "!")(),
        "comp": [x + 1 for x in range(3) if x * 2 < 5],
        "slice": "abcdef"[1 + 0:2 * 2],
        "cond": "y" + "es" if 1 + 1 == 2 else "no",
        "methods": ["a-b".replace("-", "+"), "aXa".replace("a", "bb", 1), "ab".replace("", "-"), ", ".join(["x", "y"]), "/".join(("a",)), "%s=%d" % ("k", 1), "%s!" % s, S.upper()],
        "struct": struct(replace = lambda a, b: a + b).replace("p", b = "q"),
    }

S = "up"

def kw(a):
    return a

def dflt(x = "a" + "b"):
    return x

FROZEN = [0]`
	files := map[string]string{
		"ops.star":    pbSource("ops", body),
		"type.star":   pbSource("type", `    return "a" + 1`),
		"frozen.star": "F = [1]\n\n" + pbSource("frozen", "    x = F\n    x += [2]"),
		"noattr.star": pbSource("noattr", "    return (1 + len(\"\")).replace(\"a\", \"b\")"),
	}
	h := newHarness(t, files, Config{})
	res := h.run(context.Background(), "ops.star", nil, RunOptions{})
	if res.Status != runstate.Succeeded {
		t.Fatalf("ops: %s %s", res.Status, res.Error)
	}
	want := `{"adds":["ab",[1,2],[1,2],5,2.5,1180591620717411303425],"comp":[1,2,3],"cond":"yes","d":[0,1],"default":"ab","kw":3,"l":[1,1,2,3],"lam":"qr!",` +
		`"methods":["a+b","bbXa","-a-b-","x, y","a","k=1","abcabc!","UP"],"muls":["ababab","ababab",[1,1],[1,1],"","",42],"n":20,"s":"abcabc","same":[1,1,2,3],"slice":"bcd","struct":"pq"}`
	if string(res.Output) != want {
		t.Errorf("ops =\n%s\nwant\n%s", res.Output, want)
	}

	for _, tc := range []struct{ file, want string }{
		{"type.star", "type.star:2:16: unknown binary op: string + int"},
		{"frozen.star", "frozen.star:5:7: cannot apply += to frozen list"},
		{"noattr.star", "noattr.star:2:33: int has no .replace field or method"}, // Starlark itself says 2:25, at the dot
	} {
		res := h.run(context.Background(), tc.file, nil, RunOptions{})
		if res.Status != runstate.Failed || !strings.HasSuffix(res.Error, tc.want) {
			t.Errorf("%s: %s %q; want failed ending %q", tc.file, res.Status, res.Error, tc.want)
		}
	}
}

// TestSizedOperatorsAskFirst: an operator whose result would take the
// heap over the limit fails before it allocates, with kind memory, at
// the operator; a repeat that Starlark refuses itself before allocating
// (beyond int32, or 2^30 elements) keeps Starlark's more exact message.
func TestSizedOperatorsAskFirst(t *testing.T) {
	files := map[string]string{
		"double.star":  pbSource("double", "    s = \"x\" * (1 << 20)\n    for i in range(40):\n        s = s + s\n    return len(s)"),
		"repeat.star":  pbSource("repeat", "    return len(\"x\" * (300 << 20))"),
		"huge.star":    pbSource("huge", "    return len([0] * (1 << 62))"),
		"elems.star":   pbSource("elems", "    return len(\"ab\" * (1 << 29))"),
		"iadd.star":    pbSource("iadd", "    l = [0] * (1 << 16)\n    for i in range(40):\n        l += l\n    return len(l)"),
		"replace.star": pbSource("replace", "    s = \"ab\" * (1 << 19)\n    for i in range(40):\n        s = s.replace(\"a\", \"aa\")\n    return len(s)"),
		"join.star":    pbSource("join", "    s = \"x\" * (1 << 20)\n    for i in range(40):\n        s = s.join([\"\", \"\", \"\"])\n    return len(s)"),
		"format.star":  pbSource("format", "    s = \"x\" * (1 << 20)\n    for i in range(40):\n        s = \"%s%s\" % (s, s)\n    return len(s)"),
	}
	h := newHarness(t, files, Config{MaxMemory: 256 << 20})
	for _, f := range []string{"double.star", "repeat.star", "iadd.star", "replace.star", "join.star", "format.star"} {
		res := h.run(context.Background(), f, nil, RunOptions{})
		if res.Status != runstate.Failed || res.Kind != KindMemory || !strings.Contains(res.Error, "more would take the agent's heap") {
			t.Errorf("%s: %s kind %q %q; want failed, memory, refused before the allocation", f, res.Status, res.Kind, res.Error)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"huge.star", "huge.star:2:20: repeat count 4611686018427387904 too large"},
		{"elems.star", "elems.star:2:21: excessive repeat (2 * 536870912 elements)"},
	} {
		res := h.run(context.Background(), tc.file, nil, RunOptions{})
		if res.Status != runstate.Failed || !strings.HasSuffix(res.Error, tc.want) {
			t.Errorf("%s: %s %q; want failed ending %q", tc.file, res.Status, res.Error, tc.want)
		}
	}
}
