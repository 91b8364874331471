//go:build unix

package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/store/runstate"
)

// The crash tests re-run this test binary as a child (the helper-process
// pattern of os/exec's tests): with helperEnv set, TestMain runs the
// child's part instead of the tests, against the store at helperPathEnv.
const (
	helperEnv     = "FELHOM_STORE_HELPER"
	helperPathEnv = "FELHOM_STORE_HELPER_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperPathEnv)))
	}
	os.Exit(m.Run())
}

// runHelper is the child: it writes to the store, reports on stdout what
// has been committed, and is killed with SIGKILL mid-work.
func runHelper(mode, path string) int {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	switch mode {
	case "burst":
		// Hub triggers from 8 concurrent clients, each key sent twice,
		// each trigger starting two runs, forever: the parent kills it
		// during the burst. A line is printed only after CreateRuns
		// returned, the moment the agent would answer 202.
		var next atomic.Int64
		var out sync.Mutex
		for range 8 {
			go func() {
				for {
					key := fmt.Sprintf("t-%d", next.Add(1)/2)
					runs, created, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: key},
						[]NewRun{{Playbook: "backup"}, {Playbook: "notify"}})
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(4)
					}
					out.Lock()
					fmt.Printf("202 %s %v %s\n", key, created, strings.Join(ids(runs), ","))
					out.Unlock()
				}
			}()
		}
		select {}
	case "task":
		// A run that has started a task and dies before its end.
		runs, _, err := s.CreateRuns(ctx, Trigger{Source: SourceTimer, Key: "backup@03:00"}, []NewRun{{Playbook: "backup"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		id := runs[0].ID
		for _, err := range []error{
			s.MarkStarted(ctx, id, "v1", "", time.Time{}),
			s.TaskStarted(ctx, id, 0, upidA, time.Time{}),
			s.TaskFinished(ctx, upidA, "OK", time.Time{}),
			s.AppendLog(ctx, id, LogLine{Level: "INFO", Msg: "snapshot done"}),
			s.TaskStarted(ctx, id, 0, upidB, time.Time{}),
		} {
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 4
			}
		}
		fmt.Println(id)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// startHelper starts the child in mode against path.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout), &stderr
}

// waitKilled waits for the child and fails unless SIGKILL ended it.
func waitKilled(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child ended with %v; want killed (stderr: %s)", err, stderr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v; want killed by SIGKILL (stderr: %s)", err, stderr)
	}
}

func TestCrashDuringTriggerBurst(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	cmd, lines, stderr := startHelper(t, "burst", path)
	const accepted = 200
	answers := map[string][]string{} // key → run IDs, as answered
	creators := map[string]int{}     // key → answers that said created
	for n := 0; n < accepted; n++ {
		if !lines.Scan() {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child stopped after %d lines: %v (stderr: %s)", n, lines.Err(), stderr)
		}
		var key, created, runIDs string
		if _, err := fmt.Sscan(lines.Text(), new(string), &key, &created, &runIDs); err != nil {
			t.Fatalf("child said %q: %v", lines.Text(), err)
		}
		got := strings.Split(runIDs, ",")
		if prev, ok := answers[key]; ok && !slices.Equal(prev, got) {
			t.Errorf("trigger %s answered with runs %v, then %v", key, prev, got)
		}
		answers[key] = got
		if created == "true" {
			if creators[key]++; creators[key] > 1 {
				t.Errorf("trigger %s created runs twice", key)
			}
		}
	}
	// SIGKILL while the child is still writing: it never stops by itself.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitKilled(t, cmd, stderr)

	s := openAt(t, path)
	for key, want := range answers {
		runs, err := s.RunsByKey(ctx, SourceHub, key)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(runs); !slices.Equal(got, want) {
			t.Errorf("after the crash, trigger %s has runs %v; the child answered 202 with %v", key, got, want)
		}
	}
	// No trigger has two sets of runs, answered or not.
	all, err := s.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string][]string{}
	for _, r := range all {
		perKey[r.Key] = append(perKey[r.Key], r.Playbook)
	}
	for key, pbs := range perKey {
		if slices.Sort(pbs); !slices.Equal(pbs, []string{"backup", "notify"}) {
			t.Errorf("trigger %s has runs of %v; want exactly one backup and one notify", key, pbs)
		}
	}
	if len(perKey) < len(answers) {
		t.Errorf("store holds %d triggers; the child answered %d", len(perKey), len(answers))
	}
	// A hub retrying any of them after the restart gets the same runs.
	for key := range perKey {
		runs, created, err := s.CreateRuns(ctx, Trigger{Source: SourceHub, Key: key},
			[]NewRun{{Playbook: "backup"}, {Playbook: "notify"}})
		if err != nil || created {
			t.Errorf("retry of %s after restart: created %v, %v; want the existing runs", key, created, err)
		}
		if want, ok := answers[key]; ok && !slices.Equal(ids(runs), want) {
			t.Errorf("retry of %s = %v; want %v", key, ids(runs), want)
		}
	}
	t.Logf("killed after %d answered triggers (%d keys); %d keys in the store", accepted, len(answers), len(perKey))
}

func TestCrashWithTaskInFlight(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runs.db")
	cmd, lines, stderr := startHelper(t, "task", path)
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("child printed no run id: %v (stderr: %s)", lines.Err(), stderr)
	}
	id := lines.Text()
	waitKilled(t, cmd, stderr)

	s := openAt(t, path)
	got, err := s.RecoverInterrupted(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("RecoverInterrupted = %v; want [%s]", ids(got), id)
	}
	r := got[0]
	if r.Status != runstate.Interrupted || r.Version != "v1" || len(r.Tasks) != 2 ||
		r.Tasks[0].UPID != upidA || r.Tasks[0].ExitStatus != "OK" || r.Tasks[1].UPID != upidB || r.Tasks[1].Done() {
		t.Errorf("recovered run = %+v; want interrupted v1 with %s OK and %s open", r, upidA, upidB)
	}
	open, err := s.OpenTasks(ctx)
	if err != nil || len(open) != 1 || open[0].UPID != upidB || open[0].Run != id {
		t.Errorf("OpenTasks = %+v, %v; want %s of run %s", open, err, upidB, id)
	}
	if lines, err := s.Logs(ctx, id, 0, 0); err != nil || len(lines) != 1 || lines[0].Msg != "snapshot done" {
		t.Errorf("Logs = %+v, %v; want the line logged before the crash", lines, err)
	}
	// Following the task to its end is recorded; the run waits,
	// interrupted, until the agent resumes or undoes it.
	if err := s.TaskFinished(ctx, upidB, "OK", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if again, err := s.RecoverInterrupted(ctx, time.Time{}); err != nil || len(again) != 1 || again[0].ID != id || len(again[0].Tasks) != 2 || !again[0].Tasks[1].Done() {
		t.Errorf("RecoverInterrupted after recovery = %v, %v; want the same run, still waiting, with its task done", ids(again), err)
	}
}
