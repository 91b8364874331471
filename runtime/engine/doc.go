// Package engine is felhom-agent's playbook engine: it loads playbooks,
// keeps the good version of each serving while files change, and runs
// them. It knows nothing of the daemon around it (runtime/agent), the run
// store, the hub or the local API; `felhom-agent run`, `check`, `test` and
// the daemon all use it the same way.
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
package engine
