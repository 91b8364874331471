package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/builtins"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/engine"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// runJournal is a run's journal on the run store (engine.Journal): every
// run the daemon executes has one, so that a run interrupted by the
// agent's stop can resume (resume = True) or be replayed into its undo.
//
// It holds the journal in memory as well: a resumed run's entries, loaded
// at its start, answer the replay by sequence number; new entries are
// appended and written through. The outcome of a read (builtins.Replayed)
// and of a mutation is batched until the next intent or the run's end — a
// read whose record a crash lost is simply made again, and nothing acted
// on it in between; a mutation whose outcome was lost still has its UPID,
// which the resume waits for. Every intent is durable before the call
// acts. A call's UPID is its task's record (store.TaskStarted with the
// call's seq), which the run's observer writes the moment the POST
// returns (runTasks.TaskStarted, asking call for the seq): one durable
// write, so no crash leaves the task recorded but not the call's.
type runJournal struct {
	a   *Agent
	run string
	// stopAtEnd: the run is replayed only to be undone (it does not
	// resume, or the operator abandoned it): the body stops where the
	// journal ends (builtins.ErrReplayStop).
	stopAtEnd bool
	key       []byte // digest key (the state key); nil: plain SHA-256

	mu      sync.Mutex
	entries []store.JournalEntry // index seq-1
	loaded  int                  // how many came from the store
	undoAt  int                  // seq of the loaded undo mark; 0: none
	inUndo  bool
	cursor  int   // the last seq handed out
	calling bool  // the call at cursor is acting (handed out, not done)
	dirty   []int // seqs whose newest state is not written yet
	counts  store.JournalCounts
}

var _ engine.Journal = (*runJournal)(nil)

// journalBatch is how many read outcomes may wait for the next durable
// write.
const journalBatch = 64

// newRunJournal returns run's journal, loaded from the store for a
// resume (entries nil for a new run).
func newRunJournal(a *Agent, run string, entries []store.JournalEntry, stopAtEnd bool) *runJournal {
	j := &runJournal{a: a, run: run, entries: entries, loaded: len(entries), stopAtEnd: stopAtEnd, key: a.journalKey}
	for _, e := range entries {
		if e.Builtin == store.UndoMark {
			j.undoAt = e.Seq
			break
		}
	}
	return j
}

// describe is how a divergence names a call.
func describe(builtin, digest string) string {
	if len(digest) > 8 {
		digest = digest[:8]
	}
	return fmt.Sprintf("%s (arguments %s)", builtin, digest)
}

func (j *runJournal) Next(builtin, digest, pos string) (builtins.Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seq := j.cursor + 1
	j.calling = false
	if !j.inUndo && j.undoAt > 0 && seq >= j.undoAt {
		return builtins.Entry{}, builtins.ErrReplayStop // the body got as far as it had
	}
	if seq <= len(j.entries) {
		e := j.entries[seq-1]
		if e.Builtin != builtin || e.Digest != digest {
			return builtins.Entry{}, &builtins.DivergenceError{Pos: pos, Seq: seq, Journal: describe(e.Builtin, e.Digest), Playbook: describe(builtin, digest)}
		}
		if e.Outcome != nil {
			out := e.Outcome
			if e.Sealed {
				var err error
				if out, err = j.a.openSealed(out); err != nil {
					return builtins.Entry{}, fmt.Errorf("%s: the journal's outcome of call %d: %w", builtin, seq, err)
				}
			}
			j.cursor = seq
			return builtins.Entry{Seq: seq, State: builtins.EntryDone, Outcome: out}, nil
		}
		if j.stopAtEnd && !j.inUndo && e.UPID == "" {
			// Replayed to be undone: a request whose outcome is unknown
			// is not looked up and never sent again.
			return builtins.Entry{}, builtins.ErrReplayStop
		}
		j.cursor, j.calling = seq, true
		return builtins.Entry{Seq: seq, State: builtins.EntryPending, Intent: e.Intent, UPID: e.UPID}, nil
	}
	if j.stopAtEnd && !j.inUndo {
		return builtins.Entry{}, builtins.ErrReplayStop
	}
	j.cursor, j.calling = seq, true
	j.entries = append(j.entries, store.JournalEntry{Seq: seq, Builtin: builtin, Digest: digest, Pos: pos})
	return builtins.Entry{Seq: seq, State: builtins.EntryLive}, nil
}

func (j *runJournal) Intent(seq int) error {
	j.mu.Lock()
	j.entries[seq-1].Intent = time.Now()
	j.dirty = append(j.dirty, seq)
	j.mu.Unlock()
	return j.flush()
}

// Started records upid as call seq's task: already done when the run's
// observer recorded it as the POST returned (see call); otherwise it is
// an adopted task, recorded now. An empty upid detaches the call's tasks:
// the call is sent afresh.
func (j *runJournal) Started(seq int, upid string) error {
	j.mu.Lock()
	have := j.entries[seq-1].UPID
	j.mu.Unlock()
	if upid != "" && upid == have {
		return nil
	}
	var err error
	if upid == "" {
		err = j.a.store.DetachTasks(context.Background(), j.run, seq)
	} else {
		err = j.a.store.TaskStarted(context.Background(), j.run, seq, upid, time.Time{})
	}
	if err != nil {
		return err
	}
	j.noteTask(seq, upid)
	return nil
}

// call returns the seq of the journaled call that is acting, 0 for none:
// the call a task the run's observer sees start belongs to. Calls are
// made one at a time (builtins.Journal).
func (j *runJournal) call() int {
	if j == nil {
		return 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.calling {
		return 0
	}
	return j.cursor
}

// noteTask keeps upid, recorded in the store, as call seq's task.
func (j *runJournal) noteTask(seq int, upid string) {
	if j == nil || seq == 0 {
		return
	}
	j.mu.Lock()
	j.entries[seq-1].UPID = upid
	j.mu.Unlock()
}

// hasTask reports whether upid is a call's task in the journal (one a
// resumed run waits for, or adopted).
func (j *runJournal) hasTask(upid string) bool {
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.ContainsFunc(j.entries, func(e store.JournalEntry) bool { return e.UPID == upid })
}

func (j *runJournal) Done(seq int, mode builtins.Journaling, outcome []byte) error {
	sealed := false
	if j.a.isSecret(j.run, outcome) {
		var err error
		if outcome, err = j.a.seal(outcome); err != nil {
			return err
		}
		sealed = true
	}
	j.mu.Lock()
	j.entries[seq-1].Outcome, j.entries[seq-1].Sealed = outcome, sealed
	if seq == j.cursor {
		j.calling = false
	}
	j.dirty = append(j.dirty, seq)
	n := len(j.dirty)
	j.mu.Unlock()
	if (mode == builtins.Replayed || mode == builtins.Mutation) && n < journalBatch {
		// Batched until the next intent: a lost read is made
		// again; a lost mutation outcome leaves its UPID, which a resume
		// waits for (the task has ended: one status read), never sent
		// again.
		return nil
	}
	return j.flush()
}

// flush writes every entry whose newest state is not written yet, in one
// durable transaction.
func (j *runJournal) flush() error {
	j.mu.Lock()
	if len(j.dirty) == 0 {
		j.mu.Unlock()
		return nil
	}
	seen := map[int]bool{}
	var batch []store.JournalEntry
	for _, seq := range j.dirty {
		if !seen[seq] {
			seen[seq] = true
			batch = append(batch, j.entries[seq-1])
		}
	}
	j.dirty = nil
	j.mu.Unlock()
	if err := j.a.store.WriteJournal(context.Background(), j.run, batch); err != nil {
		j.mu.Lock()
		for _, e := range batch {
			j.dirty = append(j.dirty, e.Seq)
		}
		j.mu.Unlock()
		return err
	}
	return nil
}

func (j *runJournal) Digest(args []byte) string {
	if j.key == nil {
		s := sha256.Sum256(args)
		return hex.EncodeToString(s[:16])
	}
	m := hmac.New(sha256.New, j.key)
	m.Write(args)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (j *runJournal) Replaying() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	end := j.loaded
	if !j.inUndo && j.undoAt > 0 {
		end = j.undoAt - 1
	}
	return j.cursor < end
}

func (j *runJournal) Claimed(upid string) bool {
	j.mu.Lock()
	seq := j.cursor
	j.mu.Unlock()
	claimed, err := j.a.store.TaskClaimed(context.Background(), j.run, seq, upid)
	return err != nil || claimed // unknown: never adopt
}

func (j *runJournal) Note(what string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch what {
	case "replayed", "waited":
		j.counts.Replayed++
	case "adopted":
		j.counts.Adopted++
	case "reissued":
		j.counts.Reissued++
	}
}

// BeginUndo consumes the undo mark a replayed run wrote in its first life,
// or writes one after the journal's last entry.
func (j *runJournal) BeginUndo(reason string) error {
	j.mu.Lock()
	if j.inUndo {
		j.mu.Unlock()
		return nil
	}
	j.inUndo = true
	if j.undoAt > 0 {
		j.cursor = j.undoAt
		j.mu.Unlock()
		return nil
	}
	seq := len(j.entries) + 1
	out, _ := json.Marshal(reason)
	j.entries = append(j.entries, store.JournalEntry{Seq: seq, Builtin: store.UndoMark, Outcome: out})
	j.dirty = append(j.dirty, seq)
	j.cursor = seq
	j.mu.Unlock()
	return j.flush()
}

// result is what the run's journal did, for its record.
func (j *runJournal) result() store.JournalCounts {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.counts
}
