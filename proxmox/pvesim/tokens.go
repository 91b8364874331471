package pvesim

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

// API tokens, their privileges per ACL path, and PVE's permission checks
// (pve-access-control PVE::RPCEnvironment). A token's effective privileges
// on a path are those of the deepest path that has an entry for it — a
// more specific ACL replaces what is inherited from its parents, as in PVE.

// felhomAgentRole is the FelhomAgent role validated on a live host.
var felhomAgentRole = []string{
	"VM.Allocate", "VM.Audit", "VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory",
	"VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt", "VM.Snapshot",
	"VM.Snapshot.Rollback", "VM.Backup", "Datastore.Allocate", "Datastore.AllocateSpace",
	"Datastore.Audit", "Sys.Audit", "SDN.Use",
}

// FelhomAgentPrivileges returns the 16 privileges of the FelhomAgent role,
// which the default token holds on "/".
func FelhomAgentPrivileges() []string { return slices.Clone(felhomAgentRole) }

// knownPrivileges are PVE 8/9's privilege names; PVE refuses others
// (verify_privname), and so does SetTokenPrivileges.
var knownPrivileges = map[string]bool{}

func init() {
	for _, p := range strings.Fields(`VM.Allocate VM.Audit VM.Backup VM.Clone VM.Config.CDROM
		VM.Config.CPU VM.Config.Cloudinit VM.Config.Disk VM.Config.HWType VM.Config.Memory
		VM.Config.Network VM.Config.Options VM.Console VM.Migrate VM.Monitor VM.PowerMgmt
		VM.Replicate VM.Snapshot VM.Snapshot.Rollback VM.GuestAgent.Audit VM.GuestAgent.FileRead
		VM.GuestAgent.FileWrite VM.GuestAgent.FileSystemMgmt VM.GuestAgent.Unrestricted
		Datastore.Allocate Datastore.AllocateSpace Datastore.AllocateTemplate Datastore.Audit
		Sys.Audit Sys.Console Sys.Incoming Sys.Modify Sys.PowerMgmt Sys.Syslog Sys.AccessNetwork
		Permissions.Modify Pool.Allocate Pool.Audit Realm.Allocate Realm.AllocateUser User.Modify
		Group.Allocate SDN.Allocate SDN.Audit SDN.Use Mapping.Audit Mapping.Modify Mapping.Use`) {
		knownPrivileges[p] = true
	}
}

// token is one API token and its ACL entries (path → privileges; an empty
// list is PVE's NoAccess).
type token struct {
	id     string
	secret string
	acl    map[string][]string
}

var tokenIDRe = regexp.MustCompile(`^[^\s:/@!]+@[A-Za-z][A-Za-z0-9.\-_]*![A-Za-z][A-Za-z0-9.\-_]*$`)

// A failed authentication is a 401 whose reason phrase carries the cause
// and whose body is empty: pveproxy answers it before any formatter runs
// (pve-http-server src/PVE/APIServer/AnyEvent.pm, the auth_handler
// failure branch builds an HTTP::Response with the error as its message
// and no content — proxmoxer shows such answers as "401 Unauthorized: No
// ticket - b”"). The causes, in the order PVE finds them (pve-manager
// PVE/HTTPServer.pm auth_handler before 9.1.5; pve-access-control
// src/PVE/AccessControl.pm verify_token, split_tokenid,
// check_user_exist, check_token_exist; pve-common src/PVE/Ticket.pm):
//
//	No ticket                                      no credentials at all
//	permission denied - invalid PVE ticket         a PVEAuthCookie that does not verify
//	no tokenid specified                           PVEAPIToken without '='
//	'X' is not a valid token ID - not able to split into user and token parts
//	no such user ('USER@REALM')                    the token's user does not exist
//	no such token 'ID' for user 'USER@REALM'       the user has no such token
//	invalid token value!                           the secret is wrong
//
// PVE 9.1.5 and later answer a uniform "Authentication failed!" instead
// of the token and ticket causes (pve-manager commit 26c10a2e); the
// simulator models the earlier texts. ("authentication failure" is the
// 401 of POST /access/ticket for a wrong password, which the simulator
// does not serve.)
const (
	msgNoTicket      = "No ticket"
	msgInvalidTicket = "permission denied - invalid PVE ticket"
	msgNoTokenID     = "no tokenid specified"
	msgInvalidSecret = "invalid token value!"
)

// tokenFullRe is pve-access-control's $token_full_regex: USER@REALM!ID,
// with PVE::Auth::Plugin's user and realm patterns (a realm, and a token
// id, have at least two characters).
var tokenFullRe = regexp.MustCompile(`^(([^\s:/]+)@([A-Za-z][A-Za-z0-9.\-_]+))!([A-Za-z][A-Za-z0-9.\-_]+)$`)

// unauthorized is a 401 with reason and no body.
func unauthorized(reason string) response {
	return response{status: 401, message: reason + "\n", bare: true}
}

// authenticate resolves the Authorization header (PVEAPIToken=ID=SECRET)
// to a token, or answers PVE's 401.
func (st *state) authenticate(header, cookie string) (*token, response) {
	value, found := extractAuthValue(header)
	if !found {
		if cookie != "" {
			return nil, unauthorized(msgInvalidTicket)
		}
		return nil, unauthorized(msgNoTicket)
	}
	// verify_token splits at the last '=' (m/^(.*)=(.*)$/).
	i := strings.LastIndex(value, "=")
	if i < 0 {
		return nil, unauthorized(msgNoTokenID)
	}
	id, secret := value[:i], value[i+1:]
	m := tokenFullRe.FindStringSubmatch(id)
	if m == nil {
		return nil, unauthorized(fmt.Sprintf("'%s' is not a valid token ID - not able to split into user and token parts", id))
	}
	user, tokenName := m[1], m[4]
	if !st.userExists(user) {
		return nil, unauthorized(fmt.Sprintf("no such user ('%s')", user))
	}
	tok, ok := st.tokens[id]
	if !ok {
		return nil, unauthorized(fmt.Sprintf("no such token '%s' for user '%s'", tokenName, user))
	}
	if tok.secret != secret {
		return nil, unauthorized(msgInvalidSecret)
	}
	return tok, response{}
}

// userExists reports whether user is in the simulated user.cfg: root@pam
// and the owner of every token.
func (st *state) userExists(user string) bool {
	if user == "root@pam" {
		return true
	}
	for id := range st.tokens {
		if u, _ := userParts(id); u == user {
			return true
		}
	}
	return false
}

// apiTokenRe is PVE::APIServer::Formatter::extract_auth_value's pattern
// for the PVEAPIToken key.
var apiTokenRe = regexp.MustCompile(`(?:^|\s)PVEAPIToken(?:=| )([^;]*)`)

// extractAuthValue is extract_auth_value for the API token.
func extractAuthValue(header string) (string, bool) {
	m := apiTokenRe.FindStringSubmatch(header)
	if m == nil || m[1] == "" {
		return "", false
	}
	v, err := url.QueryUnescape(m[1])
	if err != nil {
		return m[1], true
	}
	return v, true
}

// normalizeACLPath is PVE::AccessControl::normalize_path: one slash
// between components, none at the end.
func normalizeACLPath(p string) string {
	p = "/" + strings.Trim(path.Clean("/"+p), "/")
	return p
}

// privileges is the token's effective privilege set on p.
func (t *token) privileges(p string) map[string]bool {
	p = normalizeACLPath(p)
	for {
		if privs, ok := t.acl[p]; ok {
			set := make(map[string]bool, len(privs))
			for _, priv := range privs {
				set[priv] = true
			}
			return set
		}
		if p == "/" {
			return nil
		}
		p = path.Dir(p)
	}
}

// has reports whether the token holds priv on p.
func (t *token) has(p, priv string) bool { return t.privileges(p)[priv] }

// check is RPCEnvironment::check: every privilege of privs, naming the
// first one missing.
func (t *token) check(p string, privs ...string) (response, bool) {
	p = normalizeACLPath(p)
	set := t.privileges(p)
	for _, priv := range privs {
		if !set[priv] {
			return permError(p + ", " + priv), false
		}
	}
	return response{}, true
}

// checkAny is RPCEnvironment::check_any: one of privs suffices.
func (t *token) checkAny(p string, privs ...string) (response, bool) {
	p = normalizeACLPath(p)
	set := t.privileges(p)
	for _, priv := range privs {
		if set[priv] {
			return response{}, true
		}
	}
	return permError(p + ", " + strings.Join(privs, "|")), false
}

// evalCheck runs an endpoint's declarative permission check (PVE's
// exec_api2_perm_check) with params substituted into its path template.
func (t *token) evalCheck(check []any, params map[string]string) (response, bool) {
	if len(check) == 0 {
		return permError(""), false
	}
	switch check[0] {
	case "and":
		for _, sub := range check[1:] {
			if subList, ok := sub.([]any); ok {
				if resp, ok := t.evalCheck(subList, params); !ok {
					return resp, false
				}
			}
		}
		return response{}, true
	case "or":
		for _, sub := range check[1:] {
			if subList, ok := sub.([]any); ok {
				if _, ok := t.evalCheck(subList, params); ok {
					return response{}, true
				}
			}
		}
		return permError(""), false
	case "perm":
		if len(check) < 3 {
			return permError(""), false
		}
		tmpl, _ := check[1].(string)
		var privs []string
		if list, ok := check[2].([]any); ok {
			for _, p := range list {
				if s, ok := p.(string); ok {
					privs = append(privs, s)
				}
			}
		}
		anyOf := false
		for i := 3; i+1 < len(check); i += 2 {
			if check[i] == "any" {
				anyOf = check[i+1] == float64(1) || check[i+1] == true
			}
		}
		p := templateReplace(tmpl, params)
		if anyOf {
			return t.checkAny(p, privs...)
		}
		return t.check(p, privs...)
	}
	return permError(""), false
}

var templateParamRe = regexp.MustCompile(`\{([^}]+)\}`)

// templateReplace is PVE::Tools::template_replace.
func templateReplace(tmpl string, params map[string]string) string {
	return templateParamRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		return params[m[1:len(m)-1]]
	})
}

// denial is a privilege withheld from every task that checks it on path
// (or below), while the HTTP request that started the task passed.
type denial struct{ path, priv string }

// taskCheck is one privilege a worker checks when it runs.
type taskCheck struct{ path, priv string }

// denied returns the permission text of the first check a denial hits.
func (st *state) denied(checks []taskCheck) string {
	for _, c := range checks {
		for _, d := range st.denials {
			if c.priv == d.priv && pathWithin(normalizeACLPath(c.path), normalizeACLPath(d.path)) {
				return fmt.Sprintf("Permission check failed (%s, %s)", normalizeACLPath(c.path), c.priv)
			}
		}
	}
	return ""
}

func pathWithin(p, parent string) bool {
	return parent == "/" || p == parent || strings.HasPrefix(p, parent+"/")
}

// AddToken adds (or replaces) an API token. id is USER@REALM!TOKENID; the
// token starts with no privileges.
func (s *Sim) AddToken(id, secret string) error {
	if !tokenIDRe.MatchString(id) {
		return fmt.Errorf("pvesim: token id %q must have the form USER@REALM!TOKENID", id)
	}
	if secret == "" {
		return fmt.Errorf("pvesim: token %s: empty secret", id)
	}
	return s.with(func(st *state) error {
		st.tokens[id] = &token{id: id, secret: secret, acl: map[string][]string{}}
		return nil
	})
}

// SetTokenPrivileges sets the privileges token id holds on ACL path (and,
// unless overridden deeper, below it), replacing that path's entry. No
// privileges is PVE's NoAccess: it hides what a parent path grants.
func (s *Sim) SetTokenPrivileges(id, aclPath string, privs ...string) error {
	for _, p := range privs {
		if !knownPrivileges[p] {
			return fmt.Errorf("pvesim: SetTokenPrivileges(%s, %s): invalid privilege name %q", id, aclPath, p)
		}
	}
	if !strings.HasPrefix(aclPath, "/") {
		return fmt.Errorf("pvesim: SetTokenPrivileges(%s): ACL path %q must start with /", id, aclPath)
	}
	return s.with(func(st *state) error {
		t, ok := st.tokens[id]
		if !ok {
			return fmt.Errorf("pvesim: SetTokenPrivileges: no token %q", id)
		}
		t.acl[normalizeACLPath(aclPath)] = slices.Clone(privs)
		return nil
	})
}

// RemoveTokenACL removes the token's entry on ACL path, so the path
// inherits from its parents again.
func (s *Sim) RemoveTokenACL(id, aclPath string) error {
	return s.with(func(st *state) error {
		t, ok := st.tokens[id]
		if !ok {
			return fmt.Errorf("pvesim: RemoveTokenACL: no token %q", id)
		}
		delete(t.acl, normalizeACLPath(aclPath))
		return nil
	})
}

// DenyAtTaskTime makes every worker task that checks privilege on aclPath
// (or below it) fail with "Permission check failed (PATH, PRIV)" as its
// exit status, although the request that started it passed its check. It
// models PVE checking inside the worker (vzdump checks VM.Backup there).
// What each worker type checks is listed in the package documentation.
func (s *Sim) DenyAtTaskTime(aclPath, privilege string) error {
	if !knownPrivileges[privilege] {
		return fmt.Errorf("pvesim: DenyAtTaskTime: invalid privilege name %q", privilege)
	}
	if !strings.HasPrefix(aclPath, "/") {
		return fmt.Errorf("pvesim: DenyAtTaskTime: ACL path %q must start with /", aclPath)
	}
	return s.with(func(st *state) error {
		st.denials = append(st.denials, denial{path: normalizeACLPath(aclPath), priv: privilege})
		return nil
	})
}

// ClearTaskTimeDenials removes every DenyAtTaskTime rule.
func (s *Sim) ClearTaskTimeDenials() {
	_ = s.with(func(st *state) error { st.denials = nil; return nil })
}
