// Package runtime is felhom-agent's engine: it loads playbooks, keeps the
// good version of each serving while files change, and runs them.
//
// The parts, in the order a playbook meets them:
//
//  1. A [Loader] reads a file under the playbooks root, compiles it and
//     every module it loads (load("lib/x.star", ...)), and executes their
//     top levels once: load time only declares. playbook(...) and param.*
//     fill a [Declaration]; builtins that act refuse. Compiled programs
//     and frozen modules are cached by content, and a playbook's Version
//     is the hash of its source and everything it loads.
//
//  2. A [Registry] holds the loaded [Playbook] of every file in the root
//     and reloads changed files and their dependents; a bad version is
//     refused with its diagnostics while the last good one keeps serving.
//     [Check] is the same validation without a registry.
//
//  3. [Declaration.Coerce] checks a run's untrusted parameter values.
//
//  4. An [Engine] runs a Playbook: one Starlark thread per run with the
//     run's context, deadline and step budget, its own logger, limits on
//     concurrency and overlap, and guest locks ([GuestLocks]); the
//     [Result] says how it ended, where and why.
//
//  5. An [Agent] is the daemon around them (`felhom-agent serve`): it
//     watches the playbooks directory and hot-reloads it, runs playbooks
//     on timers (runtime/schedule), signed hub triggers (runtime/hub) and
//     local requests (runtime/api), records every run in the store
//     (runtime/store), follows interrupted tasks after a crash, and serves
//     metrics and health. lifecycle.go gives its start and stop order.
package runtime
