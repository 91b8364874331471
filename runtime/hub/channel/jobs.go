package channel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// Limits of the jobs list: the answer, one job's blob and signature, and
// how many jobs one fetch takes (the rest come with the next report).
const (
	MaxJobsBytes    = 1 << 20
	MaxJobBlobBytes = 64 << 10
	MaxJobSigBytes  = 16 << 10
	MaxJobsPerFetch = 100
)

// maxJobRecords bounds the job outcomes the State remembers (so that a
// job the hub sends again after it was cleared is cleared again, not
// handled twice); unreported outcomes are never dropped.
const maxJobRecords = 256

// maxReportJobs bounds the job outcomes of one report; the rest wait.
const maxReportJobs = 100

// Job is one job as the hub queues it: opaque bytes the hub can neither
// forge nor open — an operator-signed operation, or (Kind JobKindPlan) a
// plan request, which needs no signature (plans.go). Err is set when the
// job's id is usable but its blob or signature is not (not base64, too
// large): such a job is refused and cleared without being looked at
// further.
type Job struct {
	ID   string
	Kind string // "" for a signed job, JobKindPlan for a plan job
	Blob []byte // op_blob_b64, decoded: the canonical op JSON that was signed
	Sig  []byte // sig_armored: the armoured SSHSIG signature
	Err  error
}

// Job outcomes.
const (
	JobAccepted = "accepted" // verified; Run carries it out (or Rotated)
	JobRefused  = "refused"  // refused for good; Reason says why; nothing ran
	// JobWaiting is not an outcome: the job cannot be decided yet (it is
	// not valid yet, its playbook's queue is full) and stays queued at the
	// hub, not cleared, its nonce unused; each report while it waits says
	// so, with Reason, and it is tried again at every fetch until it is
	// accepted, or refused (expired).
	JobWaiting = "waiting"
	// JobPlanned (plans.go): a plan job's plan was made.
)

// JobOutcome is what became of a job, as the host report carries it.
type JobOutcome struct {
	JobID   string `json:"job_id"`
	Kind    string `json:"kind,omitempty"` // JobKindPlan for a plan job
	Outcome string `json:"outcome"`
	// Run is the run that carries it out (a new run, or the parked run it
	// let go on); RunStatus its status when the job was accepted. The
	// run's end is in a later report's runs, with source "job" and key
	// the job id.
	Run       string `json:"run,omitempty"`
	RunStatus string `json:"run_status,omitempty"`
	Resumed   bool   `json:"resumed,omitempty"`
	Pending   string `json:"pending,omitempty"` // the pending operation it approved
	Signer    string `json:"signer,omitempty"`  // the operator key's fingerprint
	// Reason is why it was refused.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// JobRecord is a job outcome as the State keeps it.
type JobRecord struct {
	Outcome  JobOutcome `json:"outcome"`
	Reported bool       `json:"reported,omitempty"` // a report the hub accepted carried it
	Cleared  bool       `json:"cleared,omitempty"`  // the hub answered the DELETE
}

// JobHandler verifies and carries out one job. It returns the job's
// final outcome (accepted, or refused for good), JobWaiting with the
// reason when the job cannot be decided yet, or an error when the job
// could not be decided now (the nonce record failed, the agent is
// stopping): either way the job then stays queued at the hub and is tried
// again after the next report.
type JobHandler func(ctx context.Context, j Job) (JobOutcome, error)

// JobHub is the jobs half of the hub's host API: *Client implements it.
type JobHub interface {
	Jobs(ctx context.Context) ([]Job, error)
	ClearJob(ctx context.Context, id string) error
}

var _ JobHub = (*Client)(nil)

// jobIDPattern is what a job id may be: it goes into a URL path and the
// run store's idempotency key.
var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Jobs fetches this host's queued jobs, at most MaxJobsPerFetch.
func (c *Client) Jobs(ctx context.Context) ([]Job, error) {
	b, err := c.do(ctx, "jobs", http.MethodGet, c.hostPath(JobsPath), nil, MaxJobsBytes)
	if err != nil {
		return nil, err
	}
	return ParseJobs(b)
}

// ClearJob deletes a job from the hub's queue. The hub's DELETE is
// idempotent; a 404 (already gone) counts as cleared.
func (c *Client) ClearJob(ctx context.Context, id string) error {
	if !jobIDPattern.MatchString(id) {
		return fmt.Errorf("hub clear-job: %q is not a job id", clip.Line(id, 40))
	}
	_, err := c.do(ctx, "clear-job", http.MethodDelete, c.hostPath(JobsPath)+"/"+url.PathEscape(id), nil, MaxEnvelopeBytes)
	if he, ok := errors.AsType[*HTTPError](err); ok && he.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// ParseJobs decodes {"jobs": [{job_id, op_blob_b64, sig_armored}]}. The
// answer as a whole is refused when it is not that shape; a job whose id
// is not a job id (a string or a non-negative integer) is refused with
// it, since it could not be cleared; a job whose blob or signature is
// unusable comes back with Err set.
func ParseJobs(b []byte) ([]Job, error) {
	var w struct {
		Jobs []struct {
			ID  json.RawMessage `json:"job_id"`
			Op  *string         `json:"op_blob_b64"`
			Sig *string         `json:"sig_armored"`
		} `json:"jobs"`
	}
	if err := decodeStrict(b, &w, false); err != nil {
		return nil, fmt.Errorf("jobs answer: %w", err)
	}
	if len(w.Jobs) > MaxJobsPerFetch {
		w.Jobs = w.Jobs[:MaxJobsPerFetch]
	}
	out := make([]Job, 0, len(w.Jobs))
	for i, wj := range w.Jobs {
		id, err := jobID(wj.ID)
		if err != nil {
			return nil, fmt.Errorf("jobs answer: jobs[%d].job_id: %w", i, err)
		}
		j := Job{ID: id}
		if wj.Op != nil {
			if blob, ok := isPlanBlob(*wj.Op); ok {
				j.Kind, j.Blob = JobKindPlan, blob // no signature needed (plans.go)
				out = append(out, j)
				continue
			}
		}
		switch {
		case wj.Op == nil || *wj.Op == "":
			j.Err = errors.New("op_blob_b64 is missing")
		case len(*wj.Op) > base64.StdEncoding.EncodedLen(MaxJobBlobBytes):
			j.Err = fmt.Errorf("op_blob_b64 is over %d bytes", MaxJobBlobBytes)
		case wj.Sig == nil || *wj.Sig == "":
			j.Err = errors.New("sig_armored is missing: the job is not signed")
		case len(*wj.Sig) > MaxJobSigBytes:
			j.Err = fmt.Errorf("sig_armored is over %d bytes", MaxJobSigBytes)
		}
		if j.Err == nil {
			if j.Blob, err = base64.StdEncoding.DecodeString(*wj.Op); err != nil {
				j.Err = fmt.Errorf("op_blob_b64 is not base64: %w", err)
			}
			j.Sig = []byte(*wj.Sig)
		}
		out = append(out, j)
	}
	return out, nil
}

// jobID reads a job id: a string of jobIDPattern or a non-negative
// integer (the published design does not fix its type).
func jobID(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "", errors.New("is missing")
	}
	if s[0] == '"' {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", err
		}
		if !jobIDPattern.MatchString(id) {
			return "", fmt.Errorf("%q is not 1 to 128 of letters, digits, '.', '_', ':' and '-'", clip.Line(id, 40))
		}
		return id, nil
	}
	n, err := nonNegInt(raw, 1<<53)
	if err != nil {
		return "", err
	}
	return fmt.Sprint(n), nil
}

// handleJobs fetches the queued jobs and decides each once: a job decided
// before (the hub sent it again) is only cleared again; a new one goes to
// the Jobs handler, its outcome is persisted, then it is cleared. A job
// the handler could not decide stays queued.
func (c *Channel) handleJobs(ctx context.Context) {
	jh, ok := c.Hub.(JobHub)
	if !ok || c.Jobs == nil {
		return
	}
	log := c.logger()
	jobs, err := jh.Jobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("fetching the signed jobs failed; trying again after the next report", "err", err)
			c.note("jobs", err.Error())
		}
		return
	}
	var problems []string
	waiting := map[string]JobOutcome{}
	defer func() {
		c.mu.Lock()
		c.waiting = waiting // the jobs that wait now; the rest are decided or gone
		c.mu.Unlock()
	}()
	plans := 0 // plan jobs decided in this fetch
	for _, j := range jobs {
		if ctx.Err() != nil {
			return
		}
		rec := c.jobRecord(j.ID)
		if rec == nil {
			var out JobOutcome
			var err error
			switch {
			case j.Kind == JobKindPlan && plans >= MaxPlansPerFetch:
				continue // it stays queued for a later fetch: plans are rate-bounded
			case j.Err != nil:
				out = JobOutcome{Outcome: JobRefused, Reason: "malformed job: " + j.Err.Error()}
			case j.Kind == JobKindPlan:
				plans++
				out, err = c.planJob(ctx, j)
			default:
				out, err = c.Jobs(ctx, j)
			}
			if err != nil {
				log.Warn("a job could not be decided; it stays queued", "job", j.ID, "kind", j.Kind, "err", err)
				problems = append(problems, "job "+j.ID+": "+err.Error())
				continue
			}
			out.JobID, out.Kind, out.Reason = j.ID, j.Kind, clip.String(out.Reason, 1024)
			if out.At.IsZero() {
				out.At = time.Now().UTC()
			}
			if out.Outcome == JobWaiting {
				if len(waiting) < maxReportJobs {
					waiting[j.ID] = out
				}
				log.Info("a signed job cannot be decided yet; it stays queued", "job", j.ID, "reason", out.Reason)
				continue
			}
			c.addJob(out)
			c.save(ctx) // the outcome is durable before the hub forgets the job
			switch out.Outcome {
			case JobAccepted:
				log.Info("signed job accepted", "job", j.ID, "run", out.Run, "signer", out.Signer)
			case JobPlanned:
				log.Info("plan job planned; the plan goes in the next report", "job", j.ID)
			default:
				log.Warn("job refused; clearing it", "job", j.ID, "kind", j.Kind, "reason", out.Reason)
			}
		}
		if err := jh.ClearJob(ctx, j.ID); err != nil {
			if ctx.Err() == nil {
				log.Warn("clearing a signed job failed; trying again after the next report", "job", j.ID, "err", err)
				problems = append(problems, "clearing job "+j.ID+": "+err.Error())
			}
			continue
		}
		c.mu.Lock()
		for i := range c.st.Jobs {
			if c.st.Jobs[i].Outcome.JobID == j.ID {
				c.st.Jobs[i].Cleared = true
			}
		}
		c.mu.Unlock()
	}
	if len(problems) > 0 {
		c.note("jobs", strings.Join(problems, "; "))
	}
	c.save(ctx)
}

// jobRecord returns the State's record of job id, or nil.
func (c *Channel) jobRecord(id string) *JobRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.st.Jobs {
		if c.st.Jobs[i].Outcome.JobID == id {
			r := c.st.Jobs[i]
			return &r
		}
	}
	return nil
}

// addJob records a new outcome, counts it, and forgets the oldest
// reported records beyond maxJobRecords.
func (c *Channel) addJob(out JobOutcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Jobs = append(c.st.Jobs, JobRecord{Outcome: out})
	switch out.Outcome {
	case JobAccepted:
		c.stats.JobsAccepted++
	case JobPlanned:
		c.stats.JobsPlanned++
	default:
		c.stats.JobsRefused++
	}
	for len(c.st.Jobs) > maxJobRecords {
		i := 0
		for i < len(c.st.Jobs) && !c.st.Jobs[i].Reported {
			i++
		}
		if i == len(c.st.Jobs) {
			break
		}
		c.st.Jobs = append(c.st.Jobs[:i], c.st.Jobs[i+1:]...)
	}
}

// unreportedJobs are the outcomes no accepted report carried yet, oldest
// first, at most maxReportJobs, then the jobs that wait (JobWaiting), by
// id. c.mu held.
func (c *Channel) unreportedJobs() []JobOutcome {
	var out []JobOutcome
	for _, r := range c.st.Jobs {
		if !r.Reported && len(out) < maxReportJobs {
			out = append(out, r.Outcome)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.waiting)) {
		out = append(out, c.waiting[id])
	}
	return out
}

// jobsReported marks the outcomes a report carried. c.mu held.
func (c *Channel) jobsReported(sent []JobOutcome) {
	for _, o := range sent {
		for i := range c.st.Jobs {
			if c.st.Jobs[i].Outcome.JobID == o.JobID {
				c.st.Jobs[i].Reported = true
			}
		}
	}
}
