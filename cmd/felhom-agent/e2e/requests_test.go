package e2e

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// TestRunCountsEveryRequest: `run`'s recap counts every request the host
// receives, the start-up check included, and each task of the self-test's
// task flow (snapshot, rollback, delete, start; instant tasks) costs two
// requests — its POST and one status read — plus the one preflight
// (issue #17). The playbook's own reads (status and snapshot list before
// and after) are the flow's checks and are counted apart.
func TestRunCountsEveryRequest(t *testing.T) {
	t.Parallel()
	sim, srv, _ := inProcSim(t, -1, 0, 0) // instant tasks: they stop at their first observation
	before := sim.Requests()
	r := runPlaybook(t, serverEnv(srv, "FELHOM_AGENT_LOG_LEVEL=debug"), playbooksDir, "selftest.star", params("mode=task", "vmid=101")...)
	s := r.mustSummary(t)
	got := sim.Requests() - before
	if r.Code != 0 || s.Status != "succeeded" {
		t.Fatalf("selftest task: exit %d, %s (%s)", r.Code, s.Status, s.Error)
	}
	if s.Requests != got {
		t.Errorf("the recap reports %d API requests; the simulator received %d", s.Requests, got)
	}
	var preflight, mutations, taskReads, reads int
	sc := bufio.NewScanner(strings.NewReader(r.Stderr))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct{ Msg, Method, Path string }
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "proxmox api request" {
			continue
		}
		switch {
		case l.Path == "/nodes/"+srv.Node+"/version": // the start-up check
			preflight++
		case l.Method != "GET":
			mutations++
		case strings.Contains(l.Path, "/tasks/UPID:") && strings.HasSuffix(l.Path, "/status"):
			taskReads++
		default:
			reads++
		}
	}
	tasks := len(s.Tasks)
	if preflight != 1 || mutations != tasks || taskReads > tasks || preflight+mutations+taskReads+reads != got {
		t.Errorf("selftest task: %d requests = %d preflight + %d mutations + %d task status reads + %d playbook reads, for %d tasks; want 1 preflight and at most 2 requests per task",
			got, preflight, mutations, taskReads, reads, tasks)
	}
	record(t, "selftest task flow (instant tasks): requests = preflight + per task (POST + status) + playbook reads", "%d = %d + %d×2 + %d", got, preflight, tasks, reads)
}
