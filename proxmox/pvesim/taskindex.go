package pvesim

import (
	"container/heap"
	"slices"
)

// The node's task index, kept as PVE keeps it, so that every request costs
// what it asks for and not what the host has done before:
//
//   - The active file (/var/log/pve/tasks/active) lists the running tasks
//     in the order they were forked; GET .../tasks?source=active reads only
//     that file (pve-manager PVE/API2/Tasks.pm node_tasks; the file is kept
//     by pve-common src/PVE/RESTEnvironment.pm active_workers and parsed by
//     src/PVE/INotify.pm read_active_workers).
//   - When a worker ends, active_workers appends a line "UPID ENDTIME
//     STATUS" to the archive index (/var/log/pve/tasks/index) and marks the
//     task saved, which hides it from source=active. Once the index has
//     grown past 50,000 bytes ("about 1000 entries") it is renamed to
//     index.1, dropping the previous index.1: the archive listing reads
//     index, then index.1, newest line first, and so holds between one
//     and two files' worth of finished tasks.
//   - Each task's log file outlives its index entry (pve-manager
//     bin/pveupdate cleanup_tasks removes logs older than index.1 once a
//     day), so a task's status and log stay readable here: the simulator
//     keeps every task for lookups by UPID and for Sim.Tasks.
//
// Running tasks also sit in a heap ordered by planned end, so letting due
// tasks stop costs O(log n) per task that stops, not a scan of all tasks.
// PVE's reaper archives a task the moment its process exits; the simulator
// does the same the moment it lets a task stop, so a task is never both
// stopped and listed as active.

// archiveMaxBytes is the size past which PVE rotates the archive index
// (active_workers: `my $maxsize = 50000; # about 1000 entries`).
const archiveMaxBytes = 50000

// taskIndex is every task of the node. The zero value is empty and ready.
type taskIndex struct {
	all    []*task // every task ever started, oldest first
	active []*task // running tasks, in the order they were forked
	ends   endHeap // running tasks, soonest planned end first

	// index and index1 are the archive files, each oldest entry first;
	// indexBytes is the size of index.
	index, index1 []*task
	indexBytes    int
}

// add records a task that has just been forked.
func (ix *taskIndex) add(t *task) {
	t.seq = len(ix.all)
	ix.all = append(ix.all, t)
	ix.active = append(ix.active, t)
	heap.Push(&ix.ends, t)
}

// due returns the running task with the soonest planned end, or nil.
func (ix *taskIndex) due() *task {
	if len(ix.ends) == 0 {
		return nil
	}
	return ix.ends[0]
}

// archive moves a task that has stopped from the active list to the
// archive index, rotating the index as PVE does.
func (ix *taskIndex) archive(t *task) {
	if t.heapAt >= 0 {
		heap.Remove(&ix.ends, t.heapAt)
	}
	if i := slices.Index(ix.active, t); i >= 0 {
		ix.active = slices.Delete(ix.active, i, i+1)
	}
	ix.index = append(ix.index, t)
	// sprintf("%s %08X %s\n", upid, endtime, status)
	ix.indexBytes += len(t.id) + 1 + 8 + 1 + len(t.exit) + 1
	if ix.indexBytes > archiveMaxBytes {
		ix.index1, ix.index, ix.indexBytes = ix.index, nil, 0
	}
}

// archived calls yield for every task in the archive listing, newest
// entry first, until it returns false.
func (ix *taskIndex) archived(yield func(*task) bool) {
	for _, part := range [][]*task{ix.index, ix.index1} {
		for i := len(part) - 1; i >= 0; i-- {
			if !yield(part[i]) {
				return
			}
		}
	}
}

// endHeap is a container/heap of running tasks by planned end; tasks
// ending at the same time stop in the order they were forked.
type endHeap []*task

func (h endHeap) Len() int { return len(h) }

func (h endHeap) Less(i, j int) bool {
	if c := h[i].end.Compare(h[j].end); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}

func (h endHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt, h[j].heapAt = i, j
}

func (h *endHeap) Push(x any) {
	t := x.(*task)
	t.heapAt = len(*h)
	*h = append(*h, t)
}

func (h *endHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.heapAt = -1
	return t
}
