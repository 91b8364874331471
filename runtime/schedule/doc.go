// Package schedule fires jobs on cron timers: the daemon's playbook
// timers.
//
// A [Spec] is a five-field cron expression read in a time zone, with
// optional jitter and overlap policy; [ParseSpec] reads the schedule
// strings playbooks declare ("0 3 * * *", "@daily",
// "TZ=Europe/Budapest 30 2 * * *"). Ticks are computed by
// github.com/adhocore/gronx, whose next/previous-tick queries make catch-up
// a question rather than a loop.
//
// A [Scheduler] owns the loop: it fires each job through a callback, skips
// a tick while the job's previous fire still runs, persists each fire
// through a callback before it, and after downtime catches up a missed tick
// once, like systemd's Persistent=. It knows nothing of playbooks: the
// runtime wires Fire to starting a run and LastRun/MarkRun to its store.
package schedule
