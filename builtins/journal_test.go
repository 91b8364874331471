package builtins

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	startime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// memJournal is a Journal in memory: what the agent keeps in its store.
type memJournal struct {
	mu      sync.Mutex
	entries []memEntry
	cursor  int
	notes   map[string]int
}

type memEntry struct {
	builtin, digest string
	intent          time.Time
	upid            string
	outcome         []byte
}

func (j *memJournal) Next(builtin, digest, pos string) (Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seq := j.cursor + 1
	j.cursor++
	if seq <= len(j.entries) {
		e := j.entries[seq-1]
		if e.builtin != builtin || e.digest != digest {
			return Entry{}, &DivergenceError{Pos: pos, Seq: seq, Journal: e.builtin + " (" + e.digest[:8] + ")", Playbook: builtin + " (" + digest[:8] + ")"}
		}
		switch {
		case e.outcome != nil:
			return Entry{Seq: seq, State: EntryDone, Outcome: e.outcome}, nil
		default:
			return Entry{Seq: seq, State: EntryPending, Intent: e.intent, UPID: e.upid}, nil
		}
	}
	j.entries = append(j.entries, memEntry{builtin: builtin, digest: digest})
	return Entry{Seq: seq, State: EntryLive}, nil
}

func (j *memJournal) Intent(seq int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries[seq-1].intent = time.Now()
	return nil
}

func (j *memJournal) Started(seq int, upid string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries[seq-1].upid = upid
	return nil
}

func (j *memJournal) Done(seq int, _ Journaling, outcome []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries[seq-1].outcome = outcome
	return nil
}

func (j *memJournal) Digest(args []byte) string {
	s := sha256.Sum256(args)
	return hex.EncodeToString(s[:])
}

func (j *memJournal) Replaying() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cursor < len(j.entries)
}

func (j *memJournal) Claimed(string) bool { return false }

func (j *memJournal) Note(what string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.notes == nil {
		j.notes = map[string]int{}
	}
	j.notes[what]++
}

// replayFrom is a journal holding what j recorded, its cursor at the top.
func (j *memJournal) replayFrom() *memJournal {
	j.mu.Lock()
	defer j.mu.Unlock()
	return &memJournal{entries: slices.Clone(j.entries)}
}

const journalScript = `
g = proxmox.guest(101)
t = proxmox.snapshot(101, "s1")
missing = catch(proxmox.guest, 999)
now = time.now()
result = (g.name, t.upid, t.ok, missing.ok, missing.error.kind, missing.error.message, str(now))
`

func journalModules(t *testing.T) starlark.StringDict {
	m := starModules(t)
	m["time"] = TimeTable.Module()
	m["catch"] = starlark.NewBuiltin("catch", catch)
	return m
}

func TestJournalReplayAnswersFromTheJournal(t *testing.T) {
	live := newRig(t)
	live.pve.errs["GuestStatus"] = nil
	j := &memJournal{}
	live.env.Journal = j
	first, err := runJournalScript(t, live.env, journalScript)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(j.entries); got != 4 {
		t.Fatalf("journal has %d entries; want 4 (guest, snapshot, guest 999, time.now)", got)
	}
	if j.entries[1].intent.IsZero() || j.entries[1].upid == "" {
		t.Errorf("the snapshot's entry = %+v; want its intent and UPID recorded", j.entries[1])
	}

	// Replay on a host that would answer differently: nothing reaches it.
	again := newRig(t)
	rj := j.replayFrom()
	again.env.Journal = rj
	second, err := runJournalScript(t, again.env, journalScript)
	if err != nil {
		t.Fatal(err)
	}
	if ev := again.log.all(); len(ev) != 0 {
		t.Errorf("replay reached the host: %q", ev)
	}
	if first.String() != second.String() {
		t.Errorf("replayed result = %s; want %s", second, first)
	}
	if rj.notes["replayed"] != 4 {
		t.Errorf("notes = %v; want 4 replayed", rj.notes)
	}
}

func TestJournalDivergence(t *testing.T) {
	live := newRig(t)
	j := &memJournal{}
	live.env.Journal = j
	if _, err := runJournalScript(t, live.env, journalScript); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, src, want string }{
		{"other builtin", "result = proxmox.guests()", "journal has proxmox.guest"},
		{"other arguments", "result = proxmox.guest(102)", "playbook called proxmox.guest"},
		{"not caught", "result = catch(proxmox.start, 101)", "journal has proxmox.guest"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.env.Journal = j.replayFrom()
			_, err := runJournalScript(t, r.env, tt.src)
			if err == nil || !strings.Contains(err.Error(), "non-deterministic replay at ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v; want a divergence naming %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), t.Name()[:0]+".star:1:") {
				t.Errorf("err = %v; want the call's file:line:col", err)
			}
			if ev := r.log.all(); len(ev) != 0 {
				t.Errorf("a diverged replay reached the host: %q", ev)
			}
		})
	}
}

func TestJournalPendingMutationIsWaitedNotSent(t *testing.T) {
	live := newRig(t)
	j := &memJournal{}
	live.env.Journal = j
	if _, err := runJournalScript(t, live.env, journalScript); err != nil {
		t.Fatal(err)
	}
	// The agent stopped while the snapshot's task ran: its UPID is
	// recorded, its outcome is not; nothing after it happened.
	rj := j.replayFrom()
	rj.entries[1].outcome = nil
	rj.entries = rj.entries[:2]
	r := newRig(t)
	r.env.Journal = rj
	if _, err := runJournalScript(t, r.env, journalScript); err != nil {
		t.Fatal(err)
	}
	ev := strings.Join(r.log.all(), "\n")
	if strings.Contains(ev, "Snapshot") {
		t.Errorf("the snapshot was sent again:\n%s", ev)
	}
	if !strings.Contains(ev, "wait vzsnapshot") {
		t.Errorf("the recorded task was not waited for:\n%s", ev)
	}
	if rj.notes["waited"] != 1 || rj.entries[1].outcome == nil {
		t.Errorf("notes = %v, outcome %q; want the wait counted and its outcome recorded", rj.notes, rj.entries[1].outcome)
	}
}

func TestJournalPendingIntentWithoutFinderIsAmbiguous(t *testing.T) {
	live := newRig(t)
	j := &memJournal{}
	live.env.Journal = j
	if _, err := runJournalScript(t, live.env, journalScript); err != nil {
		t.Fatal(err)
	}
	rj := j.replayFrom()
	rj.entries[1].outcome, rj.entries[1].upid = nil, ""
	rj.entries = rj.entries[:2]
	r := newRig(t)
	r.env.Journal = rj
	_, err := runJournalScript(t, r.env, journalScript)
	if !proxmox.IsAmbiguous(err) {
		t.Fatalf("err = %v; want an ambiguous outcome (the fake cannot be asked for its tasks)", err)
	}
	if ev := strings.Join(r.log.all(), "\n"); strings.Contains(ev, "Snapshot") {
		t.Errorf("a request whose outcome is unknown was sent again:\n%s", ev)
	}
}

func runJournalScript(t *testing.T, env *Env, src string) (starlark.Value, error) {
	t.Helper()
	thread := &starlark.Thread{Name: t.Name()}
	SetEnv(thread, env)
	g, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, t.Name()[:0]+".star", src, journalModules(t))
	if err != nil {
		return nil, err
	}
	return g["result"], nil
}

func TestOutcomeCodec(t *testing.T) {
	d := starlark.NewDict(2)
	_ = d.SetKey(starlark.String("a"), starlark.MakeInt(1))
	_ = d.SetKey(starlark.MakeInt(2), starlark.Tuple{starlark.True, starlark.None})
	big := starlark.MakeInt(1).Lsh(80)
	values := []starlark.Value{
		starlark.None, starlark.True, starlark.MakeInt(-7), big, starlark.Float(1.5), starlark.String("ü"),
		starlark.Bytes("\x00\xff"), starlark.NewList([]starlark.Value{starlark.MakeInt(1)}), d,
		newStruct(starlark.StringDict{"name": starlark.String("web"), "at": startime.Time(time.Date(2026, 12, 1, 3, 0, 0, 5, time.UTC)), "took": startime.Duration(90 * time.Second)}),
	}
	for _, v := range values {
		b, err := EncodeOutcome(v, nil)
		if err != nil {
			t.Fatalf("EncodeOutcome(%s): %v", v, err)
		}
		got, err := DecodeOutcome(b)
		if err != nil {
			t.Fatalf("DecodeOutcome(%s): %v", b, err)
		}
		if got.Type() != v.Type() || got.String() != v.String() {
			t.Errorf("round trip of %s (%s) = %s (%s)", v, v.Type(), got, got.Type())
		}
	}
	if _, err := EncodeOutcome(starlark.NewBuiltin("f", catch), nil); err == nil {
		t.Error("a function was journaled; want an error")
	}

	upid := proxmox.MustParseUPID("UPID:pve:00001000:0001E240:673D6A01:vzsnapshot:101:felhom@pve!agent:")
	errs := []error{
		fmt.Errorf("proxmox.start: %w", &proxmox.APIError{Method: "POST", Path: "/nodes/pve/lxc/101/status/start", Status: 403, Message: "Permission check failed (/vms/101, VM.PowerMgmt)", Permission: &proxmox.Permission{Path: "/vms/101", Privileges: []string{"VM.PowerMgmt"}}}),
		fmt.Errorf("proxmox.snapshot: %w", &proxmox.TaskError{UPID: upid, ExitStatus: "CT is locked (backup)", LogTail: []string{"TASK ERROR: CT is locked (backup)"}}),
		fmt.Errorf("proxmox.guest: %w", &proxmox.APIError{Method: "GET", Path: "/nodes/pve/lxc/999/status/current", Status: 500, Message: "Configuration file 'nodes/pve/lxc/999.conf' does not exist"}),
		fmt.Errorf("proxmox.stop: POST x: %w: connection reset", proxmox.ErrAmbiguous),
		errors.New("proxmox.x: plain"),
	}
	for _, e := range errs {
		b, err := EncodeOutcome(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		_, got := DecodeOutcome(b)
		if got == nil || got.Error() != e.Error() {
			t.Errorf("round trip of %q = %v", e, got)
			continue
		}
		if proxmox.Kind(got) != proxmox.Kind(e) {
			t.Errorf("Kind of replayed %q = %q; want %q", e, proxmox.Kind(got), proxmox.Kind(e))
		}
		if errorStruct(got).String() != errorStruct(e).String() {
			t.Errorf("catch() of replayed %q =\n%s\nwant\n%s", e, errorStruct(got), errorStruct(e))
		}
	}
}
