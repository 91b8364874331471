package engine

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/internal/logtest"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/internal/enginetest"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

type harness struct {
	t      testing.TB
	dir    string
	loader *Loader
	engine *Engine
	rec    *logtest.Recorder
	sig    *enginetest.Signal
}

func newHarness(t testing.TB, files map[string]string, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, dir: enginetest.WriteTree(t, files), rec: logtest.New(), sig: enginetest.NewSignal()}
	var err error
	h.loader, err = NewLoader(h.dir, LoaderOptions{Tables: enginetest.Tables(h.sig), Logger: enginetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(h.rec)
	h.engine = NewEngine(cfg)
	return h
}

func (h *harness) load(file string) *Playbook {
	h.t.Helper()
	pb, err := h.loader.Load(filepath.Join(h.dir, file))
	if err != nil {
		h.t.Fatal(err)
	}
	return pb
}

// run loads file and runs it with the command-line parameters strs.
func (h *harness) run(ctx context.Context, file string, strs map[string]string, opts RunOptions) *Result {
	h.t.Helper()
	pb := h.load(file)
	params, err := pb.Decl.Coerce(strs, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.engine.Run(ctx, pb, params, opts)
}

// pbSource is a playbook named after its file whose run body is body.
func pbSource(name, body string, kwargs ...string) string {
	extra := ""
	if len(kwargs) > 0 {
		extra = ", " + strings.Join(kwargs, ", ")
	}
	return "def run(ctx):\n" + body + "\n\nplaybook(name = \"" + name + "\", run = run" + extra + ")\n"
}

func TestRunResultIsJSON(t *testing.T) {
	h := newHarness(t, map[string]string{
		"p.star": pbSource("p", `    return {
        "dict": {"a": 1, "b": {"c": [1, 2]}},
        "list": [1, "x", None, True, 1.5, (2, 3)],
        "struct": struct(b = [1], a = None),
        "caught": catch(fail, "nope"),
        "none": None,
        "big": 1 << 70,
        "params": ctx.params,
        "ctx": [ctx.playbook, ctx.trigger, ctx.run_id, len(ctx.version)],
    }`, `params = {"n": param.int(default = 3), "d": param.duration(default = 90)}`),
		"none.star": pbSource("none", "    pass"),
	}, Config{})
	res := h.run(context.Background(), "p.star", nil, RunOptions{ID: "r1", Trigger: "hub"})
	if res.Status != runstate.Succeeded {
		t.Fatalf("status = %s (%s)", res.Status, res.Error)
	}
	// Object keys are sorted, as json.encode sorts them; durations read
	// as Go durations.
	want := `{"big":1180591620717411303424,` +
		`"caught":{"error":{"exitstatus":"","kind":"error","lock":"","log":[],"message":"fail: nope","path":"","privilege":"","status":0,"upid":""},"ok":false,"value":null},` +
		`"ctx":["p","hub","r1",64],"dict":{"a":1,"b":{"c":[1,2]}},"list":[1,"x",null,true,1.5,[2,3]],"none":null,` +
		`"params":{"d":"1m30s","n":3},"struct":{"a":null,"b":[1]}}`
	if string(res.Output) != want {
		t.Errorf("Output =\n%s\nwant\n%s", res.Output, want)
	}
	if res.ID != "r1" || res.Trigger != "hub" || res.Playbook != "p" || res.Version != h.load("p.star").Version || res.Steps == 0 {
		t.Errorf("result = %+v", res)
	}
	if res.Params["n"] != int64(3) || res.Params["d"] != "1m30s" {
		t.Errorf("Params = %v", res.Params)
	}

	res = h.run(context.Background(), "none.star", nil, RunOptions{})
	if res.Status != runstate.Succeeded || string(res.Output) != "null" || !strings.HasPrefix(res.ID, "r-") || len(res.ID) != len("r-20060102T150405-0123abcd") || res.Trigger != "cli" {
		t.Errorf("None result: status %s output %s id %q trigger %q", res.Status, res.Output, res.ID, res.Trigger)
	}
}

func TestRunFailures(t *testing.T) {
	files := map[string]string{
		"lib/steps.star": "def check(x):\n    if x > 1:\n        fail(\"too many:\", x)\n    return x\n",
		"fail.star":      "load(\"lib/steps.star\", \"check\")\n\n" + pbSource("fail", "    return check(2)"),
		"budget.star":    pbSource("budget", "    n = 0\n    while True:\n        n += 1"),
		"proxmox.star":   pbSource("proxmox", "    test.vzdump()"),
		"panic.star":     pbSource("panic", "    test.panic()"),
		"result.star":    pbSource("result", "    return {\"a\": [1, run]}"),
		"self.star":      pbSource("self", "    l = []\n    l.append(l)\n    return l"),
		"keys.star":      pbSource("keys", "    return {1: 2}"),
		"type.star":      pbSource("type", `    return "a" + 1`),
		"frozen.star":    "SEEN = []\n\n" + pbSource("frozen", "    SEEN.append(ctx.run_id)"),
		"closure.star": "def make():\n    seen = []\n    def run(ctx):\n        seen.append(1)\n    return run\n\n" +
			"playbook(name = \"closure\", run = make())\n",
	}
	h := newHarness(t, files, Config{MaxSteps: 100_000})
	tests := []struct {
		file, kind, error string // error is a regexp
		backtrace         []string
	}{
		{"fail.star", KindError, `^lib/steps\.star:3:13: fail: too many: 2$`,
			[]string{"Traceback (most recent call last):", "fail.star:4:17: in run", "lib/steps.star:3:13: in check", "Error in fail: too many: 2"}},
		{"budget.star", KindStepBudget, `^budget\.star:\d+:\d+: step budget of 100000 exceeded$`, nil},
		{"proxmox.star", "permission", `^proxmox\.star:2:16: test\.vzdump: task vzdump \(101 UPID:pve:.*\) failed: Permission check failed \(/storage/usb-backup, Datastore\.AllocateSpace\)$`,
			[]string{"proxmox.star:2:16: in run", "Error in test.vzdump: task vzdump"}},
		{"panic.star", KindInternal, `^internal error: test\.panic called$`, nil},
		{"result.star", KindResult, `^result\.star: result\["a"\]\[1\]: cannot encode function as JSON$`, nil},
		{"self.star", KindResult, `^self\.star: result(\[0\]){65}: nested more than 64 levels deep`, nil},
		{"keys.star", KindResult, `^keys\.star: result: dict has int key, want string$`, nil},
		{"type.star", KindError, `^type\.star:2:16: unknown binary op: string \+ int$`, nil},
		// Runs cannot change the state the file set up, even through a
		// closure that is not a global.
		{"frozen.star", KindError, `^frozen\.star:4:16: append: cannot append to frozen list$`, nil},
		{"closure.star", KindError, `^closure\.star:4:20: append: cannot append to frozen list$`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := h.run(context.Background(), tt.file, nil, RunOptions{})
			msg := strings.ReplaceAll(res.Error, h.dir+string(filepath.Separator), "")
			if res.Status != runstate.Failed || res.Kind != tt.kind || !regexp.MustCompile(tt.error).MatchString(msg) {
				t.Errorf("result = %s %s %q; want failed %s %q", res.Status, res.Kind, msg, tt.kind, tt.error)
			}
			bt := strings.ReplaceAll(res.Backtrace, h.dir+string(filepath.Separator), "")
			for _, line := range tt.backtrace {
				if !strings.Contains(bt, line) {
					t.Errorf("backtrace lacks %q:\n%s", line, bt)
				}
			}
			if res.Err == nil {
				t.Error("Err = nil")
			}
		})
	}
	// The typed error is reachable through the *starlark.EvalError.
	res := h.run(context.Background(), "proxmox.star", nil, RunOptions{})
	if te, ok := errors.AsType[*proxmox.TaskError](res.Err); !ok || te.Permission.Path != "/storage/usb-backup" {
		t.Errorf("errors.As(res.Err, *TaskError) = %v, %v", te, ok)
	}
}

func TestRunCatchTaskError(t *testing.T) {
	h := newHarness(t, map[string]string{"p.star": pbSource("p", `    r = catch(test.vzdump)
    if r.ok or r.error.kind != "permission":
        fail("unexpected", r)
    return r.error`)}, Config{})
	res := h.run(context.Background(), "p.star", nil, RunOptions{})
	want := `{"exitstatus":"Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)","kind":"permission","lock":"",` +
		`"log":["INFO: starting new backup job","TASK ERROR: Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)"],` +
		`"message":"test.vzdump: task vzdump (101 UPID:pve:0000F00D:00A1B2C3:65F0A1B2:vzdump:101:felhom@pve!agent:) failed: Permission check failed (/storage/usb-backup, Datastore.AllocateSpace)",` +
		`"path":"/storage/usb-backup","privilege":"Datastore.AllocateSpace","status":0,"upid":"UPID:pve:0000F00D:00A1B2C3:65F0A1B2:vzdump:101:felhom@pve!agent:"}`
	if res.Status != runstate.Succeeded || string(res.Output) != want {
		t.Errorf("result = %s %s\noutput %s\nwant   %s", res.Status, res.Error, res.Output, want)
	}
}

func TestRunStopped(t *testing.T) {
	files := map[string]string{
		"spin.star":  pbSource("spin", "    while True:\n        pass", `timeout = "20ms"`),
		"block.star": pbSource("block", "    test.block()", `timeout = "1h"`),
	}
	t.Run("timeout stops a loop", func(t *testing.T) {
		h := newHarness(t, files, Config{MaxSteps: 1 << 62})
		res := h.run(context.Background(), "spin.star", nil, RunOptions{})
		if res.Status != runstate.TimedOut || !regexp.MustCompile(`spin\.star:\d+:\d+: timed out after 20ms$`).MatchString(res.Error) || res.Kind != "" {
			t.Errorf("result = %s %s %q; want timed_out after 20ms", res.Status, res.Kind, res.Error)
		}
		var te *timeoutError
		if !errors.As(res.Err, &te) || !strings.Contains(res.Err.Error(), "Starlark computation cancelled") {
			t.Errorf("Err = %v; want the timeout and the interpreter's error", res.Err)
		}
	})
	t.Run("timeout interrupts a waiting builtin", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, files, Config{})
			start := time.Now()
			res := h.run(context.Background(), "block.star", nil, RunOptions{})
			if res.Status != runstate.TimedOut || !strings.HasSuffix(res.Error, "block.star:2:15: timed out after 1h0m0s") {
				t.Errorf("result = %s %q; want timed_out", res.Status, res.Error)
			}
			if took := time.Since(start); took != time.Hour {
				t.Errorf("the run took %s of fake time; want exactly the timeout", took)
			}
			var te *timeoutError
			if !errors.As(res.Err, &te) {
				t.Errorf("Err = %v; want the timeout", res.Err)
			}
		})
	})
	t.Run("caller's deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t, files, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res := h.run(ctx, "block.star", nil, RunOptions{})
			if res.Status != runstate.TimedOut || !strings.HasSuffix(res.Error, "context deadline exceeded") {
				t.Errorf("result = %s %q; want timed_out by the caller's deadline", res.Status, res.Error)
			}
		})
	})
	t.Run("cancel interrupts a waiting builtin", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		ctx, cancel := context.WithCancel(context.Background())
		started := h.sig.Arm()
		go func() { <-started; cancel() }()
		res := h.run(ctx, "block.star", nil, RunOptions{})
		if res.Status != runstate.Cancelled || !strings.HasSuffix(res.Error, "block.star:2:15: cancelled") || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("result = %s %q (%v); want cancelled", res.Status, res.Error, res.Err)
		}
	})
	t.Run("cancel with a cause", func(t *testing.T) {
		h := newHarness(t, files, Config{})
		ctx, cancel := context.WithCancelCause(context.Background())
		started := h.sig.Arm()
		go func() { <-started; cancel(errors.New("by the operator")) }()
		res := h.run(ctx, "block.star", nil, RunOptions{ID: "r7"})
		if res.Status != runstate.Cancelled || !strings.HasSuffix(res.Error, "cancelled: by the operator") {
			t.Errorf("result = %s %q; want cancelled by the operator", res.Status, res.Error)
		}
	})
	t.Run("step budget is not caught", func(t *testing.T) {
		h := newHarness(t, map[string]string{"p.star": "def spin():\n    while True:\n        pass\n\n" +
			pbSource("p", "    r = catch(spin)\n    return \"swallowed\"")}, Config{MaxSteps: 10_000})
		res := h.run(context.Background(), "p.star", nil, RunOptions{})
		if res.Status != runstate.Failed || res.Kind != KindStepBudget {
			t.Errorf("result = %s %s %q; want the step budget to stop the run through catch()", res.Status, res.Kind, res.Error)
		}
	})
}

func TestRunLogsWithRunAttributes(t *testing.T) {
	h := newHarness(t, map[string]string{"p.star": pbSource("p", `    print("hello", 1)
    log.info("backed up", vmid = 101)
    log.warn("slow")`)}, Config{})
	res := h.run(context.Background(), "p.star", nil, RunOptions{ID: "r1"})
	if res.Status != runstate.Succeeded {
		t.Fatal(res.Error)
	}
	want := []string{
		"INFO run started version=" + h.load("p.star").ShortVersion() + " trigger=cli params=map[] run=r1 playbook=p",
		"INFO hello 1 run=r1 playbook=p",
		"INFO backed up vmid=101 run=r1 playbook=p",
		"WARN slow run=r1 playbook=p",
	}
	got := h.rec.Lines()
	if len(got) != 5 || !strings.HasPrefix(got[4], "INFO run finished status=succeeded took=") {
		t.Fatalf("log =\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("log line %d = %q; want %q", i, got[i], w)
		}
	}

	// A logger given per run receives the run's lines instead.
	own := logtest.New()
	h.run(context.Background(), "p.star", nil, RunOptions{ID: "r2", Logger: slog.New(own).With("store", "yes")})
	if lines := own.Lines(); len(lines) != 5 || lines[1] != "INFO hello 1 store=yes run=r2 playbook=p" {
		t.Errorf("per-run logger got:\n%s", strings.Join(lines, "\n"))
	}
}

func TestRunRefusals(t *testing.T) {
	files := map[string]string{
		"p.star":    pbSource("p", "    test.block()", `params = {"vmid": param.int()}`),
		"solo.star": pbSource("solo", "    test.block()"),
		"many.star": pbSource("many", "    test.block()", "concurrent = True"),
	}
	h := newHarness(t, files, Config{})
	res := h.engine.Run(context.Background(), h.load("p.star"), nil, RunOptions{})
	if res.Status != runstate.Refused || res.Kind != KindParams || res.Error != `parameter "vmid": expected int, got no value (it has no default)` {
		t.Errorf("run without required params = %s %s %q", res.Status, res.Kind, res.Error)
	}
	other, _ := h.load("solo.star").Decl.Coerce(nil, nil)
	res = h.engine.Run(context.Background(), h.load("p.star"), other, RunOptions{})
	if res.Status != runstate.Refused || res.Kind != KindParams {
		t.Errorf("run with another playbook's params = %s %s %q", res.Status, res.Kind, res.Error)
	}

	// A second run of a playbook that is running is refused unless it
	// declares concurrent = True.
	for _, tt := range []struct {
		file string
		want runstate.Status
	}{{"solo.star", runstate.Refused}, {"many.star", runstate.Succeeded}} {
		started := h.sig.Arm()
		first := make(chan *Result)
		go func() { first <- h.run(context.Background(), tt.file, nil, RunOptions{ID: "first-" + tt.file}) }()
		<-started
		done := make(chan *Result)
		go func() { done <- h.run(context.Background(), tt.file, nil, RunOptions{}) }()
		if tt.want == runstate.Refused {
			second := <-done
			if second.Status != runstate.Refused || second.Kind != KindBusy ||
				second.Error != `playbook "solo" is already running (run first-solo.star) and does not declare concurrent = True` {
				t.Errorf("second run = %s %s %q", second.Status, second.Kind, second.Error)
			}
			close(h.sig.Release)
		} else {
			close(h.sig.Release)
			if second := <-done; second.Status != runstate.Succeeded {
				t.Errorf("second concurrent run = %s %q", second.Status, second.Error)
			}
		}
		if r := <-first; r.Status != runstate.Succeeded {
			t.Errorf("first run = %s %q", r.Status, r.Error)
		}
		h.sig.Release = make(chan struct{})
	}
	// Every run has left: the solo playbook runs again.
	started := h.sig.Arm()
	again := make(chan *Result)
	go func() { again <- h.run(context.Background(), "solo.star", nil, RunOptions{}) }()
	<-started
	close(h.sig.Release)
	if r := <-again; r.Status != runstate.Succeeded {
		t.Errorf("solo after the others ended = %s %q; want succeeded", r.Status, r.Error)
	}
}

func TestRunConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, map[string]string{"p.star": pbSource("p", "    test.block()", "concurrent = True")}, Config{MaxConcurrent: 1})
		first := make(chan *Result)
		go func() { first <- h.run(context.Background(), "p.star", nil, RunOptions{ID: "first"}) }()
		synctest.Wait()

		ctx, cancel := context.WithCancel(context.Background())
		second := make(chan *Result)
		go func() { second <- h.run(ctx, "p.star", nil, RunOptions{ID: "second"}) }()
		synctest.Wait() // the second run is waiting for the only slot
		cancel()
		if r := <-second; r.Status != runstate.Cancelled || r.Error != "cancelled while waiting for a run slot" || r.Steps != 0 {
			t.Errorf("second run = %s %q (%d steps)", r.Status, r.Error, r.Steps)
		}
		close(h.sig.Release)
		if r := <-first; r.Status != runstate.Succeeded {
			t.Errorf("first run = %s %q", r.Status, r.Error)
		}
	})
}

// secretAPI stands for the Proxmox client, which holds the API token.
type secretAPI struct {
	builtins.GuestAPI
	token string
}

// TestRunTokenUnreachable walks everything a playbook can reach — every
// predeclared module and member, the ctx, catch results, errors — and
// checks that the token the client holds appears in none of it.
func TestRunTokenUnreachable(t *testing.T) {
	const token = "PVEAPIToken=felhom@pve!agent=8a2f0c9e-secret"
	h := newHarness(t, map[string]string{"p.star": pbSource("p", `    seen = [str(ctx), str(dir(ctx)), str(catch(test.vzdump)), str(catch(fail, "x"))]
    for m in [log, json, time, test, param]:
        for name in dir(m):
            seen.append(str(getattr(m, name)))
    for name in ["catch", "struct", "playbook", "print", "fail"]:
        seen.append(name)
    print("\n".join(seen))
    return seen`)}, Config{Env: builtins.Env{Proxmox: secretAPI{token: token}}})
	res := h.run(context.Background(), "p.star", nil, RunOptions{})
	if res.Status != runstate.Succeeded {
		t.Fatal(res.Error)
	}
	all := string(res.Output) + strings.Join(h.rec.Lines(), "\n")
	if strings.Contains(all, "8a2f0c9e") {
		t.Errorf("the token is reachable from a playbook:\n%s", all)
	}
	if !strings.Contains(all, "test.vzdump") {
		t.Errorf("the walk did not reach the modules:\n%s", all)
	}
}

func TestRunIDInContext(t *testing.T) {
	if RunID(context.Background()) != "" {
		t.Error("RunID of a bare context is not empty")
	}
	if got := RunID(context.WithValue(context.Background(), runIDKey{}, "r9")); got != "r9" {
		t.Errorf("RunID = %q; want r9", got)
	}
}
