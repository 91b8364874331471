// Package playtest runs playbook tests: the test_* functions of
// *_test.star files, each on a fresh simulated Proxmox VE host, like
// `go test` runs Test functions. It is what `felhom-agent test` and the
// project's Go tests of the shipped playbooks use.
//
// A test file is Starlark with every playbook builtin (proxmox, task, host,
// monitor, log, json, time, catch, struct) bound to its own simulator, plus:
//
//   - sim: shapes and inspects the simulated host ([SimTable]);
//   - assert: eq, ne, true, false, contains, not_contains, matches, fails
//     (each failure is recorded at the test's line and the test goes on);
//   - run_playbook(file, params={}): runs a playbook of the root on the
//     test's host and returns struct(status, result, error, kind, run).
//
// A test passes when it returns without error and no assertion failed.
// Failures read "file:line:col: message".
package playtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox/pvesim"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// Options configure [Run]. The zero value runs every test, discarding the
// playbooks' logs.
type Options struct {
	// Root is the playbooks root that load() and run_playbook resolve in;
	// "" means the directory of each test file.
	Root string
	// Logger receives the logs of the code under test; nil discards them.
	Logger *slog.Logger
	// Match selects tests by name ("test_backup_.*"); nil runs all.
	Match *regexp.Regexp
	// MaxSteps is each test's Starlark step budget; 0 means
	// engine.DefaultMaxSteps.
	MaxSteps uint64
}

// Result is the outcome of one test function (or of a file that did not
// load: then Test is "").
type Result struct {
	File     string
	Test     string
	Failures []string // "file:line:col: message", in the order they happened
	Duration time.Duration
}

// Passed reports whether the test had no failure.
func (r Result) Passed() bool { return len(r.Failures) == 0 }

// Tables are the test-only modules, for `felhom-agent doc`.
func Tables() []*builtins.Table { return []*builtins.Table{SimTable, AssertTable, testGlobals} }

// testGlobals are the global functions test files have besides a playbook's.
var testGlobals = &builtins.Table{
	Effect: builtins.Benign, // run_playbook: each call of the run passes the gate
	Name:   "",
	Doc:    "Test files (NAME_test.star) have one more: run_playbook.",
	Funcs: []builtins.Func{{
		Name: "run_playbook", Journal: builtins.Pure,
		Sig:     "run_playbook(file, params={}, operator=True)",
		Doc:     `Runs the playbook file (relative to the playbooks root) on the test's simulated host, as "felhom-agent run" would, and returns struct(status, result, error, kind, run, gate): status is succeeded, failed, cancelled, timed_out or refused (bad parameters); result is what the playbook returned (None when it failed). Every call passes the safety gate; a destructive one is signed by the simulated operator (marked in the log), or with operator = False refused (status failed, kind "signature"). gate lists the gate's decisions that were not plain benign passes, each struct(decision, what, rule, guest).`,
		Fn:      runPlaybook,
		Returns: builtins.StructShape("playbook run", "status", "result", "error", "kind", "run", "gate"),
	}},
}

// Run runs the tests of files and returns one Result per test, in file
// order and, within a file, in source order. It fails only when a file
// cannot be found; a file that does not load is a failed Result.
func Run(ctx context.Context, files []string, opts Options) ([]Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, err := assertModule(); err != nil {
		return nil, fmt.Errorf("playtest: assert module: %w", err)
	}
	loaders := map[string]*engine.Loader{}
	var results []Result
	for _, file := range files {
		root := cmp.Or(opts.Root, filepath.Dir(file))
		l, ok := loaders[root]
		if !ok {
			tables := append(builtins.Tables(), Tables()...)
			var err error
			if l, err = engine.NewLoader(root, engine.LoaderOptions{Tables: tables, Logger: opts.Logger, MaxSteps: opts.MaxSteps}); err != nil {
				return nil, err
			}
			loaders[root] = l
		}
		results = append(results, runFile(ctx, l, file, opts)...)
	}
	return results, nil
}

// test is one test function with its source position.
type test struct {
	name string
	fn   *starlark.Function
}

func runFile(ctx context.Context, l *engine.Loader, file string, opts Options) []Result {
	start := time.Now()
	globals, err := l.LoadScript(file)
	if err != nil {
		return []Result{{File: file, Failures: diagnostics(err), Duration: time.Since(start)}}
	}
	var tests []test
	for name, v := range globals {
		fn, ok := v.(*starlark.Function)
		if ok && strings.HasPrefix(name, "test_") && (opts.Match == nil || opts.Match.MatchString(name)) {
			tests = append(tests, test{name, fn})
		}
	}
	slices.SortFunc(tests, func(a, b test) int { return cmp.Compare(a.fn.Position().Line, b.fn.Position().Line) })
	var results []Result
	for _, t := range tests {
		results = append(results, runTest(ctx, l, file, t, opts))
	}
	return results
}

// diagnostics turns a load error into failure lines.
func diagnostics(err error) []string {
	var lerr *engine.LoadError
	if errors.As(err, &lerr) {
		var out []string
		for _, d := range lerr.Diagnostics {
			out = append(out, d.String())
		}
		return out
	}
	return []string{err.Error()}
}

// harness is what run_playbook needs; it is a thread local of the test.
type harness struct {
	loader *engine.Loader
	engine *engine.Engine
	ctx    context.Context
	logger *slog.Logger
	client *proxmox.Client // for the gate's facts
}

const harnessKey = "felhom.playtest.harness"

const worldKey = "felhom.playtest.world"

// testWorld is the simulated host (or cluster) of one test and what runs
// against it; sim.cluster rebuilds it as a cluster.
type testWorld struct {
	thread   *starlark.Thread
	loader   *engine.Loader
	ctx      context.Context
	logger   *slog.Logger
	clk      *clock
	tunnel   string
	desired  *testDesired
	maxSteps uint64
	srv      *pvesim.Server
	// unprivileged builds worlds whose agent has privileged operations
	// disabled (Env.Host nil), as privileged.enabled = false leaves it.
	unprivileged bool
}

// testReadRetryBudget is how long a test's reads ride out an unavailable
// API (proxmox.read_retry_budget, 30 s on a host): with the test's 1–10 ms
// backoff that is a hundred retries and more, past any fault given a
// count, while a fault without one is an outage the flow sees within a
// second (a test of an unreadable monitor took 30 s per read).
const testReadRetryBudget = time.Second

// build makes a fresh world — the default single node when nodes is 0,
// else a cluster of that many nodes with the agent on the first — and
// points the thread's simulator, builtins and harness at it, replacing
// (and stopping) the world there was.
func (w *testWorld) build(nodes int) error {
	sim := pvesim.New()
	sim.TaskDuration = taskDuration
	sim.Now = w.clk.now
	sim.Nodes = nodes
	var srv *pvesim.Server
	var err error
	if nodes > 1 {
		srv, err = sim.StartNode(pvesim.ClusterNodeName(1), "127.0.0.1:0")
	} else {
		srv, err = sim.Start("")
	}
	if err != nil {
		return err
	}
	cfg, err := srv.ClientConfig()
	if err != nil {
		srv.Close()
		return err
	}
	cfg.ReadRetryBudget = testReadRetryBudget
	client, err := proxmox.New(cfg, proxmox.WithLogger(w.logger), proxmox.WithRetryBackoff(time.Millisecond, 10*time.Millisecond))
	if err != nil {
		srv.Close()
		return err
	}
	priv, err := proxmox.NewPrivileged(proxmox.PrivilegedConfig{}, sim.RootRunner())
	if err != nil {
		srv.Close()
		return err
	}
	env := builtins.Env{
		Proxmox: client, Host: priv, Tunnel: w.tunnel, Gauges: new(builtins.LastGauges), Desired: w.desired,
		Wait: proxmox.WaitOptions{MinInterval: time.Millisecond, MaxInterval: 20 * time.Millisecond},
		Now:  w.clk.now,
	}
	if w.unprivileged {
		env.Host = nil
	}
	eng := engine.NewEngine(engine.Config{Env: env, MaxSteps: w.maxSteps, Logger: w.logger})
	runEnv := env
	runEnv.Context, runEnv.Logger, runEnv.Locks = w.ctx, w.logger, new(engine.GuestLocks)
	builtins.SetEnv(w.thread, &runEnv)
	w.thread.SetLocal(simKey, sim)
	w.thread.SetLocal(harnessKey, &harness{loader: w.loader, engine: eng, ctx: w.ctx, logger: w.logger, client: client})
	w.close()
	w.srv = srv
	return nil
}

func (w *testWorld) close() {
	if w.srv != nil {
		w.srv.Close()
		w.srv = nil
	}
}

// runTest runs one test function on a fresh simulated host.
func runTest(ctx context.Context, l *engine.Loader, file string, t test, opts Options) (res Result) {
	res = Result{File: file, Test: t.name}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	fail := func(err error) Result { res.Failures = append(res.Failures, err.Error()); return res }

	clk := &clock{}
	logger := opts.Logger.With("test", t.name)
	// The tunnel endpoint monitor.tunnel() checks: a listener of the test's
	// own that sim.tunnel_down() closes.
	tunnel, err := listenTunnel()
	if err != nil {
		return fail(err)
	}
	defer tunnel.Close()
	desired := &testDesired{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rep := &reporter{}
	thread := &starlark.Thread{Name: t.name, Print: func(_ *starlark.Thread, msg string) { logger.Info(msg) }}
	w := &testWorld{thread: thread, loader: l, ctx: ctx, logger: logger, clk: clk, tunnel: tunnel.Addr().String(), desired: desired, maxSteps: opts.MaxSteps}
	defer w.close()
	if err := w.build(0); err != nil {
		return fail(err)
	}
	thread.SetLocal(worldKey, w)
	thread.SetLocal(clockKey, clk)
	thread.SetLocal(tunnelKey, tunnel)
	thread.SetLocal(desiredKey, desired)
	thread.SetLocal(reporterKey, rep)
	steps := cmp.Or(opts.MaxSteps, engine.DefaultMaxSteps)
	thread.SetMaxExecutionSteps(steps)
	thread.OnMaxSteps = func(th *starlark.Thread) { th.Cancel(fmt.Sprintf("step budget of %d exceeded", steps)) }
	stop := context.AfterFunc(ctx, func() { thread.Cancel("test cancelled") })
	defer stop()

	_, err = starlark.Call(thread, t.fn, nil, nil)
	res.Failures = rep.failures
	if err != nil {
		res.Failures = append(res.Failures, located(err))
	}
	return res
}

const tunnelKey = "felhom.playtest.tunnel"

// listenTunnel stands in for the hub tunnel's endpoint: it accepts and
// closes connections until closed.
func listenTunnel() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("playtest: tunnel endpoint: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}

// located renders a test's own error as "file:line:col: message" at its
// innermost Starlark frame.
func located(err error) string {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return err.Error()
	}
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		pos := ee.CallStack[i].Pos
		if pos.IsValid() && pos.Filename() != "<builtin>" && pos.Filename() != assertFile {
			return fmt.Sprintf("%s:%d:%d: %s", pos.Filename(), pos.Line, pos.Col, ee.Msg)
		}
	}
	return ee.Msg
}

// runPlaybook implements run_playbook(file, params={}).
func runPlaybook(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var file string
	params := new(starlark.Dict)
	operator := true
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "file", &file, "params?", &params, "operator?", &operator); err != nil {
		return nil, err
	}
	h, ok := thread.Local(harnessKey).(*harness)
	if !ok {
		return nil, fmt.Errorf("%s: only a test function may run playbooks", b.Name())
	}
	pb, err := h.loader.Load(filepath.Join(h.loader.Root(), filepath.FromSlash(file)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	raw := map[string]json.RawMessage{}
	for _, item := range params.Items() {
		name, ok := starlark.AsString(item[0])
		if !ok {
			return nil, fmt.Errorf("%s: params: keys must be strings, got %s", b.Name(), item[0].Type())
		}
		js, err := encodeJSON(thread, item[1])
		if err != nil {
			return nil, fmt.Errorf("%s: params[%q]: %w", b.Name(), name, err)
		}
		raw[name] = js
	}
	fields := starlark.StringDict{"result": starlark.None, "error": starlark.String(""), "kind": starlark.String(""), "run": starlark.String(""), "gate": starlark.NewList(nil)}
	p, err := pb.Decl.Coerce(nil, raw)
	if err != nil {
		fields["status"], fields["error"], fields["kind"] = starlark.String(runstate.Refused), starlark.String(err.Error()), starlark.String(engine.KindParams)
		return starlarkstruct.FromStringDict(starlarkstruct.Default, fields), nil
	}
	id := runstate.NewID(time.Now())
	gate, decisions, err := h.gate(id, pb, p, operator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	res := h.engine.Run(proxmox.WithObserver(h.ctx, gate), pb, p, engine.RunOptions{ID: id, Trigger: "test", Logger: h.logger})
	fields["gate"] = decisions
	fields["status"], fields["error"], fields["kind"], fields["run"] = starlark.String(res.Status), starlark.String(res.Error), starlark.String(res.Kind), starlark.String(res.ID)
	if len(res.Output) > 0 {
		v, err := decodeJSON(thread, res.Output)
		if err != nil {
			return nil, fmt.Errorf("%s: result: %w", b.Name(), err)
		}
		fields["result"] = v
	}
	return starlarkstruct.FromStringDict(starlarkstruct.Default, fields), nil
}
