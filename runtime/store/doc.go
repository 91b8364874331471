// Package store is the agent daemon's durable run history: every run with
// its trigger, parameters, version, status, timings, log lines, result and
// the Proxmox tasks it started, in one embedded SQLite database
// (modernc.org/sqlite, pure Go, WAL journal).
//
// # Durability
//
// Every method that changes the store returns only after its transaction
// has committed with synchronous=FULL. Once [Store.CreateRuns],
// [Store.TaskStarted] or [Store.Finish] has returned, a crash at any later
// instant (kill -9, or power loss on a disk that honours fsync) cannot lose
// what it wrote; a crash before it returns loses the whole call, never half
// of it. So a trigger may be acknowledged (202) as soon as CreateRuns
// returns, and a UPID recorded with TaskStarted right after the POST that
// started the task is never forgotten. That record is the one place a
// task's UPID is kept: with its run and the journal call that started it
// (a journal entry reads its UPID from there, journal.go), so no crash
// leaves a task recorded but not its call's.
//
// # Failing closed
//
// A write the store cannot commit for reasons of its own (disk full, I/O
// error, read-only or damaged file) wraps [ErrUnwritable] and marks the
// store unhealthy ([Store.Health]) until a later write, or [Store.Probe],
// commits: the agent refuses triggers and stops runs before their next
// mutation meanwhile. [Open] checks an existing file (PRAGMA quick_check)
// and refuses, never replaces, one that is empty or damaged ([ErrDamaged]);
// a new store is created whole under a temporary name and renamed into
// place.
//
// # Life of a run
//
//	CreateRuns ──► queued ──MarkStarted──► running ──Finish──► terminal
//	                  └──────────────Finish─────────────────────┘
//
// The statuses and which of them are final are one table, owned here and
// kept in the leaf package runtime/store/runstate so that the engine,
// which never opens the store, shares it ([runstate.Status.Terminal]); a terminal status is final and Finish
// refuses a second one ([ErrFinished]). TaskStarted and TaskFinished accept
// any run, terminal included: a task that exists on the host must be in the
// store even if its run ended in between. The tasks that succeeded are
// also the history of their kind (worker type, guest, node):
// [Store.TaskHistory] says how long the last ones took, which a wait on
// the next task of that kind expects it to take (proxmox.WaitOptions
// Expected).
//
// # Recovery
//
// At start, before it accepts work, the daemon calls
// [Store.RecoverInterrupted]: every run a previous process left running
// becomes interrupted. Such runs are never re-run automatically, because a
// hub retrying the trigger must find the run it was promised, not a second
// one. Runs left queued stay queued: they never started, so the daemon
// starts them (an accepted trigger always runs). Then [Store.OpenTasks]
// lists every task without a recorded end (the interrupted runs' tasks,
// and any that a crash during an earlier recovery left unfollowed); the
// daemon follows each UPID on the host to its end and records it with
// [Store.TaskFinished]. Nothing that started is ever started again.
//
// # Versions
//
// The version store keeps the sources of playbook versions, content
// addressed ([Store.PutVersion], [Store.GetVersion]), and the last good
// version of each playbook file ([Store.SetGoodVersion],
// [Store.GoodVersions]), which the agent serves at start when a file does
// not load. Prune deletes versions nothing refers to.
//
// # Idempotency
//
// A trigger with a key ([Trigger.Key]) creates its runs once, atomically:
// CreateRuns with a (source, key) pair seen before returns the runs the
// first call created and created=false, even when the first call came from
// a process that crashed right after committing. The key record outlives
// its runs for a while after retention deletes them (see [Retention]), so
// a late replay is still recognised as one.
//
// # Retention
//
// [Store.Prune] deletes old terminal runs, with their log lines and tasks,
// by count per playbook and by age. It never deletes a run that is queued
// or running, nor one with a task still being followed.
//
// # Concurrency
//
// A *Store is safe for concurrent use. Writes go through a single
// connection, so they are serialised in the order they reach it, and across
// processes by SQLite's lock (waiting up to [Options.BusyTimeout]). Reads
// use a separate pool of read-only connections and, thanks to WAL, never
// wait for a writer.
//
// # Conventions
//
// Times are stored as Unix nanoseconds and read back in UTC; a zero time
// passed to a method means "now". Parameters, results and log attributes
// are JSON text stored exactly as given: redacting secret-typed values is
// the caller's job, done before they reach the store. Errors wrap
// [ErrInvalid] for bad input, [ErrNotFound] for an unknown run or task,
// [ErrFinished] and [ErrStarted] for a transition the run's status forbids.
//
// This package imports nothing of the project: the runtime wires it in.
package store
