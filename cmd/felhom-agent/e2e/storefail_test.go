package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	agentpkg "gitea.dooplex.hu/admin/felhom-agent/runtime/agent"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
)

// The store fails closed (issue 12): with the disk full, a run stops
// before a mutation it cannot record, /healthz says the store cannot
// write, triggers are refused with 503 and nothing is accepted; when space
// comes back the agent takes triggers again by itself and the stopped
// run's end is recorded. At start, an empty or damaged store is refused
// with its path and what to do, and left as it is.

// smallFS mounts a tmpfs of size bytes and returns its directory, or skips
// the test saying why it cannot (not root, no mount).
func smallFS(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "a full file system needs root to mount a small tmpfs (euid %d)", os.Geteuid())
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		skip(t, "mount a %d-byte tmpfs: %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes path until the file system is full and returns how much it
// wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("filling %s: %v", path, err)
		}
	}
}

// health decodes /healthz.
func (a *agent) health(t testing.TB) (int, agentpkg.Health) {
	t.Helper()
	code, body := a.healthz(t)
	var h agentpkg.Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthz body %q: %v", body, err)
	}
	return code, h
}

func TestStoreDiskFull(t *testing.T) {
	t.Parallel()
	requireServe(t)
	mnt := smallFS(t, 4<<20)
	sim := startSim(t, "--task-duration", "1500ms")
	a := startAgent(t, agentOpts{env: sim.env(), playbooks: filepath.Join(mustAbs(t, "testdata"), "store"),
		stateDir: filepath.Join(mnt, "state")})

	code, ans := a.trigger(t, "full-1", "three", map[string]any{"vmid": 101})
	if code != http.StatusAccepted || len(ans.Runs) != 1 {
		t.Fatalf("trigger: HTTP %d %+v", code, ans)
	}
	id := ans.Runs[0].ID
	a.waitRun(t, id, 30*time.Second, "to record its first task", func(r api.Run) bool { return len(r.Tasks) >= 1 })
	filled := fill(t, filepath.Join(mnt, "filler"))
	t.Logf("file system full after %d more bytes", filled)

	// The run comes to its second mutation within a task's duration; it
	// must stop there instead of sending what it cannot record.
	eventually(t, 30*time.Second, "the run to stop at the full store, or to send all its mutations", func() (bool, string) {
		stoppedLine := stoppedAtStore(a.proc.stderr.String())
		n := len(sim.tasks(t, "vzsnapshot", 101))
		return stoppedLine || n == 3, fmt.Sprintf("%d snapshot tasks sent", n)
	})
	sim.waitTasksDone(t, 30*time.Second)
	simTasks := sim.tasks(t, "vzsnapshot", 101)
	run := a.run(t, id)
	if len(simTasks) != len(run.Tasks) {
		t.Errorf("the simulator ran %d snapshot tasks, the store holds %d: a mutation was sent that the record does not hold",
			len(simTasks), len(run.Tasks))
	}
	if len(simTasks) >= 3 {
		t.Errorf("the run sent all %d mutations on a full store; want it stopped before the next one", len(simTasks))
	}

	hcode, h := a.health(t)
	if hcode != http.StatusServiceUnavailable || h.Store.OK || !strings.Contains(h.Store.Error, "full") {
		t.Errorf("/healthz on a full store = %d %+v; want 503 with store.ok false saying full", hcode, h.Store)
	}
	if v := metricValue(t, a.metrics(t), "felhom_store_up"); v != 0 {
		t.Errorf("felhom_store_up = %v on a full store; want 0", v)
	}
	before := len(a.runs(t))
	code, ans = a.trigger(t, "full-2", "three", map[string]any{"vmid": 102})
	if code != http.StatusServiceUnavailable || !strings.Contains(ans.Error, "run store cannot write") {
		t.Errorf("trigger on a full store: HTTP %d %q; want 503 saying the run store cannot write", code, ans.Error)
	}
	if after := len(a.runs(t)); after != before {
		t.Errorf("%d runs before the refused trigger, %d after: something was recorded", before, after)
	}
	lcode, lbody := a.local(t, "POST", "/v1/runs", []byte(`{"playbook":"three","params":{"vmid":102}}`))
	if lcode != http.StatusServiceUnavailable {
		t.Errorf("local API start on a full store: HTTP %d %s; want 503", lcode, lbody)
	}

	// Space comes back: the store probe sees it, triggers are taken, and
	// the stopped run's end is recorded.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "/healthz to report the store writable", func() (bool, string) {
		_, h := a.health(t)
		return h.Store.OK, fmt.Sprintf("%+v", h.Store)
	})
	stopped := a.waitRun(t, id, 30*time.Second, "to have its end recorded", finished)
	if !stoppedForRecord(stopped) {
		t.Errorf("the stopped run is recorded %s %q; want it stopped saying its record could not be written", stopped.Status, stopped.Error)
	}
	code, ans = a.trigger(t, "full-2", "three", map[string]any{"vmid": 102})
	if code != http.StatusAccepted || len(ans.Runs) != 1 {
		t.Fatalf("the retried trigger after space came back: HTTP %d %+v; want 202", code, ans)
	}
	if r := a.waitRun(t, ans.Runs[0].ID, 60*time.Second, "to finish", finished); r.Status != "succeeded" || len(r.Tasks) != 3 {
		t.Errorf("the run after recovery: %s with %d tasks (%s); want succeeded with 3", r.Status, len(r.Tasks), r.Error)
	}
	record(t, "disk full mid-run (3 snapshots): tasks sent / recorded; trigger while full; after space returns",
		"%d / %d; HTTP 503, nothing recorded; store writable again, stopped run recorded %s, retried trigger %d",
		len(simTasks), len(run.Tasks), stopped.Status, code)
}

// Two gates stop a run whose record cannot be written, both before the
// change: the run journal's, which writes a builtin call's intent first
// (the run fails: "not done: recording its intent"), and, for a call the
// journal let through, the mutation gate's (the run is cancelled: "could
// not record").

// stoppedAtStore reports whether the agent's log shows a run stopped at
// the full store by either gate.
func stoppedAtStore(log string) bool {
	return strings.Contains(log, "stopping the run before its next mutation") || strings.Contains(log, "recording its intent")
}

// stoppedForRecord reports whether r is recorded as stopped by either gate.
func stoppedForRecord(r api.Run) bool {
	return r.Status == "cancelled" && strings.Contains(r.Error, "could not record") ||
		r.Status == "failed" && strings.Contains(r.Error, "recording its intent")
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// TestStoreDamagedRefused: an empty (0-byte) or corrupted run store is
// refused at start, with its path and what to do, and never replaced.
func TestStoreDamagedRefused(t *testing.T) {
	t.Parallel()
	requireServe(t)
	sim := startSim(t)

	// A real store with records, to corrupt.
	a := startAgent(t, agentOpts{env: sim.env()})
	for i := range 40 {
		a.startRun(t, "selftest", nil)
		_ = i
	}
	if code := a.stop(t); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	good, err := os.ReadFile(filepath.Join(a.stateDir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		data func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"corrupted", func() []byte {
			b := append([]byte(nil), good...)
			const page = 4096
			if len(b) < 8*page {
				t.Fatalf("store is %d bytes; want at least 8 pages", len(b))
			}
			for i := 3 * page; i < 6*page; i++ {
				b[i] = 0xA5
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "runs.db")
			data := tc.data()
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, 30*time.Second, sim.env(), "--playbooks", servePlaybooks(t), "serve",
				"--listen", freeAddr(t), "--socket", filepath.Join(dir, "a.sock"), "--state-dir", dir)
			if r.Code != 2 {
				t.Errorf("serve on a %s store exited %d; want 2", tc.name, r.Code)
			}
			for _, want := range []string{path, "state import", "mv " + path} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("serve's refusal does not say %q:\n%s", want, tail(r.Stderr, 2000))
				}
			}
			after, err := os.ReadFile(path)
			if err != nil || string(after) != string(data) {
				t.Errorf("the refused store was changed (%d bytes before, %d after, %v)", len(data), len(after), err)
			}
			record(t, "serve on a "+tc.name+" run store", "refused (exit %d), path and remedy named, file unchanged", r.Code)
		})
	}
}

// TestStoreDiskFullRootOp: a fenced root command that changes the host
// (`pct create`) is gated on the store like an API mutation: with the
// disk full, the run stops before it and the command is never attempted.
// The production exec runner is used (privileged enabled, no sudo) and
// /usr/sbin/pct is absent here, so an attempted exec shows in the run's
// error as that path; a gated one never names it.
func TestStoreDiskFullRootOp(t *testing.T) {
	t.Parallel()
	requireServe(t)
	if _, err := os.Stat("/usr/sbin/pct"); err == nil {
		skip(t, "/usr/sbin/pct exists on this machine: the suite never runs real root tools")
	}
	mnt := smallFS(t, 4<<20)
	sim := startSim(t, "--task-duration", "1500ms")
	a := startAgent(t, agentOpts{
		env:       append(sim.env(), "FELHOM_AGENT_PRIVILEGED_ENABLED=true", "FELHOM_AGENT_PRIVILEGED_SUDO=false"),
		playbooks: filepath.Join(mustAbs(t, "testdata"), "store"),
		stateDir:  filepath.Join(mnt, "state"),
	})

	code, ans := a.trigger(t, "root-1", "rootop", map[string]any{"vmid": 101})
	if code != http.StatusAccepted || len(ans.Runs) != 1 {
		t.Fatalf("trigger: HTTP %d %+v", code, ans)
	}
	id := ans.Runs[0].ID
	a.waitRun(t, id, 30*time.Second, "to record its snapshot task", func(r api.Run) bool { return len(r.Tasks) >= 1 })
	fill(t, filepath.Join(mnt, "filler"))

	// The snapshot ends within its 1.5 s; then comes pct create.
	eventually(t, 30*time.Second, "the run to stop at the full store, or to attempt pct", func() (bool, string) {
		log := a.proc.stderr.String()
		return stoppedAtStore(log) || strings.Contains(log, "/usr/sbin/pct"), "neither yet; the agent logged: " + tail(log, 1500)
	})
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	r := a.waitRun(t, id, 60*time.Second, "to have its end recorded", finished)
	attempted := strings.Contains(a.proc.stderr.String(), "/usr/sbin/pct") || strings.Contains(r.Error, "/usr/sbin/pct")
	if attempted {
		t.Errorf("pct create was attempted on a full store (run %s: %q); want the run stopped before it", r.Status, r.Error)
	}
	if !stoppedForRecord(r) {
		t.Errorf("the run is recorded %s %q; want it stopped saying its record could not be written", r.Status, r.Error)
	}
	record(t, "disk full before a fenced root command (pct create)", "run %s; pct attempted: %v", r.Status, attempted)
}
