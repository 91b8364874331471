package main

import (
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// recap counts what one run asked of Proxmox, for the summary printed at
// its end (the operator's equivalent of Ansible's recap). It is a
// proxmox.Observer attached to the run's context.
type recap struct {
	mu       sync.Mutex
	requests int
	retries  int
	tasks    []string
	waited   time.Duration
}

var _ proxmox.Observer = (*recap)(nil)

func (r *recap) Request(info proxmox.RequestInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if info.Attempt > 1 {
		r.retries++
	}
}

func (r *recap) TaskStarted(upid proxmox.UPID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tasks = append(r.tasks, upid.String())
}

func (r *recap) TaskWaited(_ proxmox.UPID, took time.Duration, _ proxmox.TaskStatus, _ error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited += took
}

// summary is the run's recap as the --json output and the human summary
// show it. Its keys are fixed; durations are seconds as numbers.
type summary struct {
	Run       string  `json:"run"`
	Playbook  string  `json:"playbook"`
	Version   string  `json:"version"`
	Status    string  `json:"status"`
	Kind      string  `json:"kind,omitempty"`
	Error     string  `json:"error,omitempty"`
	Backtrace string  `json:"backtrace,omitempty"`
	Duration  float64 `json:"duration_seconds"`
	Result    any     `json:"result"`
	// Requests and Retries are null for a run through the agent, which
	// counts requests for all its runs together.
	Requests    *int     `json:"api_requests"`
	Retries     *int     `json:"api_retries"`
	Tasks       []string `json:"tasks"`
	TaskWaiting float64  `json:"task_waiting_seconds"`
	// Agent is the socket of the serving agent the run went through;
	// absent for a run in this process.
	Agent string `json:"agent,omitempty"`
}

func (r *recap) fill(s *summary) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req, ret := r.requests, r.retries
	s.Requests, s.Retries = &req, &ret
	s.Tasks = append([]string{}, r.tasks...)
	s.TaskWaiting = r.waited.Seconds()
}
