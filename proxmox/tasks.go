package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// taskSources are the values GET /nodes/{node}/tasks accepts for source.
var taskSources = []string{"active", "archive", "all"}

// Tasks lists the managed node's tasks (GET /nodes/{node}/tasks), newest
// first as PVE orders them, narrowed by f.
func (c *Client) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	q := url.Values{}
	if f.VMID != 0 {
		if err := needVMID(f.VMID); err != nil {
			return nil, err
		}
		q.Set("vmid", strconv.Itoa(f.VMID))
	}
	if f.TypeFilter != "" {
		q.Set("typefilter", f.TypeFilter)
	}
	if f.Source != "" {
		if !slices.Contains(taskSources, f.Source) {
			return nil, paramError("source", f.Source, fmt.Sprintf("is not one of %v", taskSources))
		}
		q.Set("source", f.Source)
	}
	if f.Errors {
		q.Set("errors", "1")
	}
	if f.Limit < 0 {
		return nil, paramError("limit", f.Limit, "must not be negative")
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.UserFilter != "" {
		q.Set("userfilter", f.UserFilter)
	}
	if !f.Since.IsZero() {
		q.Set("since", strconv.FormatInt(f.Since.Unix(), 10))
	}
	var ws []struct {
		UPID      text `json:"upid"`
		Type      text `json:"type"`
		ID        text `json:"id"`
		User      text `json:"user"`
		Node      text `json:"node"`
		Status    text `json:"status"`
		StartTime num  `json:"starttime"`
		EndTime   num  `json:"endtime"`
	}
	p := c.nodePath("tasks")
	if err := c.get(ctx, p, q, &ws); err != nil {
		return nil, err
	}
	out := make([]Task, 0, len(ws))
	for _, w := range ws {
		upid, err := ParseUPID(string(w.UPID))
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", p.plain, err)
		}
		t := Task{
			UPID: upid, Type: string(w.Type), ID: string(w.ID), User: string(w.User),
			Node: string(w.Node), Status: string(w.Status),
			StartTime: w.StartTime.toTime(), EndTime: w.EndTime.toTime(),
		}
		// A listed task has stopped once it has an end time or a status
		// other than PVE's "RUNNING"; its status is then the exit status.
		if !t.EndTime.IsZero() || (t.Status != "" && !strings.EqualFold(t.Status, "running")) {
			t.ExitStatus = t.Status
		}
		out = append(out, t)
	}
	return out, nil
}

// taskPath is a path below /nodes/{node}/tasks/{upid}, addressed to the
// node that runs the task, which need not be this Client's node.
func taskPath(upid UPID, segments ...string) (apiPath, error) {
	if upid.IsZero() {
		return apiPath{}, errors.New("proxmox: upid is empty (a synchronous operation has no task)")
	}
	return pathOf(append([]string{"nodes", upid.Node, "tasks", upid.String()}, segments...)...), nil
}

// TaskStatusOnce reads a task's status once
// (GET /nodes/{node}/tasks/{upid}/status). UPID is the one asked for.
func (c *Client) TaskStatusOnce(ctx context.Context, upid UPID) (TaskStatus, error) {
	p, err := taskPath(upid, "status")
	if err != nil {
		return TaskStatus{}, err
	}
	var w struct {
		Status     text `json:"status"`
		ExitStatus text `json:"exitstatus"`
	}
	if err := c.get(ctx, p, nil, &w); err != nil {
		return TaskStatus{}, err
	}
	return TaskStatus{UPID: upid, Status: string(w.Status), ExitStatus: strings.TrimSpace(string(w.ExitStatus))}, nil
}

// TaskLog returns up to limit lines of a task's log from the 0-based line
// offset start (GET /nodes/{node}/tasks/{upid}/log). limit 0 means PVE's
// default of 50.
func (c *Client) TaskLog(ctx context.Context, upid UPID, start, limit int) ([]LogLine, error) {
	lines, _, err := c.taskLogPage(ctx, upid, start, limit)
	return lines, err
}

// taskLogPage is one page of a task log and PVE's count of all lines
// (-1 when the answer has no total).
func (c *Client) taskLogPage(ctx context.Context, upid UPID, start, limit int) ([]LogLine, int, error) {
	if start < 0 {
		return nil, 0, paramError("start", start, "must not be negative")
	}
	if limit < 0 {
		return nil, 0, paramError("limit", limit, "must not be negative")
	}
	p, err := taskPath(upid, "log")
	if err != nil {
		return nil, 0, err
	}
	q := url.Values{"start": {strconv.Itoa(start)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	env, err := c.do(ctx, http.MethodGet, p, q)
	if err != nil {
		return nil, 0, err
	}
	var ws []struct {
		N num  `json:"n"`
		T text `json:"t"`
	}
	if err := decodeData(env.Data, &ws); err != nil {
		return nil, 0, fmt.Errorf("GET %s: decoding response: %w", p.plain, err)
	}
	lines := make([]LogLine, 0, len(ws))
	for _, w := range ws {
		lines = append(lines, LogLine{N: w.N.toInt(), T: string(w.T)})
	}
	total := -1
	if env.Total != "" {
		total = env.Total.toInt()
	}
	return lines, total, nil
}

// logPageSize is how many lines one request of a whole-log read asks for.
const logPageSize = 500

// maxLogLines bounds a whole-log read; a task log longer than this is not
// something a flow should page through.
const maxLogLines = 100_000

// TaskLogTail returns the text of the last n lines of a task's log. It
// uses PVE's line count to fetch only those lines, and pages through the
// whole log when the host does not send one.
func (c *Client) TaskLogTail(ctx context.Context, upid UPID, n int) ([]string, error) {
	if n < 0 {
		return nil, paramError("n", n, "must not be negative")
	}
	if n == 0 {
		return nil, nil
	}
	lines, total, err := c.taskLogPage(ctx, upid, 0, n)
	if err != nil {
		return nil, err
	}
	switch {
	case total >= 0 && total > len(lines):
		if lines, _, err = c.taskLogPage(ctx, upid, max(total-n, 0), n); err != nil {
			return nil, err
		}
	case total < 0 && len(lines) == n:
		// No count: read on from where the first page ended.
		rest, err := c.readLog(ctx, upid, n, n)
		if err != nil {
			return nil, err
		}
		lines = append(lines, rest...)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return logText(lines), nil
}

// readLog reads a task log from line offset start to its end, keeping at
// most keep of the last lines (0 keeps all).
func (c *Client) readLog(ctx context.Context, upid UPID, start, keep int) ([]LogLine, error) {
	var out []LogLine
	for read := 0; read < maxLogLines; {
		page, _, err := c.taskLogPage(ctx, upid, start+read, logPageSize)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if keep > 0 && len(out) > keep {
			out = out[len(out)-keep:]
		}
		read += len(page)
		if len(page) < logPageSize {
			return out, nil
		}
	}
	return nil, fmt.Errorf("proxmox: task %s: log longer than %d lines", upid, maxLogLines)
}

func logText(lines []LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.T
	}
	return out
}

// StopTask asks PVE to stop a running task (DELETE /nodes/{node}/tasks/{upid}).
// The task stops with an error exit status; wait for it to see the end.
func (c *Client) StopTask(ctx context.Context, upid UPID) error {
	p, err := taskPath(upid)
	if err != nil {
		return err
	}
	if err := c.gate(ctx, http.MethodDelete, p, nil); err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodDelete, p, nil)
	return err
}

// vzdumpArchiveMarkers introduce the archive path in a vzdump log:
// "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-....tar.zst'"
// (PVE 7 and later) and "creating archive '...'" (older hosts).
var vzdumpArchiveMarkers = []string{"creating vzdump archive '", "creating archive '"}

// pbsArchiveMarker introduces a Proxmox Backup Server snapshot in a vzdump
// log: "INFO: creating Proxmox Backup Server archive 'vm/200/2026-12-01T03:00:00Z'"
// (pve-manager PVE/VZDump.pm: the target is the snapshot name, and the
// volid is STORAGE:backup/TARGET).
const pbsArchiveMarker = "creating Proxmox Backup Server archive '"

// VzdumpArchive reads a finished vzdump task's log and returns the volid of
// the first archive it created on storage: "<storage>:backup/<file>" for a
// file storage, "<storage>:backup/{ct|vm}/VMID/TIME" for a Proxmox Backup
// Server. It fails when the log names no archive (a failed backup).
func (c *Client) VzdumpArchive(ctx context.Context, upid UPID, storage string) (string, error) {
	if err := needStorageID("storage", storage); err != nil {
		return "", err
	}
	lines, err := c.readLog(ctx, upid, 0, 0)
	if err != nil {
		return "", err
	}
	name, ok := archiveFromLog(lines)
	if !ok {
		return "", fmt.Errorf("proxmox: task %s: the log names no vzdump archive", upid)
	}
	return storage + ":backup/" + name, nil
}

// archiveFromLog finds the first archive a vzdump log names and returns
// its name below backup/: a file name, or a PBS snapshot name.
func archiveFromLog(lines []LogLine) (string, bool) {
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l.T, pbsArchiveMarker); ok {
			if target, _, ok := strings.Cut(rest, "'"); ok && pbsVolname.MatchString("backup/"+target) {
				return target, true
			}
		}
		for _, marker := range vzdumpArchiveMarkers {
			_, rest, ok := strings.Cut(l.T, marker)
			if !ok {
				continue
			}
			p, _, ok := strings.Cut(rest, "'")
			if !ok {
				continue
			}
			if file := path.Base(p); file != "" && file != "." && file != "/" {
				return file, true
			}
		}
	}
	return "", false
}

// VzdumpBackups lists guest upid.ID's backups on storage after its
// finished one-guest vzdump task upid (GET .../storage/{storage}/content,
// content=backup, vmid=ID; the listing as PVE returns it) and names the
// one the task made: the oldest backup of that guest whose ctime is not
// before the task's start. PVE names the archive after the time vzdump
// began the guest's backup inside the task
// (vzdump-lxc-101-2026_11_20-03_00_01.tar.zst, or a PBS snapshot's
// backup-time), never before the worker's start (the UPID's starttime,
// taken when the worker forks: pve-common PVE/RESTEnvironment.pm
// fork_worker); and while the task ran it held the guest's backup lock,
// so any other backup of the guest from after that start is newer than
// the task's. It fails when no backup of the guest on storage is from
// after the start (the archive is missing).
//
// It answers what VzdumpArchive answers from the task log, from one
// listing that also serves the caller's archive check and retention plan.
func (c *Client) VzdumpBackups(ctx context.Context, upid UPID, storage string) (archive string, backups []Volume, err error) {
	vmid, err := strconv.Atoi(upid.ID)
	if err != nil || upid.Type != "vzdump" {
		return "", nil, fmt.Errorf("proxmox: task %s is not a one-guest vzdump", upid)
	}
	backups, err = c.StorageContent(ctx, storage, "backup", vmid)
	if err != nil {
		return "", nil, err
	}
	var made *Volume
	for i, v := range backups {
		if _, of, ok := ArchiveKind(v.VolID); !ok || of != vmid || v.CTime.IsZero() || v.CTime.Before(upid.StartTime) {
			continue
		}
		if made == nil || v.CTime.Before(made.CTime) {
			made = &backups[i]
		}
	}
	if made == nil {
		return "", backups, fmt.Errorf("proxmox: task %s: no backup of guest %d on %s is from after the task's start (%s)",
			upid, vmid, storage, upid.StartTime.UTC().Format(time.RFC3339))
	}
	return made.VolID, backups, nil
}

// FindStartedTask looks in this node's task list (active and archived)
// for a task of worker type worker on worker id id, started by this
// client's token at or after since, whose UPID skip does not refuse; it
// returns the oldest such task. It answers the question a mutation whose
// request may or may not have reached Proxmox asks — did it start? —
// from Proxmox itself (GET /nodes/{node}/tasks with typefilter, vmid,
// userfilter and since, as pve-manager's PVE/API2/Tasks.pm filters them).
// A worker id that is not a vmid is matched on the listed id only.
func (c *Client) FindStartedTask(ctx context.Context, worker, id string, since time.Time, skip func(UPID) bool) (Task, bool, error) {
	// The list names an archived task's user without its token (Tasks.pm
	// reads the user of the index file), so the filter asks for the user
	// and the UPID, which keeps the token, decides.
	user, _, _ := strings.Cut(c.cfg.Token.ID, "!")
	f := TaskFilter{TypeFilter: worker, Source: "all", UserFilter: user, Since: since, Limit: 500}
	if vmid, err := strconv.Atoi(id); err == nil && vmid >= MinVMID && vmid <= MaxVMID {
		f.VMID = vmid
	}
	ts, err := c.Tasks(ctx, f)
	if err != nil {
		return Task{}, false, fmt.Errorf("look for a %s task of %s started since %s: %w", worker, id, since.UTC().Format(time.RFC3339), err)
	}
	var found Task
	ok := false
	for _, t := range ts {
		switch {
		case t.UPID.Type != worker, t.UPID.ID != id, t.UPID.StartTime.Before(since.Truncate(time.Second)),
			!strings.EqualFold(t.UPID.User, c.cfg.Token.ID),
			skip != nil && skip(t.UPID):
			continue
		}
		if !ok || t.UPID.StartTime.Before(found.UPID.StartTime) {
			found, ok = t, true
		}
	}
	return found, ok, nil
}
