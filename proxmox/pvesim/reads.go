package pvesim

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Read endpoints third-party clients call besides those the agent uses:
// the cluster's status, one storage's configuration and status, one
// snapshot's configuration, and the users, groups and realms a token may
// see. Each answers as the PVE handler named on it does.

// getStorageConfig is pve-storage PVE/API2/Storage/Config.pm read: one
// storage's section of storage.cfg with its id and the file's digest, or
// PVE::Storage::storage_config's "storage 'x' does not exist".
func (c *call) getStorageConfig() response {
	sid := c.str("storage")
	if _, ok := c.st.storages[sid]; !ok {
		return die("storage '%s' does not exist", sid)
	}
	for _, item := range c.listStorageConfig().data.([]any) {
		if m := item.(map[string]any); m["storage"] == sid {
			return ok(m)
		}
	}
	// The listing hides what the token may not audit; the request's
	// Datastore.Allocate check has passed, so answer the section anyway.
	s := c.st.storages[sid]
	return ok(map[string]any{"storage": sid, "type": s.typ, "content": strings.Join(s.content, ","), "digest": c.st.storageDigest()})
}

// getStorageStatus is pve-storage PVE/API2/Storage/Status.pm read_status:
// the storage's entry of the node's storage_info (what GET
// /nodes/{node}/storage lists for it), or 400 "No such storage.".
func (c *call) getStorageStatus() response {
	list := c.listStorageStatus().data.([]any) // filtered by {storage}
	if len(list) == 0 || c.st.storages[c.str("storage")] == nil {
		return paramError(map[string]string{"storage": "No such storage."})
	}
	m := maps.Clone(list[0].(map[string]any))
	delete(m, "storage") // storage_info's entries are keyed by id, not carrying it
	return ok(m)
}

// getSnapshotConfig is pve-container src/PVE/API2/LXC/Snapshot.pm
// get_snapshot_config: the snapshot's section of the config (its keys,
// snaptime, description), or "snapshot 'x' does not exist".
func (c *call) getSnapshotConfig() response {
	g, fail := c.loadGuest(c.int("vmid"))
	if g == nil {
		return fail
	}
	name := c.str("snapname")
	s, found := g.snapshots[name]
	if !found {
		return die("snapshot '%s' does not exist", name)
	}
	conf := maps.Clone(s.conf)
	conf["snaptime"] = strconv.FormatInt(s.snaptime.Unix(), 10)
	return ok(typedConfig(g.kind, conf, s.description, ""))
}

// --- access ------------------------------------------------------------

// simUser is one user of the simulated user.cfg: root@pam and the owner
// of every token.
type simUser struct {
	id     string
	tokens []string // token names, sorted
}

func (st *state) users() []simUser {
	byID := map[string]*simUser{"root@pam": {id: "root@pam"}}
	for id := range st.tokens {
		user, name := userParts(id)
		u, ok := byID[user]
		if !ok {
			u = &simUser{id: user}
			byID[user] = u
		}
		u.tokens = append(u.tokens, name)
	}
	var out []simUser
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		u := byID[id]
		slices.Sort(u.tokens)
		out = append(out, *u)
	}
	return out
}

// listUsers is pve-access-control src/PVE/API2/User.pm index: every user
// when the caller has User.Modify or Sys.Audit on /access/groups, else
// only the members of groups it may see (the simulator has no groups) and
// itself — a token is never a user, so it sees none. enabled filters;
// full adds groups and tokens.
func (c *call) listUsers() response {
	if _, audit := c.tok.checkAny("/access/groups", "User.Modify", "Sys.Audit"); !audit {
		return ok([]any{})
	}
	out := []any{}
	for _, u := range c.st.users() {
		if c.has("enabled") && !c.bool("enabled") {
			continue // every simulated user is enabled
		}
		realm := u.id[strings.LastIndex(u.id, "@")+1:]
		e := map[string]any{"userid": u.id, "enable": 1, "expire": 0, "realm-type": realm}
		if c.bool("full") {
			e["groups"] = ""
			tokens := []any{}
			for _, name := range u.tokens {
				tokens = append(tokens, map[string]any{"tokenid": name, "privsep": 1, "expire": 0})
			}
			e["tokens"] = tokens
		}
		out = append(out, e)
	}
	return ok(out)
}

// listGroups is pve-access-control src/PVE/API2/Group.pm index, filtered
// by User.Modify, Sys.Audit or Group.Allocate on /access/groups/<group>:
// the simulated host has no groups.
func (c *call) listGroups() response { return ok([]any{}) }

// listDomains is pve-access-control src/PVE/API2/Domains.pm index: the
// built-in realms with the comments PVE::Auth::Plugin writes into a new
// domains.cfg. pveproxy serves it without authentication (pve-manager
// PVE/HTTPServer.pm auth_handler: the login box needs it).
func (c *call) listDomains() response {
	return ok([]any{
		map[string]any{"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
		map[string]any{"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
	})
}

// authExempt reports whether pveproxy answers req without authenticating
// at all (auth_handler's $require_auth = 0): credentials, even bad ones,
// are not looked at.
func authExempt(req *request) bool {
	return req.method == http.MethodGet && req.relPath == "/access/domains"
}
