package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"gitea.dooplex.hu/admin/felhom-agent/internal/clip"
	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// DesiredSchema is the version of the desired-state schema this agent
// reads. The hub stores the desired state opaquely; this agent owns its
// schema, so a document of another version is refused as a whole.
const DesiredSchema = 1

// Limits of a desired state.
const (
	MaxDesiredGuests    = 500
	MaxDescriptionBytes = 8 << 10
	MaxNetBytes         = 512
	// MaxRetrievalPasswordBytes bounds a guest's retrieval_password.
	MaxRetrievalPasswordBytes = 256
	DefaultGoldenVMID         = 9000
	DefaultGuestStorage       = "local-lvm"
	DefaultGuestNet           = "name=eth0,bridge=vmbr0,ip=dhcp"
	DefaultGuestCores         = 1
	DefaultGuestMemory        = 512
	maxCores                  = 512
	minMemory, maxMemory      = 16, 4 << 20 // MiB: 16 MiB .. 4 TiB
)

// The guest kinds and power states a desired state may name.
const (
	KindLXC      = "lxc"
	PowerRunning = "running"
	PowerStopped = "stopped"
)

// DesiredState is the desired state of this host, schema 1: which guests
// should exist, as what, and whether they run. After [ParseDesiredState]
// every default is filled in, so a reader never applies one itself.
//
// The reconcile playbook converges the host to it: a guest missing from
// the whole cluster is provisioned from the golden archive, drift in
// hostname, cores, memory, net and description is corrected, and power
// follows. A guest that exists but is not listed is reported, never
// removed (removal is destructive and only ever an operator-signed job).
type DesiredState struct {
	// Schema must be DesiredSchema.
	Schema int `json:"schema"`
	// GoldenVMID is the guest whose newest archive new guests are
	// restored from; default DefaultGoldenVMID.
	GoldenVMID int `json:"golden_vmid"`
	// Storage holds new guests' root disks; default DefaultGuestStorage.
	Storage string `json:"storage"`
	// ArchiveStorage is where the golden archive is looked for; "" (the
	// default) searches every backup storage.
	ArchiveStorage string `json:"archive_storage"`
	// Guests are the desired guests, at most MaxDesiredGuests, unique by
	// vmid. An empty list is valid (nothing to provision; nothing is
	// removed either).
	Guests []DesiredGuest `json:"guests"`
}

// DesiredGuest is one desired guest.
type DesiredGuest struct {
	// VMID is required, in proxmox.MinVMID..MaxVMID, not GoldenVMID.
	VMID int `json:"vmid"`
	// Kind is "lxc" (the default); QEMU guests are not in schema 1.
	Kind string `json:"kind"`
	// Hostname is required: a DNS label (letters, digits, '-'; 1..63).
	Hostname string `json:"hostname"`
	// Cores, 1..512; default 1.
	Cores int `json:"cores"`
	// Memory in MiB, 16..4194304; default 512.
	Memory int `json:"memory"`
	// Net is net0 as PVE writes it, e.g. "name=eth0,bridge=vmbr0,ip=dhcp"
	// (the default); it must name name= and bridge=.
	Net string `json:"net"`
	// Description is the guest's notes, at most 8 KiB; "" leaves the
	// guest's own alone.
	Description string `json:"description"`
	// Power is "running" (the default) or "stopped".
	Power string `json:"power"`
	// CustomerID is the hub's customer this guest serves, written into
	// its bootstrap file (customer.id of felhom.bootstrap/v2): letters,
	// digits, '.', '_', '-', 1..128. "" writes no customer.
	CustomerID string `json:"customer_id,omitempty"`
	// RetrievalPassword is the secret with which the guest's controller
	// pulls its configuration from the hub (hub.retrieval_password of
	// felhom.bootstrap/v2); it needs CustomerID. It is a secret: never in
	// an error, a log, a run record or what playbooks read
	// ([DesiredState.PlaybookJSON]).
	RetrievalPassword string `json:"retrieval_password,omitempty"`
}

// FieldError is one problem of a desired state: Path names the field
// ("guests[2].vmid") and Msg says what is wrong without quoting long
// values.
type FieldError struct {
	Path, Msg string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

var (
	hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	customerPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	storagePattern  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,63}$`)
	netKeyPattern   = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
)

// ParseDesiredState decodes, checks and normalizes a desired state. Every
// problem is reported (errors.Join of *FieldError), so one refusal names
// them all; unknown fields are refused, so a misspelt key never silently
// does nothing. The result has every default filled in.
func ParseDesiredState(raw []byte) (*DesiredState, error) {
	if len(raw) > MaxDesiredStateBytes {
		return nil, &FieldError{"desired_state", fmt.Sprintf("is %d bytes, over the limit of %d", len(raw), MaxDesiredStateBytes)}
	}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, &FieldError{"desired_state", "is missing (null)"}
	}
	if t[0] != '{' {
		return nil, &FieldError{"desired_state", "must be a JSON object"}
	}
	var d DesiredState
	if err := decodeStrict(t, &d, true); err != nil {
		return nil, &FieldError{"desired_state", err.Error()}
	}
	return &d, d.normalize()
}

// normalize fills the defaults and checks every field.
func (d *DesiredState) normalize() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{path, fmt.Sprintf(format, args...)})
	}
	if d.Schema != DesiredSchema {
		bad("schema", "is %d; this agent reads schema %d", d.Schema, DesiredSchema)
		return errors.Join(errs...) // the rest would be read against the wrong schema
	}
	if d.GoldenVMID == 0 {
		d.GoldenVMID = DefaultGoldenVMID
	} else if d.GoldenVMID < proxmox.MinVMID || d.GoldenVMID > proxmox.MaxVMID {
		bad("golden_vmid", "is not in %d..%d", proxmox.MinVMID, proxmox.MaxVMID)
	}
	if d.Storage == "" {
		d.Storage = DefaultGuestStorage
	} else if !storagePattern.MatchString(d.Storage) {
		bad("storage", "is not a storage id")
	}
	if d.ArchiveStorage != "" && !storagePattern.MatchString(d.ArchiveStorage) {
		bad("archive_storage", "is not a storage id")
	}
	if d.Guests == nil {
		bad("guests", "is missing (use [] for no guests)")
	}
	if len(d.Guests) > MaxDesiredGuests {
		bad("guests", "has %d guests, over the limit of %d", len(d.Guests), MaxDesiredGuests)
		return errors.Join(errs...)
	}
	seen := map[int]int{}
	for i := range d.Guests {
		g := &d.Guests[i]
		p := fmt.Sprintf("guests[%d]", i)
		switch {
		case g.VMID == 0:
			bad(p+".vmid", "is required")
		case g.VMID < proxmox.MinVMID || g.VMID > proxmox.MaxVMID:
			bad(p+".vmid", "%d is not in %d..%d", g.VMID, proxmox.MinVMID, proxmox.MaxVMID)
		case g.VMID == d.GoldenVMID:
			bad(p+".vmid", "%d is the golden guest", g.VMID)
		default:
			if j, dup := seen[g.VMID]; dup {
				bad(p+".vmid", "%d is also guests[%d]", g.VMID, j)
			}
			seen[g.VMID] = i
		}
		switch g.Kind {
		case "":
			g.Kind = KindLXC
		case KindLXC:
		default:
			bad(p+".kind", "%q is not supported (schema %d has %q only)", clipField(g.Kind), DesiredSchema, KindLXC)
		}
		if !hostnamePattern.MatchString(g.Hostname) {
			if g.Hostname == "" {
				bad(p+".hostname", "is required")
			} else {
				bad(p+".hostname", "is not a DNS label (letters, digits and '-', 1 to 63)")
			}
		}
		if g.Cores == 0 {
			g.Cores = DefaultGuestCores
		} else if g.Cores < 1 || g.Cores > maxCores {
			bad(p+".cores", "%d is not in 1..%d", g.Cores, maxCores)
		}
		if g.Memory == 0 {
			g.Memory = DefaultGuestMemory
		} else if g.Memory < minMemory || g.Memory > maxMemory {
			bad(p+".memory", "%d MiB is not in %d..%d", g.Memory, minMemory, maxMemory)
		}
		if g.Net == "" {
			g.Net = DefaultGuestNet
		} else if msg := checkNet(g.Net); msg != "" {
			bad(p+".net", "%s", msg)
		}
		if len(g.Description) > MaxDescriptionBytes {
			bad(p+".description", "is %d bytes, over the limit of %d", len(g.Description), MaxDescriptionBytes)
		} else if strings.ContainsRune(g.Description, 0) {
			bad(p+".description", "contains a NUL byte")
		}
		if g.CustomerID != "" && !customerPattern.MatchString(g.CustomerID) {
			bad(p+".customer_id", "is not a customer id (letters, digits, '.', '_' and '-', 1 to 128)")
		}
		// The password is never quoted, not even clipped.
		switch pw := g.RetrievalPassword; {
		case pw == "":
		case g.CustomerID == "":
			bad(p+".retrieval_password", "needs customer_id (the controller pulls its configuration as that customer)")
		case len(pw) > MaxRetrievalPasswordBytes:
			bad(p+".retrieval_password", "is %d bytes, over the limit of %d", len(pw), MaxRetrievalPasswordBytes)
		case !utf8.ValidString(pw) || strings.IndexFunc(pw, unicode.IsControl) >= 0:
			bad(p+".retrieval_password", "must be UTF-8 text without control characters")
		}
		switch g.Power {
		case "":
			g.Power = PowerRunning
		case PowerRunning, PowerStopped:
		default:
			bad(p+".power", "%q is not %q or %q", clipField(g.Power), PowerRunning, PowerStopped)
		}
	}
	return errors.Join(errs...)
}

// checkNet says what is wrong with a net0 value, or "".
func checkNet(s string) string {
	if len(s) > MaxNetBytes {
		return fmt.Sprintf("is %d bytes, over the limit of %d", len(s), MaxNetBytes)
	}
	keys := map[string]bool{}
	for item := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		if !ok || !netKeyPattern.MatchString(k) || v == "" || strings.ContainsAny(v, " \t\r\n\x00") {
			return "is not a comma-separated list of key=value (as PVE writes net0)"
		}
		if keys[k] {
			return "names " + k + " twice"
		}
		keys[k] = true
	}
	if !keys["name"] || !keys["bridge"] {
		return "must name name= and bridge="
	}
	return ""
}

func clipField(s string) string { return clip.Line(s, 40) }

// JSON is the normalized desired state as JSON, what the agent keeps:
// it holds the guests' retrieval passwords, so it is stored sealed and
// never given to a playbook (see [DesiredState.PlaybookJSON]).
func (d *DesiredState) JSON() json.RawMessage {
	b, _ := json.Marshal(d) // plain fields: cannot fail
	return b
}

// PlaybookJSON is the normalized desired state as playbooks read it
// (hub.desired_state()): JSON without any guest's retrieval_password.
func (d *DesiredState) PlaybookJSON() json.RawMessage {
	c := *d
	c.Guests = make([]DesiredGuest, len(d.Guests))
	for i, g := range d.Guests {
		g.RetrievalPassword = ""
		c.Guests[i] = g
	}
	return c.JSON()
}

// Guest is the desired guest vmid, or nil when the state lists none.
func (d *DesiredState) Guest(vmid int) *DesiredGuest {
	for i := range d.Guests {
		if d.Guests[i].VMID == vmid {
			return &d.Guests[i]
		}
	}
	return nil
}
