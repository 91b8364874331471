package proxmox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The shared poll. Waits on tasks of one node share one poller, which at
// each of its cycles either asks each wait to poll its own task's status
// (GET /nodes/{node}/tasks/{upid}/status) or, when two or more waits share
// it, reads the node's active task list once for all of them
// (GET /nodes/{node}/tasks?source=active). A task that has left that list
// has stopped, and its wait then reads the task's status once, for the
// exit status.
//
// What the active list is, in pve-manager PVE/API2/Tasks.pm node_tasks and
// pve-common src/PVE/RESTEnvironment.pm active_workers: the entries of
// /var/log/pve/tasks/active not yet archived, in the order the workers
// were forked, with status "RUNNING". fork_worker adds a task before it
// returns the UPID, and the daemon's SIGCHLD reaper archives it as its
// process ends, so a task that has left the list has stopped. The list is
// filtered like the archive: a token without Sys.Audit on the node sees
// only its own tasks, and at most `limit` of them (default 50), with the
// count of all in "total".
//
// So that a wait never mistakes a task it cannot see for a stopped one:
//   - a task missing from a list that was cut short by limit is not judged
//     (and the next list asks for all of them);
//   - a task missing from the list whose own status still says running
//     (another user's task, a host whose list lags) is polled by its own
//     status from then on, at the shared cadence;
//   - when the list itself fails other than transiently, every wait on the
//     node polls its own status, and meets that error there if it is real.
//
// Every wait keeps its own context: its own polls use it (cancellation,
// timeout, its Observer), and it leaves the poller the moment it ends. The
// list request is made on the poller's own context, reported to the
// Observer of the youngest wait, the one whose schedule caused it, so the
// requests that the Observers of all waits count add up to those the host
// received.

// activeListLimit is the limit of the first active-list request: more
// tasks than any one node runs at once. A list cut short is asked again
// with its total.
const activeListLimit = 1000

// taskWaits is a Client's waits in flight, by node. The zero value is
// ready; mu guards everything the pollers and waits share.
type taskWaits struct {
	mu    sync.Mutex
	nodes map[string]*nodePoll
}

// nodePoll is the poller of one node's waits. It runs while it has waits.
type nodePoll struct {
	c      *Client
	node   string
	ctx    context.Context // ends when its last wait leaves
	cancel context.CancelFunc
	wake   chan struct{} // a wait joined or left: reschedule

	// Guarded by taskWaits.mu.
	waits  []*taskWait
	noList bool // the active list failed for good
	limit  int  // of the next active-list request
}

// taskWait is one WaitTask call.
type taskWait struct {
	upid   UPID
	id     string          // upid's text, as the list gives it
	ctx    context.Context // the wait's own: its polls, timeout, Observer
	since  time.Time
	lo, hi time.Duration
	expect time.Duration // WaitOptions.Expected
	polled func()        // WaitOptions.Polled
	poll   chan struct{} // cap 1: poll your task's status now

	// Guarded by taskWaits.mu.
	own    bool // polls its own status instead of the list (see above)
	listed bool // the list has shown the task running
}

// join adds w to its node's poller, starting one if the node has none.
// A new poller's first cycle is at once, so a lone wait polls at once.
func (tw *taskWaits) join(c *Client, w *taskWait) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	p := tw.nodes[w.upid.Node]
	if p == nil {
		ctx, cancel := context.WithCancel(context.Background())
		p = &nodePoll{c: c, node: w.upid.Node, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), limit: activeListLimit}
		if tw.nodes == nil {
			tw.nodes = map[string]*nodePoll{}
		}
		tw.nodes[p.node] = p
		go p.run(tw)
	}
	p.waits = append(p.waits, w)
	p.signal()
}

// leave removes w from its poller; the poller of no waits stops, and its
// list request in flight, if any, is cancelled.
func (tw *taskWaits) leave(w *taskWait) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	p := tw.nodes[w.upid.Node]
	if p == nil {
		return
	}
	for i, x := range p.waits {
		if x == w {
			p.waits = append(p.waits[:i], p.waits[i+1:]...)
			break
		}
	}
	if len(p.waits) == 0 {
		delete(tw.nodes, p.node)
		p.cancel()
	}
	p.signal()
}

// signal wakes the poller to reschedule; it never blocks.
func (p *nodePoll) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// tick asks w to poll its own status; a tick not yet taken is not doubled.
func (w *taskWait) tick() {
	select {
	case w.poll <- struct{}{}:
	default:
	}
}

// run is the poller's loop: a cycle at once, then one a shared interval
// after the start of the previous one, rescheduled whenever a wait joins
// or leaves, until no wait is left.
func (p *nodePoll) run(tw *taskWaits) {
	var last time.Time
	for {
		tw.mu.Lock()
		if len(p.waits) == 0 {
			tw.mu.Unlock()
			return
		}
		now := time.Now()
		next := now
		if !last.IsZero() {
			next = last.Add(p.interval(now))
		}
		tw.mu.Unlock()
		if d := next.Sub(now); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-p.wake:
				t.Stop()
				continue
			}
		}
		last = time.Now()
		p.cycle(tw)
	}
}

// interval is the sleep between cycles, with tw.mu held: a lone wait's
// interval, with its history; for a poll shared by several, the interval
// of the youngest (the shortest of all), at least sharedFloor.
func (p *nodePoll) interval(now time.Time) time.Duration {
	d, lo := time.Duration(1<<63-1), time.Duration(1<<63-1)
	shared := len(p.waits) > 1
	for _, w := range p.waits {
		expect := w.expect
		if shared {
			expect = 0 // history serves a lone wait (waitschedule.go)
		}
		d = min(d, expectInterval(now.Sub(w.since), expect, w.lo, w.hi))
		lo = min(lo, w.lo)
	}
	if shared {
		d = max(d, sharedFloor(len(p.waits), lo))
	}
	return d
}

// cycle is one look at the node's tasks on behalf of every wait.
func (p *nodePoll) cycle(tw *taskWaits) {
	tw.mu.Lock()
	waits := append([]*taskWait(nil), p.waits...)
	shared := len(waits) > 1 && !p.noList
	var youngest *taskWait
	listing := false
	for _, w := range waits {
		switch {
		case !shared || w.own:
			w.tick()
		default:
			listing = true
		}
		if youngest == nil || w.since.After(youngest.since) {
			youngest = w
		}
	}
	limit := p.limit
	tw.mu.Unlock()
	if !listing {
		return
	}

	ctx := WithObserver(p.ctx, observerFrom(youngest.ctx))
	running, complete, total, err := p.c.activeTasks(ctx, p.node, limit)
	if err != nil {
		switch {
		case p.ctx.Err() != nil:
		case pollTransient(err):
			p.c.log.DebugContext(ctx, "proxmox active task list failed, polling on", "node", p.node, "err", err)
		default:
			p.c.log.DebugContext(ctx, "proxmox active task list unusable, each wait polls its task", "node", p.node, "err", err)
			tw.mu.Lock()
			p.noList = true
			tw.mu.Unlock()
			for _, w := range waits {
				w.tick()
			}
		}
		return
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if !complete {
		p.limit = max(limit, total+activeListLimit/10)
	}
	for _, w := range waits {
		switch {
		case w.own:
		case running[w.id]:
			w.listed = true
			if w.polled != nil {
				w.polled()
			}
		case complete:
			// Left the list: stopped. Its status is read once, and if it
			// says running after all, the task is one the list does not
			// show, and its status is polled from now on.
			w.own = true
			w.tick()
		}
	}
}

// activeTasks reads a node's active task list: the UPIDs it shows
// running, whether it showed every entry (limit did not cut it short), and
// PVE's count of all entries.
func (c *Client) activeTasks(ctx context.Context, node string, limit int) (running map[string]bool, complete bool, total int, err error) {
	p := pathOf("nodes", node, "tasks")
	env, err := c.do(ctx, http.MethodGet, p, url.Values{"source": {"active"}, "limit": {strconv.Itoa(limit)}})
	if err != nil {
		return nil, false, 0, err
	}
	var ws []struct {
		UPID   text `json:"upid"`
		Status text `json:"status"`
	}
	if err := decodeData(env.Data, &ws); err != nil {
		return nil, false, 0, fmt.Errorf("GET %s: decoding response: %w", p.plain, err)
	}
	running = make(map[string]bool, len(ws))
	for _, w := range ws {
		// An entry with another status has stopped but is not archived
		// yet (PVE lists it when writing the index failed).
		if s := string(w.Status); s == "" || strings.EqualFold(s, "running") {
			running[string(w.UPID)] = true
		}
	}
	if env.Total == "" {
		// No count (not PVE's list): only a list shorter than limit is
		// known to be whole.
		return running, len(ws) < limit, len(ws), nil
	}
	total = env.Total.toInt()
	return running, total <= len(ws), total, nil
}
