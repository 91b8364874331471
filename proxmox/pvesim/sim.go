package pvesim

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTaskDuration is how long a worker task runs when
// Sim.TaskDuration is zero.
const DefaultTaskDuration = 200 * time.Millisecond

// PVEAuthFailureDelay is how long pveproxy waits before it answers a
// failed authentication: "always delay unauthorized calls by 3 seconds"
// (pve-http-server src/PVE/APIServer/AnyEvent.pm, both where auth_handler
// fails and where a handler answers 401).
const PVEAuthFailureDelay = 3 * time.Second

// Sim is a simulated Proxmox VE 8 host: an http.Handler answering the API
// below /api2/json for every endpoint the agent uses, with the state
// behind it (node, LXC guests, storages and their content, tasks, tokens,
// disks and sensors).
//
// The zero value serves the default world (see the package documentation);
// so does New. Exported fields are knobs: set them before the first
// request and do not change them while requests are in flight (use the
// methods for that). Every method is safe for concurrent use: one mutex
// guards the state, and what methods return is a copy.
type Sim struct {
	// TaskDuration is how long every worker task runs before it stops
	// (a vzdump runs this long per guest it backs up). Zero means
	// DefaultTaskDuration; negative means tasks stop at their first
	// observation. Tasks are evaluated lazily: a task stops the first
	// time anyone looks (a request or a reader method) at or after its
	// end, so a test that controls Now controls task completion.
	TaskDuration time.Duration

	// Latency delays every API request before it is handled (faults may
	// add more). Zero means none.
	Latency time.Duration

	// Faults are injected from the first use of the Sim on; AddFault adds
	// more later. An invalid fault here panics at first use.
	Faults []Fault

	// OnUnmodeled, when set, is called for every request the simulator
	// does not model (besides answering it like PVE: 501 "Method 'GET /x'
	// not implemented"). Tests set it to report an error, so a client
	// calling an endpoint the simulator cannot vouch for fails loudly.
	OnUnmodeled func(*http.Request)

	// AuthFailureDelay is how long a failed authentication (a 401) waits
	// before it is answered, as pveproxy waits PVEAuthFailureDelay to slow
	// token guessing. Zero answers at once, which tests want; the
	// operators' simulator (felhom-agent sim) sets PVEAuthFailureDelay.
	// A client that gives up or disconnects meanwhile gets no answer.
	AuthFailureDelay time.Duration

	// LegacyErrors makes error bodies look like PVE before 8.4
	// (libpve-http-server-perl < 5.2.0): no "message" field; the message
	// travels only in the HTTP reason phrase.
	LegacyErrors bool

	// Nodes is how many nodes the world has: 0 or 1 is the single node
	// DefaultNode in no cluster; 2 or more make the cluster ClusterName
	// of nodes pve1, pve2, ... (cluster.go), the default world's guests on
	// pve1 and the cluster world's on the others.
	Nodes int
	// Blank starts the world empty: the node (named NodeName), its disks
	// and sensors and the agent's token, but no storage, guest or volume.
	// A mirror of a real host (felhom-agent plan) is built into it with
	// AddStorage, AddGuest, AddSnapshotAt and AddVolume.
	Blank bool
	// NodeName names the node; "" means DefaultNode.
	NodeName string

	// HostDir, when set, models the nodes' host filesystems for bind
	// mount points: HostDir(node, path) says whether directory path
	// exists on node. A container with a bind mount point whose
	// directory does not exist on its node then fails to start there
	// (vzstart, and the start on the target of a restart migration),
	// as pve-container's mountpoint_mount dies "directory '…' does not
	// exist". Nil does not model them: every bind mount's directory
	// exists.
	HostDir func(node, path string) bool

	// Now is the clock: task timing, ctimes and archive names (which use
	// the location of the time Now returns; time.Now is local time, like
	// PVE's). Nil means time.Now.
	Now func() time.Time

	once   sync.Once
	mu     sync.Mutex
	st     *state // guarded by mu
	runner *RootRunner
	// nodeRunners are the other nodes' root runners (NodeRootRunner),
	// guarded by mu.
	nodeRunners map[string]*RootRunner
}

// New returns a Sim serving the default world, with the default knobs
// spelled out.
func New() *Sim {
	return &Sim{TaskDuration: DefaultTaskDuration}
}

func (s *Sim) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// SetTaskDuration changes TaskDuration while the simulator serves; tasks
// already started keep their duration. (Writing the field directly races
// with requests in flight.)
func (s *Sim) SetTaskDuration(d time.Duration) {
	_ = s.with(func(*state) error { s.TaskDuration = d; return nil })
}

func (s *Sim) taskDuration() time.Duration {
	switch {
	case s.TaskDuration == 0:
		return DefaultTaskDuration
	case s.TaskDuration < 0:
		return 0
	}
	return s.TaskDuration
}

// init builds the default world on first use.
func (s *Sim) init() {
	s.once.Do(func() {
		s.st = newWorld(s, s.now())
		s.runner = &RootRunner{sim: s}
		for _, f := range s.Faults {
			if err := s.st.addFault(f); err != nil {
				panic(fmt.Sprintf("pvesim: Sim.Faults: %v", err))
			}
		}
	})
}

// with runs f on the state under the lock, after letting due tasks stop.
func (s *Sim) with(f func(st *state) error) error {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.now = s.now()
	s.st.advance()
	return f(s.st)
}

// Requests is the number of HTTP requests the handler has received.
func (s *Sim) Requests() int {
	var n int
	_ = s.with(func(st *state) error { n = st.requests; return nil })
	return n
}

// MutatingRequests is the number of requests other than GETs the handler
// has received, counted on arrival whatever their outcome: a test that
// promises a client only reads (felhom-agent plan) asserts it stays 0.
func (s *Sim) MutatingRequests() int {
	var n int
	_ = s.with(func(st *state) error { n = st.mutating; return nil })
	return n
}

// RouteRequests is the number of requests the handler has received for
// the endpoint named as the simulator's routes name it, counted on
// arrival whatever their outcome: "GET /nodes/{node}/tasks/{upid}/log"
// counts the task-log reads, "GET /nodes/{node}/tasks/{upid}/status" the
// status polls. An endpoint the simulator does not model counts nowhere.
func (s *Sim) RouteRequests(key string) int {
	var n int
	_ = s.with(func(st *state) error { n = st.byRoute[key]; return nil })
	return n
}

// Mutations is the number of mutating requests (POST, PUT, DELETE) the
// handler has received that name guest vmid: in the path, as the vmid of
// a create or restore, or in a vzdump's vmid list. Requests count on
// arrival, whatever their outcome — including those a fault failed or
// dropped — so a test can assert that a client never repeated one.
func (s *Sim) Mutations(vmid int) int {
	var n int
	_ = s.with(func(st *state) error { n = st.mutations[vmid]; return nil })
	return n
}

// ServeHTTP answers one API request the way pveproxy would: faults first
// (latency, injected statuses, dropped connections), then authentication,
// routing, the permission check of the endpoint, node resolution,
// parameter validation against the official schema, and the handler.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveAs(nil, w, r)
}

// serveAs answers a request node via received (nil: the first node).
func (s *Sim) serveAs(via *nodeState, w http.ResponseWriter, r *http.Request) {
	s.init()
	req := parseRequest(r)
	if via == nil {
		via = s.st.node // set once by init, never changed
	}
	req.via = via
	if req.route == nil && s.OnUnmodeled != nil {
		s.OnUnmodeled(r)
	}

	s.mu.Lock()
	st := s.st
	st.now = s.now()
	st.advance()
	st.requests++
	if r.Method != http.MethodGet {
		st.mutating++
	}
	for _, vmid := range req.mutatedGuests() {
		st.mutations[vmid]++
	}
	if req.route != nil {
		st.byRoute[req.route.key]++
	}
	act := st.matchFaults(req)
	down := !via.online
	s.mu.Unlock()
	if down {
		dropConnection(w) // a node that is down answers nothing
		return
	}

	if d := s.Latency + act.delay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch {
	case act.drop && !act.after:
		dropConnection(w)
		return
	case act.status != 0:
		writeResponse(w, act.response(), s.LegacyErrors, s.now())
		return
	}
	resp := s.serve(req)
	if resp.status == http.StatusUnauthorized && s.AuthFailureDelay > 0 {
		t := time.NewTimer(s.AuthFailureDelay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if act.drop {
		dropConnection(w)
		return
	}
	writeResponse(w, resp, s.LegacyErrors, s.now())
}

// serve runs the PVE request pipeline under the lock.
func (s *Sim) serve(req *request) response {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.now = s.now()
	st.advance()

	tok, fail := st.authenticate(req.auth, req.cookie)
	if authExempt(req) {
		tok = &token{acl: map[string][]string{}} // nobody: no credentials are looked at
	} else if tok == nil {
		return fail
	}
	if req.unexpectedBody {
		return serverError(http.StatusNotImplemented, fmt.Sprintf("Unexpected content for method '%s'", req.method))
	}
	if req.badContentType != "" {
		return serverError(506, fmt.Sprintf("upload 'Content-Type '%s' not implemented", req.badContentType))
	}
	if req.route == nil {
		return response{status: http.StatusNotImplemented, message: fmt.Sprintf("Method '%s %s' not implemented", req.method, req.relPath)}
	}
	if req.badBody != "" {
		return die("%s", req.badBody)
	}
	params := map[string][]string{}
	for k, v := range req.params {
		params[k] = v
	}
	conflicts := map[string]string{}
	for k, v := range req.uri {
		if got, ok := params[k]; ok && (len(got) != 1 || got[0] != v) {
			conflicts[k] = "duplicate parameter (already defined in URI) with conflicting values!"
		}
		params[k] = []string{v}
	}
	if len(conflicts) > 0 {
		return paramError(conflicts)
	}
	flat := make(map[string]string, len(params))
	for k, v := range params {
		if len(v) > 0 {
			flat[k] = v[0]
		}
	}
	ep := loadSchema()[req.route.key]
	if ep.Permissions.Check != nil {
		if resp, ok := tok.evalCheck(ep.Permissions.Check, flat); !ok {
			return resp
		}
	}
	here := req.via
	if name, ok := req.uri["node"]; ok {
		if here = st.nodeByName(name); here == nil {
			return die("no such cluster node '%s'", name)
		}
		if here != req.via && !here.online {
			return proxyUnreachable()
		}
	}
	if errs := ep.validate(params); errs != nil {
		return paramError(errs)
	}
	c := &call{st: st, tok: tok, params: flat, multi: params, req: req}
	var resp response
	st.as(here, func() { resp = req.route.handle(c) })
	return resp
}

// request is an HTTP request reduced to what PVE's server looks at.
type request struct {
	http           *http.Request
	method         string
	relPath        string // below /api2/json, as requested
	params         map[string][]string
	auth, cookie   string
	route          *route
	via            *nodeState        // the node that received it
	uri            map[string]string // path parameters
	badBody        string            // a body PVE could not decode
	unexpectedBody bool              // a body on GET or DELETE
	badContentType string            // a body of a type pveproxy does not read: the Content-Type header
}

func parseRequest(r *http.Request) *request {
	req := &request{
		http:   r,
		method: r.Method,
		params: map[string][]string{},
		auth:   r.Header.Get("Authorization"),
	}
	if c, err := r.Cookie("PVEAuthCookie"); err == nil {
		req.cookie = c.Value
	}
	if r.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(body) > 0 {
			ctype := r.Header.Get("Content-Type")
			switch {
			case r.Method != http.MethodPost && r.Method != http.MethodPut:
				req.unexpectedBody = true
			case !acceptedBodyType(ctype):
				req.badContentType = ctype
			default:
				req.badBody = decodeBody(ctype, body, req.params)
			}
		}
	}
	// extract_params: query parameters replace body parameters of the
	// same name; a key repeated within either becomes a list.
	for k, v := range r.URL.Query() {
		req.params[k] = v
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api2/json")
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		req.relPath = r.URL.Path
		return req
	}
	req.relPath = rest
	if req.relPath == "" {
		req.relPath = "/"
	}
	req.route, req.uri = matchRoute(r.Method, rest)
	return req
}

// acceptedBodyType is pveproxy's test of a Content-Type before it reads a
// body (pve-http-server src/PVE/APIServer/AnyEvent.pm
// authenticate_and_handle_request): none, form encoding or JSON, the
// media type compared case-sensitively as parse_content_type cuts it (at
// the first ';' or ','); any other type (text/plain, multipart/form-data
// outside uploads) is answered 506 "upload 'Content-Type 'TYPE' not
// implemented", TYPE being the header as sent.
func acceptedBodyType(ctype string) bool {
	ct := ctype
	if i := strings.IndexAny(ct, ";,"); i >= 0 {
		ct = strings.TrimRight(ct[:i], " \t")
	}
	return ct == "" || ct == "application/x-www-form-urlencoded" || ct == "application/json"
}

// decodeBody adds the parameters of a POST or PUT body to params: form
// encoding, or a JSON object whose scalars PVE reads as their text.
func decodeBody(contentType string, body []byte, params map[string][]string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" {
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return "unable to parse JSON request body: " + err.Error()
		}
		for k, v := range obj {
			switch v := v.(type) {
			case nil:
			case []any:
				for _, item := range v {
					params[k] = append(params[k], jsonScalar(item))
				}
			default:
				params[k] = []string{jsonScalar(v)}
			}
		}
		return ""
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return "unable to parse request body: " + err.Error()
	}
	for k, v := range vals {
		params[k] = append(params[k], v...)
	}
	return ""
}

func jsonScalar(v any) string {
	switch v := v.(type) {
	case bool:
		if v {
			return "1"
		}
		return "0"
	case string:
		return v
	case json.Number:
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// mutatedGuests lists the guests a mutating request names.
func (req *request) mutatedGuests() []int {
	switch req.method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return nil
	}
	var ids []int
	add := func(s string) {
		if n, err := strconv.Atoi(s); err == nil && !slices.Contains(ids, n) {
			ids = append(ids, n)
		}
	}
	if v, ok := req.uri["vmid"]; ok {
		add(v)
	}
	if req.route == nil {
		return ids
	}
	switch req.route.key {
	case "POST /nodes/{node}/lxc":
		if v := req.params["vmid"]; len(v) > 0 {
			add(v[0])
		}
	case "POST /nodes/{node}/vzdump":
		if v := req.params["vmid"]; len(v) > 0 {
			for _, id := range splitList(v[0]) {
				add(id)
			}
		}
	}
	return ids
}
