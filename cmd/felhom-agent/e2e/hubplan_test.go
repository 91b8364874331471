package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHubPlanJobs drives serve against hub-sim and a simulator that counts
// its requests: the hub queues a plan job (unsigned) for the shipped
// backup.star → the next report carries the plan with its vzdump and the
// pruned archive's deletion; the simulator received no mutating request
// and ran no task; the job is cleared. A plan job for an unknown trigger
// and one with a refused parameter are refused, cleared and reported with
// the reason. A plan job whose DELETE is lost is fetched again and planned
// once. No run is ever recorded.
func TestHubPlanJobs(t *testing.T) {
	requireServe(t)
	const host, key = "e2e-plan", "e2e-hub-plan-key-0123456789"
	addSecret("hub api key", key)
	hub := startHubSim(t, "--host", host+"="+key, "--poll", "1")
	sim, srv, _ := inProcSim(t, 50*time.Millisecond, 0, 0)
	dir := servePlaybooks(t)
	src, err := os.ReadFile(filepath.Join(playbooksDir, "backup.star"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backup.star"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, agentOpts{playbooks: dir, args: []string{"--hub-poll-floor", "1s"},
		env: serverEnv(srv, "FELHOM_AGENT_HUB_URL="+hub.URL, "FELHOM_AGENT_HUB_HOST_ID="+host, "FELHOM_AGENT_HUB_API_KEY="+key,
			"FELHOM_AGENT_HUB_FINGERPRINT="+hub.Fingerprint)})
	eventually(t, 30*time.Second, "a first report", func() (bool, string) {
		n := len(hub.reports(t, host))
		return n > 0, fmt.Sprint(n, " reports")
	})
	mutating, archives := sim.MutatingRequests(), len(sim.Volumes("usb-backup"))

	enqueue := func(trigger string, params map[string]any) string {
		status, out := hub.admin(t, "POST", "/sim/hosts/"+host+"/plan-jobs", map[string]any{"trigger": trigger, "params": params})
		var r struct {
			ID string `json:"job_id"`
		}
		if status != 201 || json.Unmarshal(out, &r) != nil {
			t.Fatalf("enqueue a plan job: %d %s", status, out)
		}
		return r.ID
	}
	type step struct{ What, Method, Outcome string }
	type hubPlan struct {
		JobID    string         `json:"job_id"`
		TookMS   int64          `json:"took_ms"`
		Trigger  string         `json:"trigger"`
		Playbook string         `json:"playbook"`
		Params   map[string]any `json:"params"`
		Status   string         `json:"status"`
		Steps    []step         `json:"steps"`
		Changes  []string       `json:"changes"`
		Error    string         `json:"error"`
	}
	plans := func() map[string][]hubPlan {
		_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/plans", nil)
		var ps []hubPlan
		if err := json.Unmarshal(b, &ps); err != nil {
			t.Fatalf("plans: %v: %s", err, b)
		}
		m := map[string][]hubPlan{}
		for _, p := range ps {
			m[p.JobID] = append(m[p.JobID], p)
		}
		return m
	}
	type outcome struct{ Kind, Outcome, Reason string }
	outcomes := func() map[string][]outcome {
		_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/reports", nil)
		var reps []struct {
			Body struct {
				Jobs []struct {
					JobID                 string `json:"job_id"`
					Kind, Outcome, Reason string
				} `json:"jobs"`
			} `json:"body"`
		}
		if err := json.Unmarshal(b, &reps); err != nil {
			t.Fatalf("reports: %v", err)
		}
		m := map[string][]outcome{}
		for _, r := range reps {
			for _, j := range r.Body.Jobs {
				m[j.JobID] = append(m[j.JobID], outcome{j.Kind, j.Outcome, j.Reason})
			}
		}
		return m
	}
	cleared := func(id string) bool {
		_, b := hub.admin(t, "GET", "/sim/hosts/"+host+"/jobs/cleared", nil)
		return strings.Contains(string(b), `"`+id+`"`)
	}

	// The plan of a backup of guest 101 keeping one archive.
	id := enqueue("backup", map[string]any{"vmids": []int{101}, "keep_last": 1})
	var p hubPlan
	eventually(t, 30*time.Second, "the plan in a report", func() (bool, string) {
		ps := plans()[id]
		if len(ps) == 0 {
			return false, "no plan yet"
		}
		p = ps[0]
		return true, ""
	})
	if p.Trigger != "backup" || p.Playbook != "backup" || p.Status != "succeeded" || len(p.Steps) != 2 ||
		p.Steps[0].What != "vzdump 101 → usb-backup (snapshot, zstd)" || p.Steps[0].Outcome != "OK" ||
		p.Steps[1].What != "delete usb-backup:backup/vzdump-lxc-101-2026_11_19-03_00_01.tar.zst" {
		t.Errorf("plan = %+v\nwant the vzdump of 101 and the old archive's deletion, succeeded", p)
	}
	if !strings.Contains(strings.Join(p.Changes, "\n"), "+ usb-backup:backup/vzdump-lxc-101-") || fmt.Sprint(p.Params["vmids"]) != "[101]" {
		t.Errorf("plan changes %v, params %v; want the new archive and the coerced params", p.Changes, p.Params)
	}
	if n := sim.MutatingRequests() - mutating; n != 0 {
		t.Errorf("the simulator received %d mutating requests during the plan; want 0", n)
	}
	record(t, "plan job of backup.star: time to plan (mirror + run), mutating requests", "%d ms, %d", p.TookMS, sim.MutatingRequests()-mutating)
	if n := len(sim.Volumes("usb-backup")); n != archives || len(sim.Tasks()) != 0 {
		t.Errorf("the host changed: %d archives (was %d), %d tasks", n, archives, len(sim.Tasks()))
	}
	eventually(t, 20*time.Second, "the plan job cleared and its outcome reported", func() (bool, string) {
		o := outcomes()[id]
		return cleared(id) && len(o) == 1 && o[0] == outcome{"plan", "planned", ""}, fmt.Sprintf("%+v", o)
	})

	// Refused: an unknown trigger, a parameter refused.
	refused := map[string]string{
		enqueue("nope", nil):                              `trigger: no playbook answers "nope"`,
		enqueue("backup", map[string]any{"vmids": "all"}): `playbook backup: parameter "vmids" must be`,
	}
	for rid, want := range refused {
		eventually(t, 30*time.Second, "the refused plan job "+rid, func() (bool, string) {
			o := outcomes()[rid]
			return cleared(rid) && len(o) == 1, fmt.Sprintf("%+v", o)
		})
		if o := outcomes()[rid][0]; o.Kind != "plan" || o.Outcome != "refused" || !strings.Contains(o.Reason, want) {
			t.Errorf("plan job %s: %+v; want refused: %q", rid, o, want)
		}
		if ps := plans()[rid]; len(ps) != 0 {
			t.Errorf("a refused plan job has plans %+v", ps)
		}
	}

	// Its DELETE lost, a plan job is fetched again: planned once.
	if status, b := hub.admin(t, "PUT", "/sim/faults", map[string]any{"fail_clear": 1}); status != 204 {
		t.Fatalf("PUT faults: %d %s", status, b)
	}
	twice := enqueue("backup", map[string]any{"vmids": []int{101}})
	eventually(t, 30*time.Second, "the plan job cleared on its second fetch", func() (bool, string) {
		return cleared(twice), "not cleared"
	})
	time.Sleep(2 * time.Second) // a report or two more
	if ps, o := plans()[twice], outcomes()[twice]; len(ps) != 1 || len(o) != 1 || o[0].Outcome != "planned" {
		t.Errorf("a plan job fetched twice: %d plans, outcomes %+v; want planned once, reported once", len(ps), o)
	}
	if m := a.metrics(t); !strings.Contains(m, `felhom_hub_jobs_total{outcome="planned"} 2`) || !strings.Contains(m, `felhom_hub_jobs_total{outcome="refused"} 2`) {
		t.Errorf("/metrics: want 2 planned and 2 refused jobs:\n%s", grepLines(m, "felhom_hub_jobs_total"))
	}
	if n := sim.MutatingRequests() - mutating; n != 0 {
		t.Errorf("the simulator received %d mutating requests from the plans; want 0", n)
	}
	if r := runCmd(t, runTimeout, nil, "runs", "list", "--json", "--socket", a.socket); r.Code != 0 || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("runs after the plans: exit %d %s; want none", r.Code, r.Stdout)
	}
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimRight(l, "\n"))
		}
	}
	return strings.Join(out, "\n")
}
