package proxmox

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// TaskLogSource is what a [TaskLogReader] reads: one page of a task's log
// from a 0-based line offset (GET /nodes/{node}/tasks/{upid}/log with
// start and limit). *Client implements it.
type TaskLogSource interface {
	TaskLog(ctx context.Context, upid UPID, start, limit int) ([]LogLine, error)
}

// TaskLogReader follows one task's log while the task runs: each [Next]
// returns the lines written since the previous call, read with the log's
// start offset, so a long task costs one small request per call, not its
// whole log again. It is the one place that knows how PVE serves a log
// that is still being written (pve-common PVE::Tools::dump_logfile):
//   - a log with no line yet reads as the one line "no content" (and a
//     log file not yet created as "unable to open file - ..."), line 1 of
//     a total of 1 — a placeholder, not a line: Next returns nothing and
//     reads from the start again next time;
//   - lines are numbered from 1 (n), and a read past the end is empty;
//   - a host that ignores start and answers from the beginning again is
//     read by line number, so no line is returned twice.
//
// A TaskLogReader is not safe for concurrent use; one goroutine follows
// one task. The zero value is not usable: use [NewTaskLogReader].
type TaskLogReader struct {
	src  TaskLogSource
	upid UPID
	next int // lines returned so far: the next read's start
}

// NewTaskLogReader returns a reader of upid's log from its first line.
func NewTaskLogReader(src TaskLogSource, upid UPID) *TaskLogReader {
	return &TaskLogReader{src: src, upid: upid}
}

// Read is how many lines Next has returned so far.
func (r *TaskLogReader) Read() int { return r.next }

// Next returns the lines written since the last call, oldest first, at
// most maxLogLines in one call (the rest come with the next). An error
// leaves the reader where it was, so the next call reads the same lines
// again.
func (r *TaskLogReader) Next(ctx context.Context) ([]LogLine, error) {
	var out []LogLine
	next := r.next
	for len(out) < maxLogLines {
		page, err := r.src.TaskLog(ctx, r.upid, next, logPageSize)
		if err != nil {
			return nil, fmt.Errorf("reading the log of task %s from line %d: %w", r.upid, next+1, err)
		}
		if next == 0 && placeholder(page) {
			return nil, nil
		}
		fresh := 0
		for i, l := range page {
			n := l.N
			if n <= 0 { // a host that does not number its lines
				n = next + i + 1
			}
			if n <= next {
				continue // sent before: the host ignored start
			}
			out = append(out, LogLine{N: n, T: l.T})
			next = n
			fresh++
		}
		if len(page) < logPageSize || fresh == 0 {
			break
		}
	}
	r.next = next
	return out, nil
}

// placeholder reports whether a log's first page is dump_logfile's stand-in
// for a log with no line: "no content" (the ExtJS hack), or the error line
// of a log file that does not exist yet.
func placeholder(page []LogLine) bool {
	if len(page) != 1 || page[0].N > 1 {
		return false
	}
	t := page[0].T
	return t == "no content" || strings.HasPrefix(t, "unable to open file - ")
}

// progressLines match the task log lines that carry a percentage:
// qemu-server's backup status line ("INFO:  42% (13.4 GiB of 32.0 GiB) in
// 1m 2s, read: ..., write: ..."; PVE/VZDump/QemuServer.pm
// query_backup_status_loop), and a VM restore's progress line, which
// restore_vma_archive passes on from vma extract (pve-qemu vma-reader.c:
// "progress 42% (read 13958643712 bytes, duration 61 sec)") and a PBS
// restore from proxmox-backup-qemu in the same form.
var progressLines = []*regexp.Regexp{
	regexp.MustCompile(`^INFO:\s+(\d{1,3})% \(.+ of .+\) in `),
	regexp.MustCompile(`^progress (\d{1,3})% \(read `),
}

// TaskProgress returns the percentage a task log line reports, if it is
// one of the progress lines PVE's workers print (a VM backup's status
// line, a VM restore's progress line).
func TaskProgress(line string) (int, bool) {
	for _, re := range progressLines {
		if m := re.FindStringSubmatch(line); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n <= 100 {
				return n, true
			}
		}
	}
	return 0, false
}
