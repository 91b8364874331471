package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"go.starlark.net/starlark"
)

// TestResultJSONScalars: strings and floats come out as encoding/json
// (HTML escaping off) spells them, including escapes, invalid UTF-8 and
// exponent forms.
func TestResultJSONScalars(t *testing.T) {
	values := []any{
		"plain", "", `quote " and \ backslash`, "tab\tnew\nline\r", "\x00\x1f\x7f", "<a&b>", "ünïcödé ✓",
		"\u2028\u2029", "bad \xff utf-8", "emoji 🦀",
		0.0, 1.5, -2.25, 1e-7, 1.234e-9, 1e21, 3e300, 123456789.125, -0.000001, math.SmallestNonzeroFloat64,
	}
	for _, v := range values {
		var sv starlark.Value
		switch x := v.(type) {
		case string:
			sv = starlark.String(x)
		case float64:
			sv = starlark.Float(x)
		}
		got, err := ResultJSON(sv)
		if err != nil {
			t.Errorf("ResultJSON(%q): %v", v, err)
			continue
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
			t.Errorf("ResultJSON(%#v) = %s; want %s", v, got, w)
		}
	}
}
