package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
)

// The paths of the hub's host API, relative to hub.url. {host_id} is the
// configured host id, path-escaped.
const (
	ReportPath       = "/api/v1/host-report"
	DesiredStatePath = "/api/v1/hosts/{host_id}/desired-state"
	JobsPath         = "/api/v1/hosts/{host_id}/jobs"
)

// Size limits of what crosses the channel. The hub refuses report bodies
// over MaxReportBytes (413); the agent refuses answers over the others
// without reading further.
const (
	MaxReportBytes       = 4 << 20
	MaxEnvelopeBytes     = 64 << 10
	MaxDesiredStateBytes = 1 << 20
)

// Poll interval bounds: the hub's poll_interval_seconds is clamped to
// [MinPoll, MaxPoll] (MinPoll is Channel.MinPoll's default; tests lower
// it), and DefaultPoll applies until the hub says otherwise.
const (
	MinPoll     = 60 * time.Second
	MaxPoll     = 3600 * time.Second
	DefaultPoll = 900 * time.Second
)

// Report is the host report, the body of POST /api/v1/host-report: the
// heartbeat (the hub's receipt time is its dead-man's switch) and the
// host's reality as the agent sees it. Times are UTC, RFC 3339. Sections
// that could not be read are empty, with the reason in Errors under the
// section's name; only an unreadable node skips a report.
type Report struct {
	HostID       string    `json:"host_id"`
	AgentVersion string    `json:"agent_version"`
	ReportedAt   time.Time `json:"reported_at"`
	// Seq counts the reports this agent process built, from 1; a gap the
	// hub sees is a report that did not arrive.
	Seq uint64 `json:"seq"`

	Host    HostMetrics `json:"host"`
	Storage []Storage   `json:"storage"`
	Disks   []Disk      `json:"disks"`
	Sensors []Sensor    `json:"sensors"`
	Tunnel  *Tunnel     `json:"tunnel"`

	Guests []Guest `json:"guests"`
	// GuestsOmitted counts guests left out to stay under MaxReportBytes.
	GuestsOmitted int `json:"guests_omitted,omitempty"`

	// Runs are the runs that ended since the last report the hub
	// accepted, oldest first; RunsOmitted more wait for the next report.
	Runs        []Run `json:"runs"`
	RunsOmitted int   `json:"runs_omitted,omitempty"`

	// Pending are the operations waiting for an operator's signature,
	// oldest first; PendingOmitted more are not listed.
	Pending        []PendingOp `json:"pending_operations"`
	PendingOmitted int         `json:"pending_omitted,omitempty"`
	// Audit are the safety gate's decisions since the last report the hub
	// accepted, oldest first; AuditOmitted more follow in the next reports.
	Audit        []AuditEntry `json:"gate_audit"`
	AuditOmitted int          `json:"audit_omitted,omitempty"`

	// Jobs are the outcomes of the operator-signed jobs decided since the
	// last report the hub accepted.
	Jobs []JobOutcome `json:"jobs,omitempty"`
	// Plans are the plans made for the hub's plan jobs since the last
	// report the hub accepted (plans.go); PlansOmitted more wait for the
	// next report.
	Plans        []Plan `json:"plans,omitempty"`
	PlansOmitted int    `json:"plans_omitted,omitempty"`

	// DesiredState is which desired state the agent holds.
	DesiredState DesiredStatus `json:"desired_state"`
	// Blocked echoes the envelope's blocked: while true the agent accepts
	// no hub-started work (signed triggers, desired-state changes).
	Blocked bool `json:"blocked"`

	// Errors maps a section ("storage", "guests", "envelope", ...) to why
	// it is missing or incomplete.
	Errors map[string]string `json:"errors,omitempty"`
	// Truncated is set when strings were clipped or sections dropped to
	// fit MaxReportBytes.
	Truncated bool `json:"truncated,omitempty"`
}

// HostMetrics is the node's load, from the monitor module's node and
// sensors readings. Percentages are 0..100.
type HostMetrics struct {
	Node          string     `json:"node"`
	CPUPercent    float64    `json:"cpu_percent"`
	CPUs          int        `json:"cpus"`
	Load          [3]float64 `json:"load"`
	MemUsed       uint64     `json:"mem_used"`
	MemTotal      uint64     `json:"mem_total"`
	MemPercent    float64    `json:"mem_percent"`
	DiskUsed      uint64     `json:"disk_used"` // the root file system
	DiskTotal     uint64     `json:"disk_total"`
	DiskPercent   float64    `json:"disk_percent"`
	SwapPercent   float64    `json:"swap_percent"`
	UptimeSeconds int64      `json:"uptime_seconds"`
	// CPUTempC is the hottest CPU package sensor, absent without sensors.
	CPUTempC *float64 `json:"cpu_temp_c,omitempty"`
}

// Storage is one storage of the node.
type Storage struct {
	Storage     string  `json:"storage"`
	Type        string  `json:"type"`
	Active      bool    `json:"active"`
	Enabled     bool    `json:"enabled"`
	Used        uint64  `json:"used"`
	Total       uint64  `json:"total"`
	Avail       uint64  `json:"avail"`
	UsedPercent float64 `json:"used_percent"`
}

// Disk is one disk's SMART health.
type Disk struct {
	Device      string `json:"device"`
	Model       string `json:"model"`
	Health      string `json:"health"`
	Passed      bool   `json:"passed"`
	Temperature int    `json:"temperature_c"`
	Reallocated int64  `json:"reallocated"`
	Error       string `json:"error,omitempty"`
}

// Sensor is one temperature reading.
type Sensor struct {
	Chip    string  `json:"chip"`
	Label   string  `json:"label"`
	Celsius float64 `json:"celsius"`
	High    float64 `json:"high,omitempty"`
	Crit    float64 `json:"crit,omitempty"`
}

// Tunnel is the hub tunnel's reachability.
type Tunnel struct {
	Endpoint  string `json:"endpoint"`
	Up        bool   `json:"up"`
	LatencyMS int64  `json:"latency_ms"`
	Error     string `json:"error,omitempty"`
}

// Guest is one guest on this node.
type Guest struct {
	VMID     int    `json:"vmid"`
	Kind     string `json:"kind"` // "lxc" or "qemu"
	Name     string `json:"name"`
	Status   string `json:"status"` // PVE's status, or "unknown" when its reads failed
	Template bool   `json:"template,omitempty"`
	// Spec is nil when the guest's configuration could not be read;
	// Error says why.
	Spec  *GuestSpec `json:"spec"`
	Error string     `json:"error,omitempty"`

	LastBackup       *GuestEvent `json:"last_backup"`              // the last attempt
	LastBackupOK     *GuestEvent `json:"last_backup_ok,omitempty"` // the last success, when the last attempt failed
	LastRestoreDrill *GuestEvent `json:"last_restore_drill"`
}

// GuestSpec is what a guest is configured as, in the desired state's terms.
type GuestSpec struct {
	Hostname    string `json:"hostname"`
	Cores       int    `json:"cores"`
	Memory      int64  `json:"memory"` // MiB
	Net         string `json:"net,omitempty"`
	Description string `json:"description,omitempty"`
	OnBoot      bool   `json:"onboot,omitempty"`
}

// GuestEvent is one entry of the per-guest index: a backup or a restore
// drill, when, whether it worked, the run that did it.
type GuestEvent struct {
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	Run    string    `json:"run,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Run is a run that ended.
type Run struct {
	ID       string `json:"id"`
	Playbook string `json:"playbook"`
	Source   string `json:"source"`
	// Key is the run's idempotency key: for source "job" the job id.
	Key       string    `json:"key,omitempty"`
	Status    string    `json:"status"`
	ErrorKind string    `json:"error_kind,omitempty"`
	Error     string    `json:"error,omitempty"`
	Created   time.Time `json:"created"`
	Ended     time.Time `json:"ended"`
}

// PendingOp is an operation waiting for an operator's signature: what it
// would do, and the canonical op blob to sign (base64, as a job's
// op_blob_b64 carries it back).
type PendingOp struct {
	ID        string    `json:"id"`
	Run       string    `json:"run"`
	Playbook  string    `json:"playbook"`
	Guest     int       `json:"guest,omitempty"`
	What      string    `json:"what"`
	OpBlobB64 string    `json:"op_blob_b64"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// AuditEntry is one safety gate decision (docs/safety.md): Entry is the
// gate's record as the run store keeps it; Seq its position.
type AuditEntry struct {
	Seq   int64           `json:"seq"`
	Entry json.RawMessage `json:"entry"`
}

// DesiredStatus is the desired-state part of a report.
type DesiredStatus struct {
	// Generation is the generation the agent accepted and converges to;
	// 0 for none.
	Generation int64 `json:"generation"`
	// Refused is the last generation refused as malformed, when newer
	// than Generation.
	Refused *Refusal `json:"refused,omitempty"`
}

// Refusal is a desired state the agent refused.
type Refusal struct {
	Generation int64     `json:"generation"`
	Error      string    `json:"error"`
	At         time.Time `json:"at"`
}

// Envelope is the control envelope, the hub's answer to a report.
type Envelope struct {
	// PollInterval is poll_interval_seconds, clamped by the Channel.
	PollInterval time.Duration
	// Blocked: the hub has blocked this host.
	Blocked bool
	// DesiredGeneration is the hub's current desired-state generation.
	DesiredGeneration int64
	// HasSignedOps: operator-signed jobs wait for this host.
	HasSignedOps bool
}

// ParseEnvelope decodes and checks an envelope. Unknown fields are
// ignored (the hub may add some); a field of the wrong type, a negative
// or fractional number, or trailing data is an error. An absent or zero
// poll_interval_seconds leaves PollInterval zero ("keep the current one").
func ParseEnvelope(b []byte) (Envelope, error) {
	var w struct {
		Poll       json.RawMessage `json:"poll_interval_seconds"`
		Blocked    *bool           `json:"blocked"`
		Generation json.RawMessage `json:"desired_generation"`
		Signed     *bool           `json:"has_signed_ops"`
	}
	if err := decodeStrict(b, &w, false); err != nil {
		return Envelope{}, fmt.Errorf("envelope: %w", err)
	}
	var e Envelope
	if w.Poll != nil {
		n, err := nonNegInt(w.Poll, math.MaxInt32)
		if err != nil {
			return Envelope{}, fmt.Errorf("envelope: poll_interval_seconds: %w", err)
		}
		e.PollInterval = time.Duration(n) * time.Second
	}
	if w.Generation != nil {
		n, err := nonNegInt(w.Generation, math.MaxInt64)
		if err != nil {
			return Envelope{}, fmt.Errorf("envelope: desired_generation: %w", err)
		}
		e.DesiredGeneration = n
	}
	e.Blocked = w.Blocked != nil && *w.Blocked
	e.HasSignedOps = w.Signed != nil && *w.Signed
	return e, nil
}

// FetchedState is the answer of GET .../desired-state before its
// desired_state is validated.
type FetchedState struct {
	Generation int64
	// Raw is desired_state as the hub sent it (the hub stores it
	// opaquely); null when the hub holds none.
	Raw json.RawMessage
}

// parseFetched decodes {generation, desired_state}.
func parseFetched(b []byte) (FetchedState, error) {
	var w struct {
		Generation json.RawMessage `json:"generation"`
		State      json.RawMessage `json:"desired_state"`
	}
	if err := decodeStrict(b, &w, false); err != nil {
		return FetchedState{}, fmt.Errorf("desired-state answer: %w", err)
	}
	if w.Generation == nil {
		return FetchedState{}, errors.New("desired-state answer: generation is missing")
	}
	n, err := nonNegInt(w.Generation, math.MaxInt64)
	if err != nil {
		return FetchedState{}, fmt.Errorf("desired-state answer: generation: %w", err)
	}
	return FetchedState{Generation: n, Raw: w.State}, nil
}

// decodeStrict decodes one JSON value into v, refusing trailing data
// and, with known, unknown fields.
func decodeStrict(b []byte, v any, known bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if known {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// jsonError rewords encoding/json's errors for people (no Go type names).
func jsonError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := te.Field
		if field == "" {
			field = "the value"
		}
		return fmt.Errorf("%s: got a JSON %s, want %s", field, te.Value, jsonKind(te.Type.Kind().String()))
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("not JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty body")
	}
	return err
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "a list"
	case "struct", "map":
		return "an object"
	case "float64":
		return "a number"
	}
	return k
}

// nonNegInt reads a JSON value that must be a number, an integer in
// 0..max (a string holding digits is refused: types are checked).
func nonNegInt(raw json.RawMessage, max int64) (int64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return 0, fmt.Errorf("got %s, want an integer", clipNum(s))
	}
	i, err := json.Number(s).Int64()
	if err != nil {
		return 0, fmt.Errorf("%s is not an integer", clipNum(s))
	}
	if i < 0 || i > max {
		return 0, fmt.Errorf("%d is out of range 0..%d", i, max)
	}
	return i, nil
}

func clipNum(s string) string { return clip.Line(s, 24) }
