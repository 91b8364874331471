package proxmox

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// UPID identifies one Proxmox VE worker task ("unique process id").
//
// The text form is PVE's own (pve-common PVE::UPID, upid_encode):
//
//	UPID:<node>:<pid %08X>:<pstart %08X>:<starttime %08X>:<type>:<id>:<user>:
//
// Invariant: String(ParseUPID(s)) == s for every s PVE itself produces,
// since PVE writes hex in upper case and ParseUPID keeps the width of pstart
// (8 or 9 digits). The zero UPID stands for "no task": an operation that
// was applied synchronously (LXC config PUT) returns it.
type UPID struct {
	Node      string    // node that runs the worker
	PID       uint32    // worker process id
	PStart    uint64    // process start time in clock ticks (8 or 9 hex digits)
	StartTime time.Time // wall-clock start, second resolution
	Type      string    // worker type: vzdump, vzcreate, vzsnapshot, ...
	ID        string    // worker id, usually the vmid; may be empty
	User      string    // user or token that started it: root@pam, a@pve!tok

	pstartWidth int // 9 when PVE wrote nine digits, so String round-trips
}

// upidPattern is PVE's decoder regexp (PVE::UPID::decode), plus the rule of
// the current decoder that type, id and user contain no '/'.
var upidPattern = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

// ParseUPID parses PVE's text form of a task id. It rejects anything the PVE
// decoder would reject, with an error that says which part is wrong.
func ParseUPID(s string) (UPID, error) {
	m := upidPattern.FindStringSubmatch(s)
	if m == nil {
		return UPID{}, &UPIDError{Input: s, Reason: upidReason(s)}
	}
	pid, _ := strconv.ParseUint(m[3], 16, 32)
	pstart, _ := strconv.ParseUint(m[4], 16, 64)
	start, _ := strconv.ParseUint(m[5], 16, 32)
	return UPID{
		Node:        m[1],
		PID:         uint32(pid),
		PStart:      pstart,
		StartTime:   time.Unix(int64(start), 0).UTC(),
		Type:        m[6],
		ID:          m[7],
		User:        m[8],
		pstartWidth: len(m[4]),
	}, nil
}

// MustParseUPID is ParseUPID for literals in tests and examples; it panics on
// a malformed UPID.
func MustParseUPID(s string) UPID {
	u, err := ParseUPID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// String formats the UPID exactly as PVE does; the zero UPID formats as "".
func (u UPID) String() string {
	if u.IsZero() {
		return ""
	}
	// Spelt by hand rather than with fmt: every task result, journal
	// entry and log line of a wait formats its UPID (BenchmarkFlowEngine).
	var b strings.Builder
	b.Grow(len("UPID::00000000:000000000:00000000:::") + len(u.Node) + len(u.Type) + len(u.ID) + len(u.User) + 1)
	b.WriteString("UPID:")
	b.WriteString(u.Node)
	b.WriteByte(':')
	writeHex(&b, uint64(u.PID), 8)
	b.WriteByte(':')
	writeHex(&b, u.PStart, max(8, u.pstartWidth))
	b.WriteByte(':')
	if start := u.StartTime.Unix(); start >= 0 {
		writeHex(&b, uint64(start), 8)
	} else {
		// Only a UPID made up in Go, never PVE's: as fmt's %08X, the
		// sign inside the width (and no fmt, which would move b to the
		// heap for every UPID).
		b.WriteByte('-')
		writeHex(&b, uint64(-start), 7)
	}
	b.WriteByte(':')
	b.WriteString(u.Type)
	b.WriteByte(':')
	b.WriteString(u.ID)
	b.WriteByte(':')
	b.WriteString(u.User)
	b.WriteByte(':')
	return b.String()
}

// writeHex writes v in upper-case hex, zero-padded to width digits (as
// fmt's %0*X does).
func writeHex(b *strings.Builder, v uint64, width int) {
	var buf [16]byte
	i := len(buf)
	for {
		i--
		buf[i] = "0123456789ABCDEF"[v&0xF]
		if v >>= 4; v == 0 {
			break
		}
	}
	for n := len(buf) - i; n < width; n++ {
		b.WriteByte('0')
	}
	b.Write(buf[i:])
}

// IsZero reports whether u stands for "no task" (a synchronous operation).
func (u UPID) IsZero() bool { return u.Node == "" && u.Type == "" }

// MarshalText encodes the UPID in PVE's form, so it is a plain JSON string.
func (u UPID) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText parses PVE's form; an empty text or JSON null-like "" gives
// the zero UPID.
func (u *UPID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*u = UPID{}
		return nil
	}
	p, err := ParseUPID(string(b))
	if err != nil {
		return err
	}
	*u = p
	return nil
}

// UPIDError reports a malformed UPID and which part of it is wrong.
type UPIDError struct {
	Input  string
	Reason string
}

func (e *UPIDError) Error() string {
	return fmt.Sprintf("malformed UPID %q: %s", e.Input, e.Reason)
}

// upidReason names the first part of s that breaks PVE's format; it is only
// called once the full pattern has failed.
func upidReason(s string) string {
	if !strings.HasPrefix(s, "UPID:") {
		return `must start with "UPID:"`
	}
	if !strings.HasSuffix(s, ":") {
		return "must end with ':'"
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(s, "UPID:"), ":"), ":")
	if len(parts) != 7 {
		return fmt.Sprintf("want 7 fields (node:pid:pstart:starttime:type:id:user), got %d", len(parts))
	}
	names := []string{"node", "pid", "pstart", "starttime", "type", "id", "user"}
	checks := []*regexp.Regexp{
		regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`),
		regexp.MustCompile(`^[0-9A-Fa-f]{8}$`),
		regexp.MustCompile(`^[0-9A-Fa-f]{8,9}$`),
		regexp.MustCompile(`^[0-9A-Fa-f]{8}$`),
		regexp.MustCompile(`^[^:\s/]+$`),
		regexp.MustCompile(`^[^:\s/]*$`),
		regexp.MustCompile(`^[^:\s/]+$`),
	}
	for i, re := range checks {
		if !re.MatchString(parts[i]) {
			return fmt.Sprintf("bad %s field %q", names[i], parts[i])
		}
	}
	return "does not match PVE's UPID format"
}
