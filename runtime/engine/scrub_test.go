package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

func TestScrubberString(t *testing.T) {
	sc := newScrubber([]string{"hunter2", `pa"ss\word`, "hunter2-long", ""})
	tests := []struct{ in, want string }{
		{"no secret here", "no secret here"},
		{"pw=hunter2!", "pw=[redacted]!"},
		{"hunter2hunter2", "[redacted][redacted]"},
		{"the longer hunter2-long whole", "the longer [redacted] whole"},
		{`json "pa\"ss\\word"`, `json "[redacted]"`},
		{`raw pa"ss\word`, `raw [redacted]`},
		{"", ""},
	}
	for _, tt := range tests {
		if got := sc.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
	var none *scrubber
	if none.String("hunter2") != "hunter2" || newScrubber(nil) != nil || newScrubber([]string{""}) != nil {
		t.Error("a scrubber without secrets changes text")
	}
}

var scrubJSONTests = []struct{ in, want string }{
	{`{"a":"x hunter2 y"}`, `{"a":"x [redacted] y"}`},
	{`{"hunter2":1}`, `{"[redacted]":1}`},
	{`["<hunter2>", 2]`, `["<[redacted]>",2]`},
	{`{"n":424242}`, `{"n":"[redacted]42"}`},
	{`{"n":1}`, `{"n":1}`},
	{`"s"`, `"s"`},
	{`null`, `null`},
}

func TestScrubberJSON(t *testing.T) {
	sc := newScrubber([]string{"hunter2", "4242"})
	for _, tt := range scrubJSONTests {
		got := sc.JSON(json.RawMessage(tt.in))
		if string(got) != tt.want {
			t.Errorf("JSON(%s) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzScrubberJSON: whatever the result and the secret, the scrubbed
// result is valid JSON (when the input was) and holds no secret.
func FuzzScrubberJSON(f *testing.F) {
	for _, tt := range scrubJSONTests {
		f.Add(tt.in, "hunter2")
	}
	f.Add(`{"a":"\u0068unter2"}`, "hunter2")
	f.Add(`[1,2]`, ",")
	f.Fuzz(func(t *testing.T, doc, secret string) {
		if !json.Valid([]byte(doc)) || secret == "" {
			return
		}
		got := newScrubber([]string{secret}).JSON(json.RawMessage(doc))
		if !json.Valid(got) {
			t.Fatalf("JSON(%s) with secret %q = %s: not JSON", doc, secret, got)
		}
		var v any
		_ = json.Unmarshal(got, &v)
		text, _ := json.Marshal(v)
		if strings.Contains(string(text), secret) && !strings.Contains(Redacted, secret) {
			// The secret may be formed across values ("1,2" for [1,2]);
			// what must not survive is a string or key holding it.
			var walk func(any) bool
			walk = func(x any) bool {
				switch y := x.(type) {
				case string:
					return strings.Contains(y, secret)
				case []any:
					for _, e := range y {
						if walk(e) {
							return true
						}
					}
				case map[string]any:
					for k, e := range y {
						if strings.Contains(k, secret) || walk(e) {
							return true
						}
					}
				}
				return false
			}
			if walk(v) {
				t.Fatalf("JSON(%s) with secret %q = %s still holds it", doc, secret, got)
			}
		}
	})
}

// TestRunScrubsSecrets: a playbook that echoes its secret in every way —
// log message, log attribute, print, a nested attribute, fail(), its
// result — leaves no trace of it in the log, the error, the backtrace or
// the result.
func TestRunScrubsSecrets(t *testing.T) {
	const secret = "s3cr3t-Value"
	echo := `    pw = ctx.params.pw
    print("print:", pw)
    log.info("msg " + pw, pw = pw, nested = {"k": [pw]}, upper = pw.upper())
    if ctx.params.fail:
        fail("fail: " + pw)
    return {"pw": pw, pw: 1, "list": [pw + "!"]}`
	src := pbSource("p", echo, `params = {"pw": param.secret(), "fail": param.bool(default = False)}`)
	for _, fail := range []string{"false", "true"} {
		h := newHarness(t, map[string]string{"p.star": src}, Config{})
		res := h.run(context.Background(), "p.star", map[string]string{"pw": secret, "fail": fail}, RunOptions{})
		wantStatus := map[string]runstate.Status{"false": runstate.Succeeded, "true": runstate.Failed}[fail]
		if res.Status != wantStatus {
			t.Fatalf("fail=%s: status %s (%s)", fail, res.Status, res.Error)
		}
		all := strings.Join(h.rec.Lines(), "\n") + "\n" + res.Error + "\n" + res.Backtrace + "\n" + string(res.Output)
		if strings.Contains(all, secret) {
			t.Errorf("fail=%s: the secret is in what the run wrote:\n%s", fail, all)
		}
		if !strings.Contains(all, Redacted) {
			t.Errorf("fail=%s: nothing was redacted:\n%s", fail, all)
		}
		if fail == "true" && res.Error != "" && !strings.Contains(res.Error, "fail: "+Redacted) {
			t.Errorf("error = %q; want the fail() message with the secret redacted", res.Error)
		}
		if fail == "false" && string(res.Output) != `{"[redacted]":1,"list":["[redacted]!"],"pw":"[redacted]"}` {
			t.Errorf("output = %s", res.Output)
		}
		// The transformed (upper-cased) secret is the documented limit.
		if !strings.Contains(all, strings.ToUpper(secret)) {
			t.Errorf("the upper-cased secret was expected in the log (a known limit)")
		}
	}
}

// TestParamsScrubJSON: what is built from a run's parameters outside the
// run (a plan for the hub) is scrubbed of their secrets like a result.
func TestParamsScrubJSON(t *testing.T) {
	d := paramsDecl(t)
	p, err := d.Coerce(map[string]string{"vmid": "101", "password": "hunter2-x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := string(p.ScrubJSON(json.RawMessage(`{"steps":[{"what":"set config: password=hunter2-x"}],"hunter2-x":1,"name":"n"}`)))
	if want := `{"[redacted]":1,"name":"n","steps":[{"what":"set config: password=[redacted]"}]}`; got != want {
		t.Errorf("ScrubJSON = %s; want %s", got, want)
	}
	empty, err := d.Coerce(map[string]string{"vmid": "101", "password": ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(empty.ScrubJSON(json.RawMessage(`{"a": 1}`))); got != `{"a": 1}` {
		t.Errorf("ScrubJSON without a secret given = %s; want it untouched", got)
	}
}
