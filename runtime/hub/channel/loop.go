package channel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// Backoff bounds after a failed attempt: the wait starts at BaseBackoff,
// doubles with each failure, is capped at MaxBackoff (and at the poll
// interval), and is jittered to between half and all of that, so that a
// fleet coming back after a hub outage does not report in lockstep.
const (
	BaseBackoff = 5 * time.Second
	MaxBackoff  = 5 * time.Minute
)

// maxRefusalBytes bounds a refusal's message in the report and the state.
const maxRefusalBytes = 2 << 10

// State is what the channel keeps across restarts (the agent persists it
// in the run store). The zero value is a fresh host: no desired state, not
// blocked, every run not yet reported.
type State struct {
	// Generation and Desired are the last good desired state (Desired is
	// its normalized JSON; nil when Generation is 0).
	Generation int64           `json:"generation"`
	Desired    json.RawMessage `json:"desired,omitempty"`
	// Refused is the last refused generation, if newer than Generation.
	Refused *Refusal `json:"refused,omitempty"`
	// Blocked is the last envelope's blocked.
	Blocked bool `json:"blocked"`
	// PollSeconds is the last adopted poll interval; 0 means DefaultPoll.
	PollSeconds int64 `json:"poll_seconds,omitempty"`
	// Cursor is the last run the hub accepted a report of.
	Cursor Cursor `json:"cursor"`
	// Jobs are the signed jobs decided lately: the outcomes not yet
	// reported, and enough of the rest that a job the hub sends again is
	// only cleared again.
	Jobs []JobRecord `json:"jobs,omitempty"`
	// Plans are the plans made for plan jobs that no accepted report
	// carried yet (plans.go).
	Plans []Plan `json:"plans,omitempty"`
}

// Cursor is a position in the runs ordered by (end time, id), and in the
// gate's audit (its sequence number).
type Cursor struct {
	Ended time.Time `json:"ended"`
	ID    string    `json:"id"`
	Audit int64     `json:"audit,omitempty"`
}

// StateStore persists State. Load returns the zero State and false when
// none was saved.
type StateStore interface {
	LoadState(ctx context.Context) (State, bool, error)
	SaveState(ctx context.Context, s State) error
}

// Reporter is what the channel needs of the hub: *Client implements it.
type Reporter interface {
	Report(ctx context.Context, body []byte) (Envelope, error)
	DesiredState(ctx context.Context) (FetchedState, error)
}

var _ Reporter = (*Client)(nil)

// Channel is the loop that keeps the hub informed and the desired state
// current. Set the fields, call [Channel.Load], then [Channel.Run]; the
// accessors are safe for concurrent use meanwhile.
type Channel struct {
	// Hub is required.
	Hub Reporter
	// HostID and AgentVersion go into every report.
	HostID, AgentVersion string
	// Collect builds the host parts of a report (everything but
	// desired_state, blocked and seq): the runs that ended after since, at
	// most a few hundred, oldest first, with RunsOmitted counting the
	// rest. It returns an error only when the node itself cannot be read,
	// which skips the report; any other missing section goes in
	// Report.Errors. Required.
	Collect func(ctx context.Context, since Cursor) (*Report, error)
	// Store persists the State; nil keeps it in memory only.
	Store StateStore
	// OnDesired is called (from Run's goroutine) with each desired state
	// accepted, and once at the start of Run with the persisted one, so
	// that the caller can make sure it is converged to. The caller must
	// not block long.
	OnDesired func(generation int64, d *DesiredState)
	// Jobs decides operator-signed jobs (fetched when the envelope says
	// has_signed_ops and the host is not blocked); nil leaves them queued.
	// Hub must implement JobHub too.
	Jobs JobHandler
	// Plans makes the plans plan jobs ask for (plans.go); nil refuses
	// them.
	Plans PlanHandler
	// OnBlocked is called when blocked changes, and once at the start of
	// Run.
	OnBlocked func(blocked bool)
	// MinPoll is the floor of the poll interval; 0 means MinPoll (60 s).
	// Tests set seconds.
	MinPoll time.Duration
	// BaseBackoff and MaxBackoff override the package's; 0 keeps them.
	BaseBackoff, MaxBackoff time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	st      State
	desired *DesiredState
	loaded  bool
	seq     uint64
	notes   map[string]string     // errors for the next report
	waiting map[string]JobOutcome // the jobs the last fetch left waiting (JobWaiting), by id
	stats   Stats
}

// Stats is how the channel is doing, for metrics and health.
type Stats struct {
	// Reports counts reports the hub accepted; Failures attempts that
	// failed (transport, HTTP status or skipped for an unreadable node).
	Reports, Failures uint64
	// LastReport is when the hub last accepted a report (zero: never).
	LastReport time.Time
	// LastError is the last failure, "" after a success.
	LastError string
	// Interval is the adopted poll interval.
	Interval time.Duration
	// JobsAccepted and JobsRefused count the jobs decided (refused plan
	// jobs included), JobsPlanned the plan jobs whose plan was made.
	JobsAccepted, JobsRefused, JobsPlanned uint64
}

// Load reads the persisted State. Run calls it if it was not called.
func (c *Channel) Load(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		return nil
	}
	if c.Store != nil {
		st, ok, err := c.Store.LoadState(ctx)
		if err != nil {
			return fmt.Errorf("hub channel: loading its state: %w", err)
		}
		if ok {
			c.st = st
		}
	}
	if c.st.Generation > 0 {
		d, err := ParseDesiredState(c.st.Desired)
		if err != nil {
			// The agent wrote it after validating it; a newer schema's
			// state from a downgrade is refused here, and the next fetch
			// replaces it.
			c.logger().Error("the persisted desired state no longer validates; holding none until the hub sends one", "generation", c.st.Generation, "err", err)
			c.st.Generation, c.st.Desired = 0, nil
		} else {
			c.desired = d
		}
	}
	c.stats.Interval = c.interval()
	c.loaded = true
	return nil
}

// Desired returns the accepted desired state and its generation (0 and
// nil for none). The result must not be modified.
func (c *Channel) Desired() (int64, *DesiredState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Generation, c.desired
}

// Blocked reports whether the hub has blocked this host.
func (c *Channel) Blocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Blocked
}

// Stats returns the channel's counters.
func (c *Channel) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Run reports at once, then every poll interval, until ctx ends; it
// returns ctx's error, or an error from Load.
func (c *Channel) Run(ctx context.Context) error {
	if err := c.Load(ctx); err != nil {
		return err
	}
	gen, d := c.Desired()
	if c.OnBlocked != nil {
		c.OnBlocked(c.Blocked())
	}
	if gen > 0 && c.OnDesired != nil {
		c.OnDesired(gen, d)
	}
	failures := 0
	for {
		ok := c.attempt(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var wait time.Duration
		if ok {
			failures = 0
			wait = c.interval()
		} else {
			failures++
			wait = c.backoff(failures)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// interval is the adopted poll interval. c.mu held or not needed.
func (c *Channel) interval() time.Duration {
	if c.st.PollSeconds == 0 {
		return DefaultPoll
	}
	return c.clamp(time.Duration(c.st.PollSeconds) * time.Second)
}

func (c *Channel) clamp(d time.Duration) time.Duration {
	lo := c.MinPoll
	if lo <= 0 {
		lo = MinPoll
	}
	return min(max(d, lo), MaxPoll)
}

// backoff is the wait after the n-th failure in a row.
func (c *Channel) backoff(n int) time.Duration {
	base, top := c.BaseBackoff, c.MaxBackoff
	if base <= 0 {
		base = BaseBackoff
	}
	if top <= 0 {
		top = MaxBackoff
	}
	c.mu.Lock()
	top = min(top, c.interval())
	c.mu.Unlock()
	d := base
	for i := 1; i < n && d < top; i++ {
		d *= 2
	}
	d = min(d, top)
	return d/2 + rand.N(d/2+1)
}

func (c *Channel) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// note keeps an error for the next report's Errors.
func (c *Channel) note(section, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.notes == nil {
		c.notes = map[string]string{}
	}
	c.notes[section] = clip.String(msg, 1024)
}

func (c *Channel) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Failures++
	c.stats.LastError = msg
}

// attempt builds and sends one report and acts on the envelope. It
// reports whether the hub accepted the report.
func (c *Channel) attempt(ctx context.Context) bool {
	log := c.logger()
	c.mu.Lock()
	c.seq++
	seq, since := c.seq, c.st.Cursor
	c.mu.Unlock()

	rep, err := c.Collect(ctx, since)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("hub report skipped: the node cannot be read", "err", err)
			c.fail("report skipped: " + err.Error())
		}
		return false
	}
	c.mu.Lock()
	rep.HostID, rep.AgentVersion, rep.Seq = c.HostID, c.AgentVersion, seq
	if rep.ReportedAt.IsZero() {
		rep.ReportedAt = time.Now().UTC()
	}
	rep.Blocked = c.st.Blocked
	rep.DesiredState = DesiredStatus{Generation: c.st.Generation, Refused: c.st.Refused}
	rep.Jobs = c.unreportedJobs()
	rep.Plans = c.unreportedPlans()
	notes := c.notes
	c.notes = nil
	c.mu.Unlock()
	for k, v := range notes {
		if rep.Errors == nil {
			rep.Errors = map[string]string{}
		}
		if _, set := rep.Errors[k]; !set {
			rep.Errors[k] = v
		}
	}

	body, err := EncodeReport(rep, MaxReportBytes)
	if err != nil {
		log.Error("hub report not sent", "err", err)
		c.fail(err.Error())
		c.restoreNotes(notes)
		return false
	}
	env, err := c.Hub.Report(ctx, body)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		c.restoreNotes(notes)
		var he *HTTPError
		if errors.As(err, &he) || isTransport(err) {
			log.Warn("hub report failed; retrying with backoff", "err", err, "bytes", len(body))
			c.fail(err.Error())
			return false
		}
		// 2xx with an envelope that does not parse: the report arrived
		// (the hub's receipt is what counts), the envelope is ignored.
		log.Warn("hub report accepted, but its envelope is refused; keeping the current settings", "err", err)
		c.note("envelope", err.Error())
		c.accepted(ctx, rep, nil)
		return true
	}
	c.accepted(ctx, rep, &env)
	return true
}

func (c *Channel) restoreNotes(notes map[string]string) {
	for k, v := range notes {
		c.mu.Lock()
		_, newer := c.notes[k]
		c.mu.Unlock()
		if !newer {
			c.note(k, v)
		}
	}
}

func isTransport(err error) bool {
	var te *TransportError
	return errors.As(err, &te)
}

// accepted advances the cursor past the runs the hub now has, and applies
// the envelope (nil: it was refused).
func (c *Channel) accepted(ctx context.Context, rep *Report, env *Envelope) {
	log := c.logger()
	c.mu.Lock()
	if n := len(rep.Runs); n > 0 {
		last := rep.Runs[n-1]
		c.st.Cursor.Ended, c.st.Cursor.ID = last.Ended, last.ID
	}
	if n := len(rep.Audit); n > 0 {
		c.st.Cursor.Audit = rep.Audit[n-1].Seq
	}
	c.jobsReported(rep.Jobs)
	c.plansReported(rep.Plans)
	c.stats.Reports++
	c.stats.LastReport = time.Now()
	c.stats.LastError = ""
	var blockedChanged, fetch, jobs bool
	if env != nil {
		if env.PollInterval > 0 {
			secs := int64(c.clamp(env.PollInterval) / time.Second)
			if secs != c.st.PollSeconds {
				log.Info("hub poll interval adopted", "interval", c.clamp(env.PollInterval), "asked", env.PollInterval)
				c.st.PollSeconds = secs
			}
		}
		if env.Blocked != c.st.Blocked {
			c.st.Blocked, blockedChanged = env.Blocked, true
		}
		newest := c.st.Generation
		if c.st.Refused != nil {
			newest = max(newest, c.st.Refused.Generation)
		}
		fetch = !c.st.Blocked && env.DesiredGeneration > newest
		jobs = !c.st.Blocked && env.HasSignedOps
	}
	c.stats.Interval = c.interval()
	blocked := c.st.Blocked
	c.mu.Unlock()

	if blockedChanged {
		if blocked {
			log.Warn("the hub has blocked this host: hub-started work is refused until it unblocks it")
		} else {
			log.Info("the hub has unblocked this host")
		}
		if c.OnBlocked != nil {
			c.OnBlocked(blocked)
		}
	}
	if fetch {
		c.fetchDesired(ctx)
	}
	if jobs {
		c.handleJobs(ctx)
	}
	c.save(ctx)
}

// fetchDesired fetches, validates and, if good, adopts the desired state.
func (c *Channel) fetchDesired(ctx context.Context) {
	log := c.logger()
	fs, err := c.Hub.DesiredState(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("fetching the desired state failed; trying again after the next report", "err", err)
			c.note("desired_state", err.Error())
		}
		return
	}
	gen, _ := c.Desired()
	if fs.Generation <= gen {
		log.Info("the hub sent a desired state no newer than the one held; ignored", "generation", fs.Generation, "held", gen)
		return
	}
	d, err := ParseDesiredState(fs.Raw)
	if err != nil {
		msg := clip.String(err.Error(), maxRefusalBytes)
		log.Warn("desired state refused; keeping the last good one", "generation", fs.Generation, "held", gen, "err", msg)
		c.mu.Lock()
		c.st.Refused = &Refusal{Generation: fs.Generation, Error: msg, At: time.Now().UTC()}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.st.Generation, c.st.Desired, c.desired = fs.Generation, d.JSON(), d
	if c.st.Refused != nil && c.st.Refused.Generation <= fs.Generation {
		c.st.Refused = nil
	}
	c.mu.Unlock()
	log.Info("desired state accepted", "generation", fs.Generation, "guests", len(d.Guests))
	c.save(ctx)
	if c.OnDesired != nil {
		c.OnDesired(fs.Generation, d)
	}
}

func (c *Channel) save(ctx context.Context) {
	if c.Store == nil {
		return
	}
	c.mu.Lock()
	st := c.st
	c.mu.Unlock()
	if err := c.Store.SaveState(context.WithoutCancel(ctx), st); err != nil {
		c.logger().Error("saving the hub channel's state failed", "err", err)
	}
}
