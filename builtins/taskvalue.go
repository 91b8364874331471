package builtins

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// taskValue is a task as playbooks see it (the fields are listed on
// [TaskTable]): a value of type "task" whose fields are made when they are
// read. A mutation returns one on every call and most flows never read it
// (`proxmox.snapshot(101, "pre")` as a statement), so it costs one
// allocation instead of a struct of thirteen boxed fields
// (BenchmarkFlowEngine). Its own type, not "struct", because
// starlarkstruct's equality assumes that every value whose type is
// "struct" is one of its structs.
//
// Its backups list is made at its first read and kept, so that it is the
// same list however often it is read, as a struct's field would be; mu
// orders that with Freeze.
type taskValue struct {
	r       taskResult
	mu      sync.Mutex
	backups *starlark.List // nil until read
	frozen  bool
}

var (
	_ starlark.HasAttrs   = (*taskValue)(nil)
	_ starlark.Comparable = (*taskValue)(nil)
)

func (r taskResult) value() starlark.Value { return &taskValue{r: r} }

// taskFieldNames are a task's fields, sorted (AttrNames).
var taskFieldNames = []string{"backups", "duration", "exitstatus", "id", "node", "ok",
	"status", "storage", "sync", "type", "upid", "volid", "warnings"}

func (t *taskValue) Type() string         { return "task" }
func (t *taskValue) Truth() starlark.Bool { return starlark.True }
func (t *taskValue) AttrNames() []string  { return slices.Clone(taskFieldNames) }

func (t *taskValue) Hash() (uint32, error) {
	return 0, fmt.Errorf("unhashable type: task")
}

// Freeze freezes the task's backups list, now or when it is made.
func (t *taskValue) Freeze() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frozen = true
	if t.backups != nil {
		t.backups.Freeze()
	}
}

// String is the task as a struct prints: task(backups = [], ...).
func (t *taskValue) String() string {
	var b strings.Builder
	b.WriteString("task(")
	for i, name := range taskFieldNames {
		if i > 0 {
			b.WriteString(", ")
		}
		v, _ := t.Attr(name)
		b.WriteString(name)
		b.WriteString(" = ")
		b.WriteString(v.String())
	}
	b.WriteByte(')')
	return b.String()
}

// Attr is the named field; nil (no such field) for any other name.
func (t *taskValue) Attr(name string) (starlark.Value, error) {
	r := &t.r
	switch name {
	case "backups":
		return t.backupList(), nil
	case "duration":
		return durationValue(r.Duration), nil
	case "exitstatus":
		return taskString(r.ExitStatus), nil
	case "id":
		return starlark.String(r.UPID.ID), nil
	case "node":
		return starlark.String(r.UPID.Node), nil
	case "ok":
		return starlark.Bool(r.status().Succeeded()), nil
	case "status":
		return taskString(r.Status), nil
	case "storage":
		return starlark.String(r.Storage), nil
	case "sync":
		return starlark.Bool(r.Sync), nil
	case "type":
		return starlark.String(r.UPID.Type), nil
	case "upid":
		if r.text == "" && !r.UPID.IsZero() {
			return starlark.String(r.UPID.String()), nil
		}
		return starlark.String(r.text), nil
	case "volid":
		return starlark.String(r.VolID), nil
	case "warnings":
		return starlark.MakeInt(r.status().Warnings()), nil
	}
	return nil, nil
}

// backupList is the backups field, made once.
func (t *taskValue) backupList() *starlark.List {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.backups == nil {
		t.backups = listOf(t.r.Backups, volumeValue)
		if t.frozen {
			t.backups.Freeze()
		}
	}
	return t.backups
}

// status is the task's status as the client reports it.
func (r *taskResult) status() proxmox.TaskStatus {
	return proxmox.TaskStatus{UPID: r.UPID, Status: r.Status, ExitStatus: r.ExitStatus}
}

// CompareSameType compares two tasks field by field, as structs compare.
func (t *taskValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	u := y.(*taskValue)
	switch op {
	case syntax.EQL, syntax.NEQ:
		eq := true
		for _, name := range taskFieldNames {
			a, _ := t.Attr(name)
			b, _ := u.Attr(name)
			e, err := starlark.EqualDepth(a, b, depth-1)
			if err != nil {
				return false, err
			}
			if !e {
				eq = false
				break
			}
		}
		return eq == (op == syntax.EQL), nil
	}
	return false, fmt.Errorf("%s %s %s not implemented", t.Type(), op, y.Type())
}

// taskJournal is a task as the journal keeps it (tag "K"): the fields that
// are not made from others, with backups as the journal encodes a list.
type taskJournal struct {
	UPID       string          `json:"upid"`
	Status     string          `json:"status"`
	ExitStatus string          `json:"exitstatus"`
	Duration   time.Duration   `json:"duration"`
	VolID      string          `json:"volid,omitempty"`
	Storage    string          `json:"storage,omitempty"`
	Sync       bool            `json:"sync,omitempty"`
	Backups    json.RawMessage `json:"backups"`
}

// journal is t for the journal's "K" tag.
func (t *taskValue) journal() (taskJournal, error) {
	upid, _ := t.Attr("upid")
	backups, err := encodeValue(t.backupList())
	if err != nil {
		return taskJournal{}, fmt.Errorf("field backups: %w", err)
	}
	r := &t.r
	return taskJournal{UPID: string(upid.(starlark.String)), Status: r.Status, ExitStatus: r.ExitStatus, Duration: r.Duration,
		VolID: r.VolID, Storage: r.Storage, Sync: r.Sync, Backups: backups}, nil
}

// taskFromJournal is the task the journal's "K" body holds.
func taskFromJournal(body json.RawMessage) (starlark.Value, error) {
	var j taskJournal
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, err
	}
	t := &taskValue{r: taskResult{text: j.UPID, Status: j.Status, ExitStatus: j.ExitStatus, Duration: j.Duration,
		VolID: j.VolID, Storage: j.Storage, Sync: j.Sync}}
	if j.UPID != "" {
		u, err := proxmox.ParseUPID(j.UPID)
		if err != nil {
			return nil, fmt.Errorf("task: %w", err)
		}
		t.r.UPID = u
	}
	backups, err := decodeValue(j.Backups)
	if err != nil {
		return nil, fmt.Errorf("task backups: %w", err)
	}
	l, ok := backups.(*starlark.List)
	if !ok {
		return nil, fmt.Errorf("task backups: got %s, want list", backups.Type())
	}
	t.backups = l
	return t, nil
}
