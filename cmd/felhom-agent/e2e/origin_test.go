package e2e

import (
	"strings"
	"testing"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// TestSimRunNotResumedOnAHost: a backup started on `serve --sim`, killed
// (-9) while a vzdump runs, is not resumed by a `serve` on the same state
// directory configured for a host (a second simulator, its own process,
// over TLS): the run ends failed, kind interrupted, naming the simulator
// and the host, and the host sees no task; `runs resume` refuses it.
func TestSimRunNotResumedOnAHost(t *testing.T) {
	t.Parallel()
	requireServe(t)
	host := startSim(t)
	a := startAgent(t, agentOpts{args: []string{"--sim"}, playbooks: playbooksDir})
	r := a.startRun(t, "backup", map[string]any{"vmids": []int{101, 102}, "keep_last": 100})
	r = a.waitRun(t, r.ID, time.Minute, "to run a vzdump", func(run api.Run) bool {
		return run.Ended != nil || hasTask(run, "vzdump", "", false)
	})
	if r.Ended != nil {
		t.Fatalf("the run ended (%s: %s) before a vzdump was in flight", r.Status, r.Error)
	}
	a.kill9(t)

	a.args = nil
	a.env = append(a.env, host.env()...)
	a.restart(t)
	r = a.waitRun(t, r.ID, time.Minute, "to end", finished)
	want := "made against the simulator; this agent talks to " + strings.TrimSuffix(host.Endpoint, "/") + " node " + host.Node + ": not resumed and not undone"
	if r.Status != "failed" || r.ErrorKind != "interrupted" || !strings.Contains(r.Error, want) || r.Resumes != 0 {
		t.Fatalf("run after kill -9 and a restart on a host: %s (%s) %q, %d resumes; want failed, interrupted, saying %q", r.Status, r.ErrorKind, r.Error, r.Resumes, want)
	}
	for _, tk := range r.Tasks {
		if tk.Ended == nil {
			t.Errorf("task %s is still open; want it recorded as not followed", tk.UPID)
		}
	}
	if tasks := host.tasks(t, "", 0); len(tasks) != 0 {
		t.Errorf("the host ran %d tasks (%+v); want none of the simulator's run", len(tasks), tasks)
	}
	res := runCmd(t, time.Minute, nil, "runs", "resume", r.ID, "--socket", a.socket)
	if res.Code == 0 || !strings.Contains(res.Stdout+res.Stderr, "failed") {
		t.Errorf("runs resume of the failed run: exit %d\n%s%s; want it refused", res.Code, res.Stdout, res.Stderr)
	}
	if tasks := host.tasks(t, "", 0); len(tasks) != 0 {
		t.Errorf("after runs resume the host ran %d tasks; want none", len(tasks))
	}
}
