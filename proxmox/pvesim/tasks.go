package pvesim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// Worker tasks. A task starts with a real UPID, runs for the task duration
// and then stops: its work runs (the state changes it makes happen then),
// its log gets PVE's last line ("TASK OK", "TASK WARNINGS: N" or
// "TASK ERROR: text"), and that line decides the exit status, as in
// pve-common PVE::RESTEnvironment fork_worker and PVE::UPID read_status.
// Tasks stop lazily: the first time anyone looks at or after their end.

type task struct {
	node    *nodeState // the node it runs on
	upid    proxmox.UPID
	id      string // the UPID's text form
	user    string // USER@REALM!TOKEN (or root@pam): the UPID's user
	start   time.Time
	end     time.Time // planned end while running, actual end once stopped
	running bool
	lines   []string
	exit    string

	checks   []taskCheck  // privileges the worker checks when it runs
	injected string       // failure injected by a fault
	work     func() error // runs at the end; its error is the task's
	cleanup  func()       // releases what the task holds when it fails without its work
	startErr error        // the worker died as it started (see failAtStart)
	warnings int

	seq    int // position in the order tasks were forked
	heapAt int // index in the end heap while running, -1 after
}

// taskError is a worker's failure text, without PVE's "TASK ERROR: ".
type taskError string

func (e taskError) Error() string { return string(e) }

func failf(format string, args ...any) error { return taskError(fmt.Sprintf(format, args...)) }

func (t *task) logf(format string, args ...any) {
	t.lines = append(t.lines, strings.Split(fmt.Sprintf(format, args...), "\n")...)
}

// warnf logs a warning line and counts it, like log_warn.
func (t *task) warnf(format string, args ...any) {
	t.warnings++
	t.logf("WARN: "+format, args...)
}

// taskSpec describes a worker to start.
type taskSpec struct {
	typ, id  string
	duration time.Duration
	at       time.Time // when the worker was forked; zero means now
	startAt  time.Time // when the work may begin (vzdump waits for the global lock)
	intro    []string  // log lines visible while it runs
	checks   []taskCheck
	vmid     int // the guest, for matching injected failures
	// begin runs when the worker starts (the request's instant, or at):
	// an error fails the task at once with it (locks.go). It may take
	// what the task holds (a config lock) for cleanup to release.
	begin   func(t *task) error
	work    func(t *task) error
	cleanup func()
}

// startTask forks a worker started by user (a token id, or root@pam).
func (st *state) startTask(user string, sp taskSpec) *task {
	st.nextPID++
	start := st.now
	if !sp.at.IsZero() {
		start = sp.at
	}
	begin := sp.startAt
	if begin.Before(start) {
		begin = start
	}
	node := st.current()
	t := &task{
		node:    node,
		user:    user,
		start:   start,
		end:     begin.Add(sp.duration),
		running: true,
		lines:   slices.Clone(sp.intro),
		checks:  sp.checks,
		cleanup: sp.cleanup,
	}
	t.upid = proxmox.UPID{
		Node:      node.name,
		PID:       st.nextPID,
		PStart:    uint64(start.Sub(node.bootTime) / (10 * time.Millisecond)),
		StartTime: start.Truncate(time.Second),
		Type:      sp.typ,
		ID:        sp.id,
		User:      user,
	}
	t.id = t.upid.String()
	if sp.work != nil {
		work := sp.work
		t.work = func() error { return work(t) }
	}
	t.injected = st.consumeTaskFailure(sp.typ, sp.vmid)
	st.tasksByID[t.id] = t
	if sp.begin != nil && t.injected == "" {
		if err := sp.begin(t); err != nil {
			t.failAtStart(err)
		}
	}
	st.tasks.add(t) // once its end is known: begin may move it
	return t
}

// advance stops every task whose end has come, in order of their ends.
func (st *state) advance() {
	for {
		next := st.tasks.due()
		if next == nil || next.end.After(st.now) {
			// An event may fork a task that is itself due by now (the
			// HA stack's worker after a hastart): run events one at a
			// time and look at the tasks again.
			if e := st.nextEvent(st.now); e != nil {
				st.runEvent(e)
				continue
			}
			return
		}
		st.advanceEvents(next.end)
		if st.tasks.due() == next { // else an event changed what ends first
			st.finish(next)
		}
	}
}

func (st *state) finish(t *task) {
	st.as(t.node, func() { st.finishOn(t) })
}

// finishOn stops t, on its node.
func (st *state) finishOn(t *task) {
	t.running = false
	var err error
	switch {
	case t.injected != "":
		err = taskError(t.injected)
	case t.startErr != nil:
		err = t.startErr
	case st.denied(t.checks) != "":
		err = taskError(st.denied(t.checks))
	}
	if err != nil {
		if t.cleanup != nil {
			t.cleanup()
		}
	} else if t.work != nil {
		err = t.work()
	}
	t.close(err)
	st.tasks.archive(t)
}

// close writes the last log line and derives the exit status from it.
func (t *task) close(err error) {
	switch {
	case err != nil:
		msg := strings.ReplaceAll(strings.TrimRight(err.Error(), "\n"), "\n", " ")
		t.lines = append(t.lines, "TASK ERROR: "+msg)
		t.exit = msg
	case t.warnings > 0:
		t.lines = append(t.lines, fmt.Sprintf("TASK WARNINGS: %d", t.warnings))
		t.exit = fmt.Sprintf("WARNINGS: %d", t.warnings)
	default:
		t.lines = append(t.lines, "TASK OK")
		t.exit = "OK"
	}
}

// stop kills a running task, as DELETE /nodes/{node}/tasks/{upid} does.
func (st *state) stop(t *task) {
	if !t.running {
		return
	}
	t.running = false
	t.end = st.now
	if t.cleanup != nil {
		t.cleanup()
	}
	t.close(taskError("interrupted by signal"))
	st.tasks.archive(t)
}

// userParts splits a UPID user into PVE's user and tokenid fields.
func userParts(user string) (string, string) {
	u, tok, _ := strings.Cut(user, "!")
	return u, tok
}

// json is a task as the status (list false) or list endpoint shows it.
// A running task in a list is an entry of PVE's active file, which the
// list passes on as read_active_workers parsed it: the UPID's user whole
// (no tokenid split, unlike the archive and the status endpoint) and the
// file's "saved" flag, the string "0".
func (t *task) json(list bool) map[string]any {
	user, tokenID := userParts(t.user)
	if list && t.running {
		user, tokenID = t.user, ""
	}
	m := map[string]any{
		"upid":      t.id,
		"node":      t.upid.Node,
		"pid":       t.upid.PID,
		"pstart":    t.upid.PStart,
		"starttime": t.upid.StartTime.Unix(),
		"type":      t.upid.Type,
		"id":        t.upid.ID,
		"user":      user,
	}
	if tokenID != "" {
		m["tokenid"] = tokenID
	}
	switch {
	case list && t.running:
		m["status"] = "RUNNING"
		m["saved"] = "0"
	case list:
		m["status"] = t.exit
		m["endtime"] = t.end.Unix()
	case t.running:
		m["status"] = "running"
	default:
		m["status"] = "stopped"
		m["exitstatus"] = t.exit
	}
	return m
}

// statusClass is PVE::UPID::normalize_status_type.
func statusClass(status string) string {
	switch {
	case status == "":
		return "unknown"
	case status == "OK":
		return "ok"
	case strings.HasPrefix(status, "WARNINGS: "):
		return "warning"
	case status == "unexpected status":
		return "unknown"
	}
	return "error"
}

// ownsTask is PVE's check_task_user: a token sees its own tasks.
func ownsTask(tok *token, t *task) bool { return t.user == tok.id }

func (c *call) listTasks() response {
	st := c.st
	auditor := c.tok.has("/nodes/"+st.current().name, "Sys.Audit")
	classes := map[string]bool{"ok": true, "warning": true, "error": true, "unknown": true}
	if c.has("statusfilter") && !c.bool("errors") {
		classes = map[string]bool{}
		for _, f := range splitList(c.str("statusfilter")) {
			classes[strings.ToLower(f)] = true
		}
	} else if c.bool("errors") {
		classes["ok"] = false
	}
	start, limit := 0, 50
	if c.has("start") {
		start = c.int("start")
	}
	if c.has("limit") {
		limit = c.int("limit")
	}
	source := c.str("source")
	if source == "" {
		source = "archive"
	}
	count := 0
	var out []any
	filter := func(t *task) bool {
		user, _ := userParts(t.user)
		status := t.exit
		if t.running {
			user = t.user // the active file's entries keep the whole UPID user
			status = ""   // PVE filters active tasks before calling them RUNNING
		}
		switch {
		case t.node != st.current(): // each node lists its own tasks
		case c.has("userfilter") && !strings.Contains(strings.ToLower(user), strings.ToLower(c.str("userfilter"))):
		case !auditor && !ownsTask(c.tok, t):
		case c.has("typefilter") && t.upid.Type != c.str("typefilter"):
		case c.has("vmid") && t.upid.ID != c.str("vmid"):
		case c.has("since") && t.upid.StartTime.Unix() < int64(c.int("since")):
		case c.has("until") && t.upid.StartTime.Unix() > int64(c.int("until")):
		case !classes[statusClass(status)]:
		default:
			count++
			return count > start && limit > 0
		}
		return false
	}
	if source == "active" || source == "all" {
		for _, t := range st.tasks.active {
			if filter(t) {
				out = append(out, t.json(true))
				limit--
			}
		}
	}
	if source != "active" {
		st.tasks.archived(func(t *task) bool {
			if filter(t) {
				out = append(out, t.json(true))
				limit--
			}
			return true
		})
	}
	if out == nil {
		out = []any{}
	}
	return response{status: 200, data: out, total: count}
}

// lookupTask resolves the {upid} of a task path, answering PVE's 400s.
func (c *call) lookupTask() (*task, response) {
	upid := c.str("upid")
	if _, err := proxmox.ParseUPID(upid); err != nil {
		return nil, paramError(map[string]string{"upid": "unable to parse worker upid"})
	}
	t, ok := c.st.tasksByID[upid]
	if !ok || t.node != c.st.current() {
		// The task file is looked up on the node the path names.
		return nil, paramError(map[string]string{"upid": "no such task"})
	}
	return t, response{}
}

// requireTaskAccess is the Sys.Audit (or Sys.Modify) check PVE makes when
// the task belongs to someone else.
func (c *call) requireTaskAccess(t *task, priv string) (response, bool) {
	if ownsTask(c.tok, t) {
		return response{}, true
	}
	return c.tok.check("/nodes/"+c.st.current().name, priv)
}

func (c *call) taskStatus() response {
	t, fail := c.lookupTask()
	if t == nil {
		return fail
	}
	if resp, ok := c.requireTaskAccess(t, "Sys.Audit"); !ok {
		return resp
	}
	return ok(t.json(false))
}

func (c *call) taskLog() response {
	upid := c.str("upid")
	if _, err := proxmox.ParseUPID(upid); err != nil {
		return paramError(map[string]string{"upid": "unable to parse worker upid"})
	}
	t, known := c.st.tasksByID[upid]
	known = known && t.node == c.st.current()
	if known {
		if resp, ok := c.requireTaskAccess(t, "Sys.Audit"); !ok {
			return resp
		}
	}
	if c.bool("download") {
		if c.has("start") || c.has("limit") {
			return die("'download' cannot be used together with 'start' or 'limit' parameters")
		}
		return die("download of task logs is not simulated")
	}
	if !known {
		// dump_logfile answers a log it cannot open with one line,
		// whatever start and limit say.
		return response{status: 200, data: []any{map[string]any{"n": 1, "t": "unable to open file - No such file or directory"}}, total: 1}
	}
	start, limit := 0, 50
	if c.has("start") {
		start = c.int("start")
	}
	if c.has("limit") {
		limit = c.int("limit")
	}
	return logPage(t.lines, start, limit)
}

// logPage is pve-common PVE::Tools::dump_logfile over a task's lines: n
// counts from 1, lines before start are skipped, limit 0 reads to the end
// (since pve-common commit f0c1b0c, PVE 7.3), total is the number of lines
// in the log, and an empty log reads as the one line "no content" (the
// ExtJS hack in dump_logfile_by_filehandle), total 1.
func logPage(lines []string, start, limit int) response {
	if len(lines) == 0 {
		return response{status: 200, data: []any{map[string]any{"n": 1, "t": "no content"}}, total: 1}
	}
	out := []any{}
	for i := start; i < len(lines) && (limit == 0 || len(out) < limit); i++ {
		out = append(out, map[string]any{"n": i + 1, "t": lines[i]})
	}
	return response{status: 200, data: out, total: len(lines)}
}

func (c *call) stopTask() response {
	t, fail := c.lookupTask()
	if t == nil {
		return fail
	}
	if resp, ok := c.requireTaskAccess(t, "Sys.Modify"); !ok {
		return resp
	}
	c.st.stop(t)
	return ok(nil)
}

// TaskView is a task as the simulator holds it.
type TaskView struct {
	UPID       string   // PVE's text form
	Type       string   // worker type: vzdump, vzstart, ...
	ID         string   // worker id: the vmid, "" or "101@usb-backup"
	User       string   // the UPID's user: USER@REALM!TOKEN or root@pam
	Running    bool     // false once stopped
	ExitStatus string   // once stopped: OK, WARNINGS: N or the error text
	Log        []string // every log line so far, the TASK line last once stopped
}

// Tasks returns every task the simulator has started, oldest first,
// including those the task index no longer lists.
func (s *Sim) Tasks() []TaskView {
	var out []TaskView
	_ = s.with(func(st *state) error {
		for _, t := range st.tasks.all {
			out = append(out, t.view())
		}
		return nil
	})
	return out
}

// Task returns one task by UPID.
func (s *Sim) Task(upid string) (TaskView, bool) {
	var v TaskView
	var found bool
	_ = s.with(func(st *state) error {
		if t, ok := st.tasksByID[upid]; ok {
			v, found = t.view(), true
		}
		return nil
	})
	return v, found
}

func (t *task) view() TaskView {
	return TaskView{
		UPID: t.id, Type: t.upid.Type, ID: t.upid.ID, User: t.user,
		Running: t.running, ExitStatus: t.exit, Log: slices.Clone(t.lines),
	}
}

// vmidString is the worker id PVE uses for a guest.
func vmidString(vmid int) string { return strconv.Itoa(vmid) }
