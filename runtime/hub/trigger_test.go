package hub

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// triggerCases is shared by TestParseTrigger and the fuzz seeds.
var triggerCases = []struct {
	name   string
	body   string
	want   Trigger // checked when field and public are empty
	field  string  // the Rejection's Field
	public string  // substring of the Rejection's Public
}{
	{name: "full", body: goodBody,
		want: Trigger{ID: "t-1", Name: "backup", Params: map[string]json.RawMessage{"storage": json.RawMessage(`"usb"`)}}},
	{name: "no params", body: `{"id":"t-2","trigger":"self-test"}`,
		want: Trigger{ID: "t-2", Name: "self-test", Params: map[string]json.RawMessage{}}},
	{name: "null params", body: `{"trigger":"x","id":"a","params":null}`,
		want: Trigger{ID: "a", Name: "x", Params: map[string]json.RawMessage{}}},
	{name: "nested values kept raw", body: " {\n\"id\": \"~!$%^&*()\", \"trigger\": \"a_1-b\", \"params\": {\"only\": [1, 2], \"o\": {\"k\": null}}}\n",
		want: Trigger{ID: "~!$%^&*()", Name: "a_1-b", Params: map[string]json.RawMessage{
			"only": json.RawMessage(`[1, 2]`), "o": json.RawMessage(`{"k": null}`)}}},
	{name: "longest id and name", body: `{"id":"` + strings.Repeat("i", 128) + `","trigger":"` + "t" + strings.Repeat("x", 63) + `"}`,
		want: Trigger{ID: strings.Repeat("i", 128), Name: "t" + strings.Repeat("x", 63), Params: map[string]json.RawMessage{}}},

	{name: "empty body", body: ``, public: "malformed JSON"},
	{name: "truncated", body: `{"id":"a","trigger":`, public: "unexpected end"},
	{name: "syntax error", body: `{"id":'a'}`, public: "malformed JSON at byte"},
	{name: "array", body: `[1]`, public: "body must be a JSON object"},
	{name: "string", body: `"x"`, public: "body must be a JSON object"},
	{name: "trailing object", body: goodBody + `{}`, public: "unexpected data after"},
	{name: "trailing garbage", body: goodBody + `x`, public: "unexpected data after"},
	{name: "unknown field", body: `{"id":"a","trigger":"b","playbook":"c"}`, field: "playbook", public: `unknown field "playbook"`},
	{name: "field name case differs", body: `{"ID":"a","trigger":"b"}`, field: "ID", public: `unknown field "ID"`},
	{name: "unknown field not an identifier", body: `{"id":"a","trigger":"b","<script>":1}`, public: "unknown field"},
	{name: "duplicate id", body: `{"id":"a","trigger":"b","id":"c"}`, field: "id", public: `duplicate field "id"`},
	{name: "escaped duplicate id", body: `{"id":"a","trigger":"b","\u0069d":"c"}`, field: "id", public: `duplicate field "id"`},
	{name: "id a lone surrogate", body: `{"id":"\ud800","trigger":"b"}`, field: "id", public: "printable ASCII"},
	{name: "missing id", body: `{"trigger":"b"}`, field: "id", public: "id is required"},
	{name: "id null", body: `{"id":null,"trigger":"b"}`, field: "id", public: "id must be a string"},
	{name: "id a number", body: `{"id":7,"trigger":"b"}`, field: "id", public: "id must be a string"},
	{name: "id empty", body: `{"id":"","trigger":"b"}`, field: "id", public: "1 to 128 characters"},
	{name: "id too long", body: `{"id":"` + strings.Repeat("i", 129) + `","trigger":"b"}`, field: "id", public: "1 to 128 characters"},
	{name: "id with a space", body: `{"id":"a b","trigger":"b"}`, field: "id", public: "printable ASCII"},
	{name: "id with a control character", body: `{"id":"a\u0007","trigger":"b"}`, field: "id", public: "printable ASCII"},
	{name: "id not ASCII", body: `{"id":"é","trigger":"b"}`, field: "id", public: "printable ASCII"},
	{name: "missing trigger", body: `{"id":"a"}`, field: "trigger", public: "trigger is required"},
	{name: "trigger a list", body: `{"id":"a","trigger":["b"]}`, field: "trigger", public: "trigger must be a string"},
	{name: "trigger upper case", body: `{"id":"a","trigger":"Backup"}`, field: "trigger", public: "must match"},
	{name: "trigger leading digit", body: `{"id":"a","trigger":"1b"}`, field: "trigger", public: "must match"},
	{name: "trigger empty", body: `{"id":"a","trigger":""}`, field: "trigger", public: "must match"},
	{name: "trigger too long", body: `{"id":"a","trigger":"t` + strings.Repeat("x", 64) + `"}`, field: "trigger", public: "must match"},
	{name: "trigger with a slash", body: `{"id":"a","trigger":"a/b"}`, field: "trigger", public: "must match"},
	{name: "params a list", body: `{"id":"a","trigger":"b","params":[1]}`, field: "params", public: "params must be an object"},
	{name: "params a string", body: `{"id":"a","trigger":"b","params":"x=1"}`, field: "params", public: "params must be an object"},
	{name: "duplicate parameter", body: `{"id":"a","trigger":"b","params":{"x":1,"x":2}}`, field: "params.x", public: `duplicate field "params.x"`},
	{name: "parameter name not an identifier", body: `{"id":"a","trigger":"b","params":{"a-b":1}}`, field: "params", public: "identifiers"},
	{name: "parameter name empty", body: `{"id":"a","trigger":"b","params":{"":1}}`, field: "params", public: "identifiers"},
}

func TestParseTrigger(t *testing.T) {
	for _, c := range triggerCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTrigger([]byte(c.body))
			if c.field == "" && c.public == "" {
				if err != nil {
					t.Fatalf("ParseTrigger = %v; want success", err)
				}
				if got.ID != c.want.ID || got.Name != c.want.Name || !maps.EqualFunc(got.Params, c.want.Params, rawEqual) {
					t.Errorf("ParseTrigger = %+v; want %+v", got, c.want)
				}
				return
			}
			var rj *Rejection
			if !errors.As(err, &rj) {
				t.Fatalf("ParseTrigger = %+v, %v; want a *Rejection", got, err)
			}
			if rj.Status != 400 || rj.Field != c.field || !strings.Contains(rj.Public, c.public) {
				t.Errorf("ParseTrigger = %d %q field %q; want 400 containing %q field %q",
					rj.Status, rj.Public, rj.Field, c.public, c.field)
			}
		})
	}
}

func rawEqual(a, b json.RawMessage) bool { return string(a) == string(b) }

func FuzzParseTrigger(f *testing.F) {
	for _, c := range triggerCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseTrigger(body)
		if err != nil {
			var rj *Rejection
			if !errors.As(err, &rj) || rj.Status != 400 || rj.Public == "" {
				t.Fatalf("ParseTrigger(%q) = %v; want a 400 *Rejection", body, err)
			}
			return
		}
		checkTrigger(t, body, got)
	})
}

// checkTrigger asserts the promises of an accepted trigger, and that it
// survives a round trip through its canonical encoding.
func checkTrigger(t *testing.T, body []byte, got Trigger) {
	t.Helper()
	if n := len(got.ID); n < 1 || n > maxTriggerID || strings.ContainsFunc(got.ID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		t.Fatalf("ParseTrigger(%q) accepted id %q", body, got.ID)
	}
	if !triggerNamePattern.MatchString(got.Name) || got.Params == nil {
		t.Fatalf("ParseTrigger(%q) accepted name %q, params %v", body, got.Name, got.Params)
	}
	for name, v := range got.Params {
		if !paramNamePattern.MatchString(name) || !json.Valid(v) {
			t.Fatalf("ParseTrigger(%q) accepted parameter %q = %q", body, name, v)
		}
	}
	again, err := json.Marshal(map[string]any{"id": got.ID, "trigger": got.Name, "params": got.Params})
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseTrigger(again)
	if err != nil {
		t.Fatalf("ParseTrigger(%q) = %v after accepting %q", again, err, body)
	}
	if back.ID != got.ID || back.Name != got.Name || !slices.Equal(slices.Sorted(maps.Keys(back.Params)), slices.Sorted(maps.Keys(got.Params))) {
		t.Fatalf("round trip of %q = %+v; want %+v", body, back, got)
	}
}
