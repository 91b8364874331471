package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Faults survived: a `felhom-agent sim` process with injected faults, and
// `felhom-agent run` against it, configured through FELHOM_AGENT_* and
// pinned to the sim's certificate. The sim's task list (GET
// /nodes/{node}/tasks) is the count of mutations it carried out.

// TestFaultReadsRetried: 5xx answers and dropped connections on reads
// during a flow are retried; the flow completes. A 5xx that carries a PVE
// error message is an answer, not a transient failure, and is not retried.
func TestFaultReadsRetried(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		faults      []string
		file        string
		args        []string
		wantStatus  string
		minRetries  int
		wantError   string // substring of the summary's error
		wantVzdumps int    // vzdump tasks of guest 101 the sim ran
	}{
		{
			name:       "503 on node status",
			faults:     []string{"503:GET:/nodes/*/status:count=3"},
			file:       "selftest.star",
			wantStatus: "succeeded", minRetries: 3,
		},
		{
			// Go's transport silently retries one dropped answer on a
			// reused connection; three drops reach the client.
			name:       "dropped connections on the guest list",
			faults:     []string{"drop:GET:/nodes/*/lxc:count=3"},
			file:       "selftest.star",
			wantStatus: "succeeded", minRetries: 1,
		},
		{
			name: "5xx and drops across a backup",
			faults: []string{
				"502:GET:/nodes/*/storage:count=2",
				"drop:GET:/nodes/*/storage/*/content:count=3",
				"503:GET:/nodes/*/lxc:count=1",
			},
			file: "backup.star", args: params("vmids=101"),
			wantStatus: "succeeded", minRetries: 3, wantVzdumps: 1,
		},
		{
			name:       "500 with a PVE message is not retried",
			faults:     []string{"500:GET:/nodes/*/status:count=1:node status unavailable"},
			file:       "selftest.star",
			wantStatus: "failed", wantError: "node status unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var simArgs []string
			for _, f := range tt.faults {
				simArgs = append(simArgs, "--fault", f)
			}
			sim := startSim(t, append(simArgs, "--task-duration", "100ms")...)
			out := shipped(t, sim, tt.file, tt.args...)
			s := out.mustSummary(t)
			if s.Status != tt.wantStatus {
				t.Fatalf("status = %s (%s); want %s", s.Status, s.Error, tt.wantStatus)
			}
			if wantCode := map[string]int{"succeeded": 0, "failed": 1}[tt.wantStatus]; out.Code != wantCode {
				t.Errorf("exit code = %d; want %d", out.Code, wantCode)
			}
			if s.Retries < tt.minRetries {
				t.Errorf("api_retries = %d; want at least %d", s.Retries, tt.minRetries)
			}
			if tt.minRetries == 0 && s.Retries != 0 {
				t.Errorf("api_retries = %d; want 0 (an answer with a message is final)", s.Retries)
			}
			if tt.wantError != "" && !strings.Contains(s.Error, tt.wantError) {
				t.Errorf("error = %q; want it to contain %q", s.Error, tt.wantError)
			}
			if tt.wantVzdumps > 0 {
				if n := len(sim.tasks(t, "vzdump", 101)); n != tt.wantVzdumps {
					t.Errorf("the sim ran %d vzdump tasks of 101; want %d", n, tt.wantVzdumps)
				}
			}
			record(t, "faults injected / API requests / retries", "%d / %d / %d", len(tt.faults), s.Requests, s.Retries)
		})
	}
}

// TestFaultDropWhileWaiting: connections dropped while a task is waited for
// make the wait resume, never the task start again. A dropped answer to the
// mutating POST itself is ambiguous: the run fails saying so, and the sim
// shows the mutation happened exactly once.
func TestFaultDropWhileWaiting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fault      string
		wantStatus string
		wantError  string
		minRetries int
	}{
		{"drops while polling the task", "drop:GET:/nodes/*/tasks/*/status:count=4", "succeeded", "", 1},
		{"drop of the vzdump POST's answer", "drop:POST:/nodes/*/vzdump:count=1:after", "failed", "outcome unknown", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, "--task-duration", "600ms", "--fault", tt.fault)
			out := shipped(t, sim, "backup.star", params("vmids=101")...)
			s := out.mustSummary(t)
			if s.Status != tt.wantStatus || !strings.Contains(s.Error, tt.wantError) {
				t.Fatalf("status, error = %s, %q; want %s with %q", s.Status, s.Error, tt.wantStatus, tt.wantError)
			}
			if s.Retries < tt.minRetries {
				t.Errorf("api_retries = %d; want at least %d", s.Retries, tt.minRetries)
			}
			sim.waitTasksDone(t, runTimeout)
			simTasks := sim.tasks(t, "vzdump", 101)
			if len(simTasks) != 1 {
				t.Errorf("the sim ran %d vzdump tasks of 101; want exactly 1 (never started twice)", len(simTasks))
			}
			if tt.wantStatus == "succeeded" {
				if got := tasksOf(s.Tasks, "vzdump", "101"); len(got) != 1 || got[0] != simTasks[0].UPID {
					t.Errorf("run recorded vzdump tasks %v; want exactly the sim's %s", got, simTasks[0].UPID)
				}
			}
			record(t, "vzdump tasks started (sim) / retries / task waiting", "%d / %d / %s", len(simTasks), s.Retries, s.TaskWaiting)
		})
	}
}

// TestFaultTaskFailsMidBackup: one guest's vzdump fails; the others are
// backed up; the run fails with a summary naming the guest and the reason.
func TestFaultTaskFailsMidBackup(t *testing.T) {
	t.Parallel()
	const failing, reason = 102, "disk on fire"
	sim := startSim(t, "--task-duration", "100ms", "--fault", "taskfail:vzdump:102:"+reason)
	targets := backupTargets(t, sim)
	if !slices.Contains(targets, failing) || len(targets) < 3 {
		t.Fatalf("default world guests to back up = %v; want 102 among at least 3", targets)
	}

	out := shipped(t, sim, "backup.star")
	s := out.mustSummary(t)
	if s.Status != "failed" || out.Code != 1 {
		t.Fatalf("status %s, exit %d; want failed, 1", s.Status, out.Code)
	}
	for _, want := range []string{"1 of", "guest 102", reason} {
		if !strings.Contains(s.Error, want) {
			t.Errorf("error %q does not name %q", s.Error, want)
		}
	}
	ok, failed := 0, 0
	for _, vmid := range targets {
		tasks := sim.tasks(t, "vzdump", vmid)
		if len(tasks) != 1 {
			t.Errorf("guest %d: the sim ran %d vzdump tasks; want 1", vmid, len(tasks))
			continue
		}
		switch {
		case vmid == failing && strings.Contains(tasks[0].Status, reason):
			failed++
		case vmid != failing && tasks[0].Status == "OK":
			ok++
		default:
			t.Errorf("guest %d: vzdump ended %q", vmid, tasks[0].Status)
		}
	}
	if ok != len(targets)-1 || failed != 1 {
		t.Errorf("%d backed up, %d failed; want %d and 1", ok, failed, len(targets)-1)
	}
	record(t, "guests backed up / failed (the failure named)", "%d / %d", ok, failed)
}

// backupTargets lists the guests the backup playbook backs up by default:
// every guest but templates.
func backupTargets(t testing.TB, sim *simProc) []int {
	t.Helper()
	code, data := sim.api(t, http.MethodGet, "/nodes/"+sim.Node+"/lxc", nil)
	if code != http.StatusOK {
		t.Fatalf("list guests: HTTP %d", code)
	}
	var guests []struct {
		VMID     json.Number `json:"vmid"`
		Template int         `json:"template"`
	}
	if err := json.Unmarshal(data, &guests); err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, g := range guests {
		n, _ := g.VMID.Int64()
		if g.Template == 0 {
			out = append(out, int(n))
		}
	}
	slices.Sort(out)
	return out
}

// TestFaultGuestLocked: a guest held by another client's long task (a
// vzdump started straight through the API) refuses a config change with
// PVE's lock message; the self-test's config flow fails with it, as its
// policy (fail, do not wait) says.
func TestFaultGuestLocked(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "--task-duration", "1m")
	code, upid := sim.api(t, http.MethodPost, "/nodes/"+sim.Node+"/vzdump",
		url.Values{"vmid": {"101"}, "storage": {"usb-backup"}, "mode": {"snapshot"}})
	if code != http.StatusOK || len(upid) == 0 {
		t.Fatalf("start the conflicting vzdump: HTTP %d %s", code, upid)
	}

	out := shipped(t, sim, "selftest.star", params("mode=config", "vmid=101")...)
	s := out.mustSummary(t)
	if s.Status != "failed" || out.Code != 1 {
		t.Fatalf("status %s, exit %d; want failed, 1", s.Status, out.Code)
	}
	const lockMsg = "CT is locked (backup)"
	if !strings.Contains(s.Error, lockMsg) {
		t.Errorf("error %q lacks PVE's lock message %q", s.Error, lockMsg)
	}
	if n := len(sim.tasks(t, "vzdump", 101)); n != 1 {
		t.Errorf("the sim ran %d vzdump tasks; want only the conflicting one", n)
	}
	record(t, "lock refusal reported", "%q (kind %q)", lockMsg, s.Kind)
}

// TestFaultDeniedAtTaskTime: a privilege missing at task time (the POST is
// accepted, the worker refuses) fails the run with an error naming the
// privilege, and the flow leaves nothing half-done.
func TestFaultDeniedAtTaskTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		privilege string
		file      string
		args      []string
	}{
		{"backup without VM.Backup", "VM.Backup", "backup.star", params("vmids=101")},
		{"self-test rollback without VM.Snapshot.Rollback", "VM.Snapshot.Rollback", "selftest.star", params("mode=task", "vmid=101")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, "--task-duration", "100ms", "--fault", "deny:/vms/101:"+tt.privilege)
			archivesBefore := sim.backups(t, "usb-backup")
			snapsBefore := sim.snapshots(t, 101)

			out := shipped(t, sim, tt.file, tt.args...)
			s := out.mustSummary(t)
			if s.Status != "failed" || out.Code != 1 {
				t.Fatalf("status %s, exit %d; want failed, 1", s.Status, out.Code)
			}
			if !strings.Contains(s.Error, tt.privilege) {
				t.Errorf("error %q does not name the privilege %s", s.Error, tt.privilege)
			}
			sim.waitTasksDone(t, runTimeout)
			if after := sim.backups(t, "usb-backup"); !slices.Equal(volids(after), volids(archivesBefore)) {
				t.Errorf("archives changed: %v -> %v", volids(archivesBefore), volids(after))
			}
			if after := sim.snapshots(t, 101); !slices.Equal(after, snapsBefore) {
				t.Errorf("snapshots of 101 changed: %v -> %v (left half-done)", snapsBefore, after)
			}
			record(t, "privilege named / tasks started", "%s / %d", tt.privilege, len(s.Tasks))
		})
	}
}

func volids(vs []pveVolume) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.VolID
	}
	slices.Sort(out)
	return out
}
