package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/hub"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// hubClient signs requests to an agent's TCP listener like the hub does.
type hubClient struct {
	t     testing.TB
	base  string
	keyID string
	priv  ed25519.PrivateKey
}

func newHubKeys(t testing.TB) (hub.Keys, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return hub.Keys{"hub-1": pub}, priv
}

// do sends a request; sign (nil: the correct signature) may alter the
// signature headers.
func (h *hubClient) do(method, path string, body []byte, sign func(http.Header)) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range hub.Sign(h.priv, h.keyID, method, path, body, time.Now()) {
		req.Header[k] = v
	}
	if sign != nil {
		sign(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type triggerAnswer struct {
	Runs  []hub.RunRef `json:"runs"`
	Error string       `json:"error"`
	Field string       `json:"field"`
}

func (h *hubClient) trigger(body string, sign func(http.Header)) (int, triggerAnswer) {
	h.t.Helper()
	code, b := h.do("POST", "/v1/triggers", []byte(body), sign)
	var ans triggerAnswer
	if err := json.Unmarshal(b, &ans); err != nil {
		h.t.Fatalf("answer %d %q: %v", code, b, err)
	}
	return code, ans
}

func TestHubTriggers(t *testing.T) {
	keys, priv := newHubKeys(t)
	_, otherPriv := newHubKeys(t)
	ta := startAgent(t, map[string]string{
		// Two playbooks answer "backup"; a third answers another trigger.
		"backup.star": agentPlaybook("backup", `    return {"storage": ctx.params.storage, "keep": ctx.params.keep}`,
			`triggers = ["backup", "nightly"], params = {"storage": param.string(default = "usb"), "keep": param.int(default = 7), "token": param.secret()}`),
		"notify.star": agentPlaybook("notify", `    return "notified"`,
			`triggers = ["backup"], params = {"storage": param.enum(["nas", "usb"], default = "usb"), "keep": param.int(default = 0), "token": param.secret()}`),
		"other.star":  agentPlaybook("other", `    return None`, `triggers = ["other"], params = {"only": param.int()}`),
		"manual.star": agentPlaybook("manual", `    return None`, ""),
	}, func(c *Config) { c.HubKeys = keys })
	h := &hubClient{t: t, base: "http://" + ta.Addr().String(), keyID: "hub-1", priv: priv}
	ctx := context.Background()

	good := `{"id": "t-1", "trigger": "backup", "params": {"storage": "nas", "keep": 3, "token": "hunter2"}}`
	for _, tc := range []struct {
		name  string
		body  string
		sign  func(http.Header)
		code  int
		field string
	}{
		{"unsigned", good, func(hd http.Header) { hd.Del(hub.HeaderSignature); hd.Del(hub.HeaderKey); hd.Del(hub.HeaderTimestamp) }, 401, ""},
		{"unknown key", good, func(hd http.Header) { hd.Set(hub.HeaderKey, "hub-9") }, 401, ""},
		{"forged", good, func(hd http.Header) {
			for k, v := range hub.Sign(otherPriv, "hub-1", "POST", "/v1/triggers", []byte(good), time.Now()) {
				hd[k] = v
			}
		}, 401, ""},
		{"stale", good, func(hd http.Header) {
			for k, v := range hub.Sign(priv, "hub-1", "POST", "/v1/triggers", []byte(good), time.Now().Add(-time.Hour)) {
				hd[k] = v
			}
		}, 401, ""},
		{"malformed JSON", `{"id": "t-1", "trigger": `, nil, 400, ""},
		{"bad parameter", `{"id": "t-1", "trigger": "backup", "params": {"keep": "seven", "token": "t"}}`, nil, 400, "params.keep"},
		{"secret of the wrong type", `{"id": "t-1", "trigger": "backup", "params": {"token": 12345}}`, nil, 400, "params.token"},
		{"undeclared parameter", `{"id": "t-1", "trigger": "nightly", "params": {"zone": "x", "token": "t"}}`, nil, 400, "params.zone"},
		{"one of two playbooks refuses", `{"id": "t-1", "trigger": "backup", "params": {"storage": "tape", "token": "t"}}`, nil, 400, "params.storage"},
		{"missing secret", `{"id": "t-1", "trigger": "backup"}`, nil, 400, "params.token"},
		{"missing required parameter", `{"id": "t-1", "trigger": "other"}`, nil, 400, "params.only"},
		{"unknown trigger", `{"id": "t-1", "trigger": "restore"}`, nil, 404, "trigger"},
		{"playbook without triggers", `{"id": "t-1", "trigger": "manual"}`, nil, 404, "trigger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ans := h.trigger(tc.body, tc.sign)
			if code != tc.code || ans.Field != tc.field || len(ans.Runs) != 0 {
				t.Errorf("answer %d %+v; want %d naming %q and no runs", code, ans, tc.code, tc.field)
			}
			if strings.Contains(ans.Error, "seven") || strings.Contains(ans.Error, "12345") {
				t.Errorf("refusal %q quotes the value sent", ans.Error)
			}
		})
	}
	if runs, err := (localAPI{ta.Agent}).Runs(ctx, api.ListFilter{}); err != nil || len(runs) != 0 {
		t.Fatalf("after refusals: %d runs, %v; want none (a rejected request starts nothing)", len(runs), err)
	}

	// Accepted: one run per answering playbook, 202.
	code, first := h.trigger(good, nil)
	if code != http.StatusAccepted || len(first.Runs) != 2 || first.Runs[0].Playbook != "backup" || first.Runs[1].Playbook != "notify" {
		t.Fatalf("trigger = %d %+v; want 202 with runs of backup and notify", code, first)
	}
	// Replayed: the same runs, 200, nothing new (also after they ran).
	for range 2 {
		code, again := h.trigger(good, nil)
		if code != http.StatusOK || len(again.Runs) != 2 || again.Runs[0] != first.Runs[0] || again.Runs[1] != first.Runs[1] {
			t.Errorf("replay = %d %+v; want 200 with %+v", code, again, first.Runs)
		}
		ta.wait(first.Runs[0].ID)
		ta.wait(first.Runs[1].ID)
	}
	if runs, _ := (localAPI{ta.Agent}).Runs(ctx, api.ListFilter{}); len(runs) != 2 {
		t.Errorf("%d runs recorded; want 2 (replays run nothing)", len(runs))
	}

	// The hub follows what it started.
	code, b := h.do("GET", "/v1/runs/"+first.Runs[0].ID, nil, nil)
	var st hub.RunStatus
	if err := json.Unmarshal(b, &st); err != nil || code != 200 {
		t.Fatalf("GET run = %d %s", code, b)
	}
	if st.Status != "succeeded" || st.TriggerID != "t-1" || string(st.Result) != `{"keep":3,"storage":"nas"}` || st.Ended == nil ||
		len(st.Log) == 0 || !strings.HasPrefix(st.Log[len(st.Log)-1], "INFO run finished") {
		t.Errorf("run status = %+v", st)
	}
	rec, _ := ta.store.Get(ctx, first.Runs[0].ID)
	if rec.Source != store.SourceHub || strings.Contains(string(rec.Params), "hunter2") {
		t.Errorf("record source %s params %s; want hub, the secret redacted", rec.Source, rec.Params)
	}
	// ...and nothing else: a run started locally is not the hub's business.
	local := ta.start("manual", nil)
	ta.wait(local.ID)
	for _, id := range []string{local.ID, "r-nope"} {
		if code, _ := h.do("GET", "/v1/runs/"+id, nil, nil); code != http.StatusNotFound {
			t.Errorf("GET run %s = %d; want 404", id, code)
		}
	}
	if code, _ := h.do("GET", "/v1/runs/"+first.Runs[0].ID, nil, func(hd http.Header) { hd.Set(hub.HeaderKey, "hub-9") }); code != 401 {
		t.Errorf("unsigned GET run = %d; want 401", code)
	}

	// Reconfigure swaps the keys: the old key is refused from then on.
	newKeys, newPriv := newHubKeys(t)
	ta.Reconfigure(HotConfig{HubKeys: newKeys})
	if code, _ := h.trigger(`{"id": "t-2", "trigger": "other", "params": {"only": 1}}`, nil); code != 401 {
		t.Errorf("trigger with the replaced key = %d; want 401", code)
	}
	h.priv = newPriv
	if code, ans := h.trigger(`{"id": "t-2", "trigger": "other", "params": {"only": 1}}`, nil); code != 202 || len(ans.Runs) != 1 {
		t.Errorf("trigger with the new key = %d %+v; want 202", code, ans)
	}
}

func TestLogTail(t *testing.T) {
	ta := startAgent(t, map[string]string{
		"chatty.star": agentPlaybook("chatty", `    for i in range(ctx.params.n):
        log.info("line", i = i)`, `params = {"n": param.int()}`),
	}, nil)
	for _, n := range []int{0, 1, 5, 17, 600} {
		run := ta.start("chatty", map[string]any{"n": n})
		_, lines := ta.wait(run.ID)
		tail, err := ta.logTail(context.Background(), run.ID, 20)
		if err != nil {
			t.Fatal(err)
		}
		want := min(20, len(lines))
		if len(tail) != want || !strings.HasPrefix(tail[len(tail)-1], "INFO run finished") {
			t.Errorf("n=%d: tail of %d lines = %d lines ending %q; want %d ending with run finished", n, len(lines), len(tail), tail[len(tail)-1], want)
		}
	}
}
