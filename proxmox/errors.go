package proxmox

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// APIError is a request that Proxmox VE answered with an error status.
//
// Message is PVE's message: the JSON body's "message" (PVE 8.4+), else the
// HTTP reason phrase, which older hosts use as the only carrier. Errors holds
// the per-parameter messages of a 400 ("Parameter verification failed.").
// For a 403, Permission is parsed from "Permission check failed (PATH, PRIV)".
type APIError struct {
	Method     string            // HTTP method of the request
	Path       string            // API path below /api2/json, e.g. /nodes/pve/lxc
	Status     int               // HTTP status code
	Message    string            // PVE's message, never empty
	Errors     map[string]string // per-parameter messages (400), may be nil
	Permission *Permission       // parsed from a 403 message, nil otherwise
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
	if len(e.Errors) > 0 {
		b.WriteString(" (")
		for i, k := range slices.Sorted(maps.Keys(e.Errors)) {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", k, e.Errors[k])
		}
		b.WriteString(")")
	}
	return b.String()
}

// TaskError is a worker task that stopped with an exit status other than
// "OK" or "WARNINGS: N". PVE checks many privileges only inside the task, so
// a 403-shaped failure can arrive here rather than as an *APIError.
type TaskError struct {
	UPID       UPID
	ExitStatus string      // PVE's exitstatus: the text after "TASK ERROR: "
	Permission *Permission // parsed when ExitStatus is a permission failure
	LogTail    []string    // the last lines of the task log, oldest first
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s (%s %s) failed: %s", e.UPID.Type, e.UPID.ID, e.UPID, e.ExitStatus)
}

// Permission is what a failed permission check names: the ACL path and the
// privilege(s) missing there. Privileges has one entry for PVE's "check", and
// the alternatives for "check_any" (written "A|B" by PVE). A bare
// "Permission check failed" leaves both empty.
type Permission struct {
	Path       string
	Privileges []string
}

func (p *Permission) String() string {
	if p.Path == "" {
		return "permission check failed"
	}
	return fmt.Sprintf("%s on %s", strings.Join(p.Privileges, "|"), p.Path)
}

var permissionPattern = regexp.MustCompile(`Permission check failed(?: \(([^,()]+), ([^()]+)\))?`)

// ParsePermission extracts the ACL path and privileges from a PVE permission
// failure text such as "Permission check failed (/vms/100, VM.Config.Options)"
// or "... (/vms/101, VM.Config.Disk|VM.Config.CPU)". It reports false when
// msg is not a permission failure.
func ParsePermission(msg string) (*Permission, bool) {
	m := permissionPattern.FindStringSubmatch(msg)
	if m == nil {
		return nil, false
	}
	p := &Permission{Path: strings.TrimSpace(m[1])}
	if m[2] != "" {
		for _, priv := range strings.Split(m[2], "|") {
			if priv = strings.TrimSpace(priv); priv != "" {
				p.Privileges = append(p.Privileges, priv)
			}
		}
	}
	return p, true
}

// ErrAmbiguous marks a mutation whose outcome is unknown: the request may or
// may not have reached Proxmox (the connection broke after it was sent).
// Mutations are never retried blindly; a flow should look at the guest's
// state before acting again.
var ErrAmbiguous = errors.New("outcome unknown: the request may have been applied")

// ErrNotSent is a mutation that a [MutationGate] on its context refused:
// nothing reached Proxmox, so acting again later is safe.
var ErrNotSent = errors.New("not sent")

// ErrReadOnly is a request other than a GET that a read-only Client
// ([WithReadOnly]) refused; it comes wrapped together with [ErrNotSent].
var ErrReadOnly = errors.New("refused by a read-only client")

// unknownNodePattern is PVE's answer for a node path naming no member
// (pve-cluster PVE::Cluster, check_node_exists and remote_node_ip).
var unknownNodePattern = regexp.MustCompile(`^no such cluster node '([^']*)'`)

// IsUnknownNode reports whether err is PVE's 500 "no such cluster node
// 'NAME'", and the NAME: a request to a node the host does not have.
func IsUnknownNode(err error) (node string, ok bool) {
	if ae, isAPI := errors.AsType[*APIError](err); isAPI && ae.Status == 500 {
		if m := unknownNodePattern.FindStringSubmatch(ae.Message); m != nil {
			return m[1], true
		}
	}
	return "", false
}

// IsPermission reports whether err is a failed PVE permission check, at the
// request (403) or inside a task, and returns what the check named.
func IsPermission(err error) (*Permission, bool) {
	if ae, ok := errors.AsType[*APIError](err); ok {
		if ae.Permission != nil {
			return ae.Permission, true
		}
		if ae.Status == 403 {
			return &Permission{}, true
		}
	}
	if te, ok := errors.AsType[*TaskError](err); ok && te.Permission != nil {
		return te.Permission, true
	}
	return nil, false
}

// lockPatterns are PVE's lock refusals: a guest config lock
// (AbstractConfig::check_lock), config lock-file contention
// (Tools::lock_file_full) and cluster filesystem lock timeouts.
var lockPatterns = []*regexp.Regexp{
	regexp.MustCompile(`\b(?:CT|VM) is locked \(([^)]+)\)`),
	regexp.MustCompile(`can't lock file '[^']*' - got timeout`),
	regexp.MustCompile(`cfs-lock '[^']*' error: got lock request timeout`),
}

// IsLocked reports whether err is PVE refusing because a lock is held, and
// returns the guest lock's name ("backup", "snapshot", ...) when PVE named
// one; lock-file and cluster-lock timeouts return "".
func IsLocked(err error) (lock string, ok bool) {
	for _, msg := range messages(err) {
		for _, re := range lockPatterns {
			if m := re.FindStringSubmatch(msg); m != nil {
				if len(m) > 1 {
					return m[1], true
				}
				return "", true
			}
		}
	}
	return "", false
}

// notFoundPatterns are PVE's texts for a missing guest, snapshot, volume or
// node. PVE answers most of them with 500, not 404.
var notFoundPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Configuration file '[^']*' does not exist`),
	regexp.MustCompile(`snapshot '[^']*' does not exist`),
	regexp.MustCompile(`no such cluster node`),
	regexp.MustCompile(`no such (?:node|task|volume|storage)`),
	regexp.MustCompile(`storage '[^']*' does not exist`),
	regexp.MustCompile(`volume '[^']*' does not exist`),
}

// IsNotFound reports whether err says the guest, snapshot, volume, storage or
// node it names does not exist.
func IsNotFound(err error) bool {
	if ae, ok := errors.AsType[*APIError](err); ok && ae.Status == 404 {
		return true
	}
	if _, ok := IsElsewhere(err); ok {
		return true
	}
	for _, msg := range messages(err) {
		for _, re := range notFoundPatterns {
			if re.MatchString(msg) {
				return true
			}
		}
	}
	return false
}

// noGuestConfig is PVE's answer for a vmid that has no guest of the
// kind asked on the node: load_config's "Configuration file
// 'nodes/pve/lxc/123.conf' does not exist" (pve-guest-common
// AbstractConfig.pm load_config).
var noGuestConfig = notFoundPatterns[0]

// IsNoGuestConfig reports whether err is PVE's answer that the node has
// no guest of the kind asked with the vmid asked (the guest is gone, is on
// another node, or is of the other kind): a request's answer, or the exit
// status of a task that PVE forked before reading the guest's config (a
// container's snapshot, rollback or snapshot deletion, pve-container
// API2/LXC/Snapshot.pm). Either way nothing was changed: load_config
// dies before anything else (pve-guest-common AbstractConfig.pm).
func IsNoGuestConfig(err error) bool {
	if ae, ok := errors.AsType[*APIError](err); ok && noGuestConfig.MatchString(ae.Message) {
		return true
	}
	te, ok := errors.AsType[*TaskError](err)
	return ok && noGuestConfig.MatchString(te.ExitStatus)
}

// containerNotRunning is pve-container's refusal to stop or shut down a
// container that is not running, given before its config is read
// (API2/LXC/Status.pm vm_stop, vm_shutdown: check_running first): a
// vmid with no container here gets it too.
var containerNotRunning = regexp.MustCompile(`^CT \d+ not running`)

// IsContainerNotRunning reports whether err is PVE's answer that no
// running container has the vmid asked: it is stopped, or it is not a
// container of this node (gone, elsewhere, or a VM now).
func IsContainerNotRunning(err error) bool {
	ae, ok := errors.AsType[*APIError](err)
	return ok && containerNotRunning.MatchString(ae.Message)
}

// IsAmbiguous reports whether err is a mutation whose outcome is unknown.
func IsAmbiguous(err error) bool { return errors.Is(err, ErrAmbiguous) }

// Kind classifies err for run records and for flows deciding what to do:
// "permission", "lock", "elsewhere" (the guest is on another node of the
// cluster), "not_found", "ambiguous", "task", "api", the kind an error
// names itself (ErrorKind, such as the safety gate's "signature"), or ""
// for an error that is none of these (or nil).
func Kind(err error) string {
	switch {
	case err == nil:
		return ""
	case isPermission(err):
		return "permission"
	case isLocked(err):
		return "lock"
	case isElsewhere(err):
		return "elsewhere"
	case IsNotFound(err):
		return "not_found"
	case IsAmbiguous(err):
		return "ambiguous"
	}
	if k, ok := errors.AsType[kinded](err); ok {
		return k.ErrorKind() // an error that names its kind: the safety gate's "signature"
	}
	if _, ok := errors.AsType[*TaskError](err); ok {
		return "task"
	}
	if _, ok := errors.AsType[*APIError](err); ok {
		return "api"
	}
	return ""
}

// kinded is an error that names its own kind.
type kinded interface {
	error
	ErrorKind() string
}

func isPermission(err error) bool { _, ok := IsPermission(err); return ok }
func isLocked(err error) bool     { _, ok := IsLocked(err); return ok }
func isElsewhere(err error) bool  { _, ok := IsElsewhere(err); return ok }

// messages returns the PVE texts carried by err's typed errors, and the
// error text itself as the last resort.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if ae, ok := errors.AsType[*APIError](err); ok {
		out = append(out, ae.Message)
		for _, k := range slices.Sorted(maps.Keys(ae.Errors)) {
			out = append(out, ae.Errors[k])
		}
	}
	if te, ok := errors.AsType[*TaskError](err); ok {
		out = append(out, te.ExitStatus)
	}
	return append(out, err.Error())
}
