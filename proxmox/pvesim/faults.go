package pvesim

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"gitea.dooplex.hu/admin/felhom-agent/proxmox"
)

// FaultKind names what a Fault does.
type FaultKind string

// The kinds of fault. Latency, Status and Drop act on matching HTTP
// requests; TaskFail on matching worker tasks; Full and Deny change the
// world once, when the fault is added.
const (
	FaultLatency  FaultKind = "latency"  // delay matching requests by Delay
	FaultStatus   FaultKind = "status"   // answer matching requests with Status
	FaultDrop     FaultKind = "drop"     // close the connection without an answer
	FaultTaskFail FaultKind = "taskfail" // matching tasks stop with Message as exit status
	FaultFull     FaultKind = "full"     // FillStorageOn(Storage, Node): Node "" fills it on every node
	FaultDeny     FaultKind = "deny"     // DenyAtTaskTime(ACLPath, Privilege)
	FaultOffline  FaultKind = "offline"  // SetNodeOnline(Node, false) from Delay on, for For (0: for good)
)

// Fault is one injected failure.
//
// The string form, parsed by ParseFault (and used by the CLI), is one
// colon-separated line per fault:
//
//	latency:DURATION[:METHOD:PATH][:count=N]     latency:200ms, latency:1s:GET:/nodes/*/status
//	STATUS:METHOD:PATH[:count=N][:MESSAGE]       503:GET:/nodes/*/tasks/*/status:count=2
//	drop:METHOD:PATH[:count=N][:after]           drop:POST:/nodes/*/vzdump:count=1:after
//	taskfail:TYPE:VMID[:count=N][:MESSAGE]       taskfail:vzdump:101:disk on fire
//	full:STORAGE[:NODE]                          full:usb-backup, full:local:pve2
//	deny:ACLPATH:PRIVILEGE                       deny:/vms/101:VM.Backup
//	offline:NODE[:at=DURATION][:for=DURATION]    offline:pve3:at=30s:for=1m
//
// STATUS is an HTTP status 400-599. METHOD is GET, POST, PUT, DELETE or
// "*". PATH is below /api2/json and must not contain ':' (write "*"): "*"
// alone matches every path; otherwise a "*" segment matches one segment,
// a final "**" any rest, and other segments are path.Match globs. TYPE is
// a worker type (vzdump, vzstart, ...) or "*"; VMID a guest id or "*".
// count=N limits the fault to the next N matches (default: every match;
// for taskfail: 1). MESSAGE is the rest of the line and may contain ':'.
// full fills STORAGE on every node, or on NODE only (a storage without
// shared=1 is each node's own disk; a shared one fills for all either
// way). offline takes node NODE of a cluster world down at=DURATION after the
// fault is added (default at once) and brings it back for=DURATION later
// (default never): see Sim.SetNodeOnline.
//
// A dropped answer to an idempotent request on a reused connection is
// retried once, silently, by Go's http.Transport; give a drop of a GET
// count=2 (or more) when the client must see it.
type Fault struct {
	Kind FaultKind // what the fault does
	// Method and Path select requests (latency, status, drop); "" means any.
	Method string
	Path   string // a pattern as in the string form, e.g. "/nodes/*/status"
	// Count is how many matching requests or tasks the fault hits; 0 means
	// all of them.
	Count int

	Delay   time.Duration // latency; offline: when the node goes down, from the fault's adding
	Status  int           // status: 400-599
	After   bool          // drop: handle the request (its effects happen), then drop the answer
	Message string        // status: PVE's message ("" sends the standard phrase and no body; 59x always have no body); taskfail: the exit status

	TaskType string // taskfail: worker type, "" for any
	VMID     int    // taskfail: guest (the task's id), 0 for any

	Storage   string        // full
	Node      string        // offline; full: the node whose storage fills ("" every node)
	For       time.Duration // offline: how long the node stays down; 0 means for good
	ACLPath   string        // deny
	Privilege string        // deny
}

// defaultTaskFailure is the exit status of a taskfail fault without one.
const defaultTaskFailure = "simulated task failure"

// ParseFault parses one fault in the string form documented on Fault. The
// error names the field that is wrong.
func ParseFault(spec string) (Fault, error) {
	fields := strings.Split(spec, ":")
	bad := func(i int, name, why string) (Fault, error) {
		v := ""
		if i < len(fields) {
			v = fields[i]
		}
		return Fault{}, fmt.Errorf("fault %q: %s %q (field %d): %s", spec, name, v, i+1, why)
	}
	need := func(n int) bool { return len(fields) >= n }
	var f Fault
	kind := fields[0]
	pos := 1 // next unread field
	readRequestMatch := func() (Fault, error) {
		m := fields[pos]
		switch m {
		case "*":
			m = ""
		case "GET", "POST", "PUT", "DELETE":
		default:
			return bad(pos, "method", "want GET, POST, PUT, DELETE or *")
		}
		p := fields[pos+1]
		switch {
		case p == "*":
			p = ""
		case !strings.HasPrefix(p, "/"):
			return bad(pos+1, "path", `want "*" or a path starting with "/"`)
		default:
			if _, err := path.Match(p, ""); err != nil {
				return bad(pos+1, "path", err.Error())
			}
		}
		f.Method, f.Path = m, p
		pos += 2
		return f, nil
	}
	switch {
	case kind == "latency":
		if !need(2) {
			return bad(1, "duration", "missing (latency:DURATION[:METHOD:PATH][:count=N])")
		}
		d, err := time.ParseDuration(fields[1])
		if err != nil || d <= 0 {
			return bad(1, "duration", "want a positive Go duration such as 200ms")
		}
		f.Kind, f.Delay, pos = FaultLatency, d, 2
		if len(fields) > pos && !isOption(fields[pos]) {
			if len(fields) < pos+2 {
				return bad(pos+1, "path", "missing (latency:DURATION:METHOD:PATH)")
			}
			if _, err := readRequestMatch(); err != nil {
				return Fault{}, err
			}
		}
	case kind == "drop":
		if !need(3) {
			return bad(len(fields), "path", "missing (drop:METHOD:PATH[:count=N][:after])")
		}
		f.Kind = FaultDrop
		if _, err := readRequestMatch(); err != nil {
			return Fault{}, err
		}
	case kind == "taskfail":
		if !need(3) {
			return bad(len(fields), "vmid", "missing (taskfail:TYPE:VMID[:count=N][:MESSAGE])")
		}
		f.Kind = FaultTaskFail
		if t := fields[1]; t != "*" {
			if t == "" || strings.ContainsAny(t, " /") {
				return bad(1, "type", "want a worker type such as vzdump, or *")
			}
			f.TaskType = t
		}
		if v := fields[2]; v != "*" {
			n, err := strconv.Atoi(v)
			if err != nil || n < proxmox.MinVMID || n > proxmox.MaxVMID {
				return bad(2, "vmid", "want a guest id 100-999999999, or *")
			}
			f.VMID = n
		}
		pos = 3
	case kind == "full":
		if len(fields) < 2 || len(fields) > 3 || checkFormatValue("pve-storage-id", fields[1]) != "" {
			return bad(1, "storage", "want full:STORAGE[:NODE] with a storage id")
		}
		f = Fault{Kind: FaultFull, Storage: fields[1]}
		if len(fields) == 3 {
			if checkFormatValue("pve-node", fields[2]) != "" {
				return bad(2, "node", "want full:STORAGE[:NODE] with a node name")
			}
			f.Node = fields[2]
		}
		return f, nil
	case kind == "offline":
		if len(fields) < 2 || checkFormatValue("pve-node", fields[1]) != "" {
			return bad(1, "node", "want offline:NODE[:at=DURATION][:for=DURATION] with a node name")
		}
		f = Fault{Kind: FaultOffline, Node: fields[1]}
		for i := 2; i < len(fields); i++ {
			name, v, _ := strings.Cut(fields[i], "=")
			d, err := time.ParseDuration(v)
			switch {
			case name != "at" && name != "for":
				return bad(i, "option", "want at=DURATION or for=DURATION")
			case err != nil || d < 0 || (name == "for" && d == 0):
				return bad(i, name, "want a positive Go duration such as 30s")
			case name == "at" && f.Delay == 0:
				f.Delay = d
			case name == "for" && f.For == 0:
				f.For = d
			default:
				return bad(i, name, "repeated")
			}
		}
		return f, nil
	case kind == "deny":
		if len(fields) != 3 {
			return bad(len(fields), "privilege", "want deny:ACLPATH:PRIVILEGE")
		}
		if !strings.HasPrefix(fields[1], "/") {
			return bad(1, "acl path", `want a path starting with "/"`)
		}
		if !knownPrivileges[fields[2]] {
			return bad(2, "privilege", "not a PVE privilege name")
		}
		return Fault{Kind: FaultDeny, ACLPath: normalizeACLPath(fields[1]), Privilege: fields[2]}, nil
	default:
		code, err := strconv.Atoi(kind)
		if err != nil || code < 400 || code > 599 || len(kind) != 3 {
			return bad(0, "kind", "want latency, drop, taskfail, full, deny, offline or an HTTP status 400-599")
		}
		if !need(3) {
			return bad(len(fields), "path", "missing (STATUS:METHOD:PATH[:count=N][:MESSAGE])")
		}
		f.Kind, f.Status = FaultStatus, code
		if _, err := readRequestMatch(); err != nil {
			return Fault{}, err
		}
	}
	// Options, then (for status and taskfail) the message.
	for ; pos < len(fields) && isOption(fields[pos]); pos++ {
		opt := fields[pos]
		if opt == "after" {
			if f.Kind != FaultDrop {
				return bad(pos, "option", "after applies only to drop")
			}
			if f.After {
				return bad(pos, "option", "repeated")
			}
			f.After = true
			continue
		}
		if f.Count != 0 {
			return bad(pos, "option", "count repeated")
		}
		n, err := strconv.Atoi(strings.TrimPrefix(opt, "count="))
		if err != nil || n < 1 {
			return bad(pos, "count", "want count=N with N >= 1")
		}
		f.Count = n
	}
	if pos < len(fields) {
		if f.Kind != FaultStatus && f.Kind != FaultTaskFail {
			return bad(pos, "field", "unexpected")
		}
		f.Message = strings.Join(fields[pos:], ":")
	}
	if f.Kind == FaultTaskFail {
		if f.Message == "" {
			f.Message = defaultTaskFailure
		}
		if f.Count == 0 {
			f.Count = 1
		}
	}
	return f, nil
}

func isOption(s string) bool { return s == "after" || strings.HasPrefix(s, "count=") }

// String formats f in the form ParseFault reads; ParseFault(f.String())
// gives f back for every valid f.
func (f Fault) String() string {
	any := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	var b strings.Builder
	count := func() {
		if f.Count > 0 {
			fmt.Fprintf(&b, ":count=%d", f.Count)
		}
	}
	switch f.Kind {
	case FaultLatency:
		fmt.Fprintf(&b, "latency:%s", f.Delay)
		if f.Method != "" || f.Path != "" {
			fmt.Fprintf(&b, ":%s:%s", any(f.Method), any(f.Path))
		}
		count()
	case FaultStatus:
		fmt.Fprintf(&b, "%d:%s:%s", f.Status, any(f.Method), any(f.Path))
		count()
		if f.Message != "" {
			b.WriteString(":" + f.Message)
		}
	case FaultDrop:
		fmt.Fprintf(&b, "drop:%s:%s", any(f.Method), any(f.Path))
		count()
		if f.After {
			b.WriteString(":after")
		}
	case FaultTaskFail:
		vmid := "*"
		if f.VMID != 0 {
			vmid = strconv.Itoa(f.VMID)
		}
		fmt.Fprintf(&b, "taskfail:%s:%s", any(f.TaskType), vmid)
		count()
		if f.Message != "" {
			b.WriteString(":" + f.Message)
		}
	case FaultFull:
		b.WriteString("full:" + f.Storage)
		if f.Node != "" {
			b.WriteString(":" + f.Node)
		}
	case FaultDeny:
		b.WriteString("deny:" + f.ACLPath + ":" + f.Privilege)
	case FaultOffline:
		b.WriteString("offline:" + f.Node)
		if f.Delay > 0 {
			fmt.Fprintf(&b, ":at=%s", f.Delay)
		}
		if f.For > 0 {
			fmt.Fprintf(&b, ":for=%s", f.For)
		}
	default:
		fmt.Fprintf(&b, "invalid fault kind %q", string(f.Kind))
	}
	return b.String()
}

// validate checks a Fault built in Go, with the same rules as ParseFault.
func (f Fault) validate() error {
	g, err := ParseFault(f.String())
	if err != nil {
		return err
	}
	if f.Kind == FaultTaskFail && f.Message == "" {
		f.Message = defaultTaskFailure
	}
	if f.Kind == FaultTaskFail && f.Count == 0 {
		// In Go, Count 0 means every matching task; the string form cannot
		// say that, so compare without it.
		g.Count = 0
	}
	if f.Kind == FaultDeny {
		f.ACLPath = normalizeACLPath(f.ACLPath)
	}
	if g != f {
		return fmt.Errorf("fault %+v does not survive its string form %q (paths and messages may not contain ':')", f, f.String())
	}
	return nil
}

// activeFault is a request or task fault with its remaining count.
type activeFault struct {
	Fault
	left int // < 0: unlimited
}

// AddFault injects f. Full and deny faults act at once; the others stay
// until their count is used up or ClearFaults.
func (s *Sim) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("pvesim: AddFault: %w", err)
	}
	return s.with(func(st *state) error { return st.addFault(f) })
}

func (st *state) addFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	switch f.Kind {
	case FaultFull:
		return st.fillStorage(f.Storage, f.Node)
	case FaultDeny:
		st.denials = append(st.denials, denial{path: normalizeACLPath(f.ACLPath), priv: f.Privilege})
		return nil
	case FaultTaskFail:
		if f.Message == "" {
			f.Message = defaultTaskFailure
		}
	case FaultOffline:
		n := st.nodeByName(f.Node)
		if n == nil {
			return fmt.Errorf("fault %q: no node %q in this world", f.String(), f.Node)
		}
		down := st.now.Add(f.Delay)
		st.schedule(down, func() {
			if n.online {
				n.online, n.downSince = false, down
			}
		})
		if f.For > 0 {
			st.schedule(down.Add(f.For), func() { n.online = true })
		}
		return nil
	}
	left := f.Count
	if left == 0 {
		left = -1
	}
	st.faults = append(st.faults, &activeFault{Fault: f, left: left})
	return nil
}

// ClearFaults removes every pending request and task fault (a filled
// storage and task-time denials stay; see SetStorageUsage and
// ClearTaskTimeDenials).
func (s *Sim) ClearFaults() {
	_ = s.with(func(st *state) error { st.faults = nil; return nil })
}

// FailNextTask makes the next task of worker type typ for guest vmid
// (typ "" and vmid 0 match any) stop with msg as its exit status, without
// its effects.
func (s *Sim) FailNextTask(typ string, vmid int, msg string) {
	_ = s.with(func(st *state) error {
		return st.addFault(Fault{Kind: FaultTaskFail, TaskType: typ, VMID: vmid, Message: msg, Count: 1})
	})
}

// FailTasks is FailNextTask for every matching task until ClearFaults.
func (s *Sim) FailTasks(typ string, vmid int, msg string) {
	_ = s.with(func(st *state) error {
		return st.addFault(Fault{Kind: FaultTaskFail, TaskType: typ, VMID: vmid, Message: msg})
	})
}

func (f *activeFault) use() bool {
	if f.left == 0 {
		return false
	}
	if f.left > 0 {
		f.left--
	}
	return true
}

// faultAction is what the request faults decided for one request.
type faultAction struct {
	delay   time.Duration
	status  int
	message string
	drop    bool
	after   bool
}

func (a faultAction) response() response {
	if a.status >= 590 {
		// 59x are AnyEvent::HTTP's own statuses for a request that got no
		// answer (595 connection refused, reset or timed out, 596 TLS,
		// 599 other): pveproxy passes them on from a proxied request with
		// the reason phrase and the (empty) body it got
		// (pve-http-server src/PVE/APIServer/AnyEvent.pm proxy_request),
		// never a JSON envelope.
		msg := a.message
		if msg == "" {
			msg = proxyReasons[a.status]
		}
		return response{status: a.status, message: msg, bare: true}
	}
	if a.message == "" {
		return response{status: a.status, bare: true}
	}
	return response{status: a.status, message: a.message + "\n"}
}

// proxyReasons are AnyEvent::HTTP's reason phrases for its 59x statuses
// when a fault gives none.
var proxyReasons = map[int]string{
	595: "Connection refused",
	596: "Errors during TLS negotiation, request sending or header processing",
	597: "Errors during body receiving or processing",
	598: "User aborted request via on_header or on_body",
	599: "Other, usually nonretryable, errors",
}

// matchFaults applies the request faults to req: every matching latency
// adds up; the first matching status or drop fault decides the answer.
func (st *state) matchFaults(req *request) faultAction {
	var act faultAction
	decided := false
	for _, f := range st.faults {
		if f.left == 0 || !f.matches(req) {
			continue
		}
		switch f.Kind {
		case FaultLatency:
			if f.use() {
				act.delay += f.Delay
			}
		case FaultStatus:
			if !decided && f.use() {
				act.status, act.message, decided = f.Status, f.Message, true
			}
		case FaultDrop:
			if !decided && f.use() {
				act.drop, act.after, decided = true, f.After, true
			}
		}
	}
	st.dropSpentFaults()
	return act
}

func (st *state) dropSpentFaults() {
	kept := st.faults[:0]
	for _, f := range st.faults {
		if f.left != 0 {
			kept = append(kept, f)
		}
	}
	st.faults = kept
}

func (f *activeFault) matches(req *request) bool {
	switch f.Kind {
	case FaultLatency, FaultStatus, FaultDrop:
	default:
		return false
	}
	if f.Method != "" && f.Method != req.method {
		return false
	}
	return f.Path == "" || matchPathPattern(f.Path, req.relPath)
}

// matchPathPattern matches an API path against a fault's path pattern.
func matchPathPattern(pattern, p string) bool {
	pat, segs := splitPath(pattern), splitPath(p)
	for i, part := range pat {
		if part == "**" && i == len(pat)-1 {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if ok, _ := path.Match(part, segs[i]); !ok {
			return false
		}
	}
	return len(pat) == len(segs)
}

// consumeTaskFailure returns the message of the first taskfail fault
// matching a new task, using it up.
func (st *state) consumeTaskFailure(typ string, vmid int) string {
	for _, f := range st.faults {
		if f.Kind != FaultTaskFail || f.left == 0 {
			continue
		}
		if (f.TaskType == "" || f.TaskType == typ) && (f.VMID == 0 || f.VMID == vmid) && f.use() {
			msg := f.Message
			st.dropSpentFaults()
			return msg
		}
	}
	return ""
}
