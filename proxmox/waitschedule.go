package proxmox

import "time"

// The wait schedule: how long a wait sleeps between two looks at a task.
//
// A task's end can only be noticed at a poll, so a wait that polls at t
// and next at t+s is up to s late. Sleeping a twentieth of the time
// already waited keeps that under 5% of the task's duration whatever the
// duration (the task has run at least t when it ends after the poll at t);
// a tenth, as a first guess, would allow 10%. The floor bounds the polls a
// short task costs (a 50 ms task is noticed within 25 ms, after 3 polls);
// the cap bounds the lateness of long ones (an hour-long vzdump is noticed
// within a minute, after about 220 polls, against 1,800 at the 2 s of a
// fixed cap).
//
// Waits on one node share one poll of its active task list (nodepoll.go);
// that poll follows the youngest wait, whose interval is the shortest, and
// never runs faster than sharedFloor allows, so that any number of waits
// costs the host at most a few requests a second.

// Defaults of WaitOptions (see its doc in types.go).
const (
	defaultWaitMin     = 25 * time.Millisecond
	defaultWaitMax     = time.Minute
	defaultWaitLogTail = 20
)

// waitFraction is the share of the time waited that a wait sleeps.
const waitFraction = 20

// sharedFloorWaits is how many waits' worth of MinInterval a shared poll
// sleeps at least: n waits sharing one poll sleep at least n times the
// smallest MinInterval among them, and no wait more than this many times.
// With the defaults the shared poll runs at most 40/n times a second, and
// at most 4 times a second (every 250 ms) from ten waits on.
const sharedFloorWaits = 10

// waitInterval is a lone wait's sleep after waiting elapsed so far:
// elapsed/waitFraction, within [lo, hi] (hi wins when lo > hi).
func waitInterval(elapsed, lo, hi time.Duration) time.Duration {
	return min(max(elapsed/waitFraction, lo), hi)
}

// History (WaitOptions.Expected). A wait expecting its task to run E
// polls at quietFraction of the time waited until quietShare of E: there
// the task is not yet expected to end, and a task that does end there
// (one that failed early, or ran more than twice as fast as before) is
// still noticed within a quarter of its duration. From quietShare of E on
// it is the ordinary schedule, with one poll at E itself, where a task as
// long as before ends; a history twice too short or twice too long costs
// no lateness beyond the ordinary schedule's.
//
// History serves a lone wait only. In a shared poll every wait's poll at
// its own E is one more list request, and its quiet window's end another:
// measured on the 1,000 staggered waits of BenchmarkWaitMany, history
// there cost 0.84 requests a second against 0.70 (0.76 without the poll at
// E, which then wins no lateness either), for a worst lateness of 245ms
// against 59s. A shared poll already costs the host little per wait; the
// lone wait — one backup at a time, the common case — is where the polls
// were.
const (
	quietFraction = 4
	quietShare    = 0.45
)

// expectInterval is the sleep of a wait expecting its task to run expect
// (0: unknown) after waiting elapsed: waitInterval, or its sparse form
// before quietShare of expect, and never past expect, so that expect is
// polled at, nor past quietShare of expect by more than lo.
func expectInterval(elapsed, expect, lo, hi time.Duration) time.Duration {
	if expect <= 0 {
		return waitInterval(elapsed, lo, hi)
	}
	d := waitInterval(elapsed, lo, hi)
	if quiet := time.Duration(quietShare * float64(expect)); elapsed < quiet {
		d = min(max(elapsed/quietFraction, lo), hi)
		if quiet-elapsed >= lo {
			// Not past the quiet window's end, unless by less than
			// the floor, which a poll there would not save.
			d = min(d, quiet-elapsed)
		}
	}
	if elapsed < expect {
		d = min(d, expect-elapsed)
	}
	return d
}

// sharedFloor is the least a poll shared by n waits sleeps, lo being the
// smallest MinInterval among them.
func sharedFloor(n int, lo time.Duration) time.Duration {
	return lo * time.Duration(min(max(n, 1), sharedFloorWaits))
}
