package pvesim

import (
	"slices"
	"strconv"
	"strings"
)

// route is one modelled endpoint. key is its "METHOD /path" in the
// schema extract, whose path template also drives matching: "{x}" matches
// one path segment, and the last "{volume}" of a storage content path
// takes the rest of the path (PVE's fragmentDelimiter ”).
type route struct {
	key    string
	handle func(*call) response
	method string
	parts  []string
}

// routes are the endpoints the simulator models: every endpoint of the
// extract (a test keeps the two in step).
var routes = buildRoutes(map[string]func(*call) response{
	"GET /version":                                                (*call).getVersion,
	"GET /nodes":                                                  (*call).getNodes,
	"GET /nodes/{node}/status":                                    (*call).getNodeStatus,
	"GET /nodes/{node}/version":                                   (*call).getVersion,
	"GET /cluster/resources":                                      (*call).getClusterResources,
	"GET /cluster/nextid":                                         (*call).getNextID,
	"GET /nodes/{node}/lxc":                                       (*call).listGuests,
	"POST /nodes/{node}/lxc":                                      (*call).createGuest,
	"GET /nodes/{node}/lxc/{vmid}/status/current":                 (*call).guestStatus,
	"POST /nodes/{node}/lxc/{vmid}/status/start":                  (*call).startGuest,
	"POST /nodes/{node}/lxc/{vmid}/status/stop":                   (*call).stopGuest,
	"POST /nodes/{node}/lxc/{vmid}/status/shutdown":               (*call).shutdownGuest,
	"GET /nodes/{node}/lxc/{vmid}/config":                         (*call).getGuestConfig,
	"PUT /nodes/{node}/lxc/{vmid}/config":                         (*call).putGuestConfig,
	"DELETE /nodes/{node}/lxc/{vmid}":                             (*call).destroyGuest,
	"GET /nodes/{node}/lxc/{vmid}/snapshot":                       (*call).listSnapshots,
	"POST /nodes/{node}/lxc/{vmid}/snapshot":                      (*call).createSnapshot,
	"POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback":  (*call).rollbackSnapshot,
	"DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}":         (*call).deleteSnapshot,
	"POST /nodes/{node}/lxc/{vmid}/status/reboot":                 (*call).rebootGuest,
	"POST /nodes/{node}/lxc/{vmid}/migrate":                       (*call).migrateGuest,
	"POST /nodes/{node}/qemu/{vmid}/migrate":                      (*call).migrateGuest,
	"GET /nodes/{node}/qemu":                                      (*call).listGuests,
	"POST /nodes/{node}/qemu":                                     (*call).createVM,
	"GET /nodes/{node}/qemu/{vmid}/status/current":                (*call).guestStatus,
	"POST /nodes/{node}/qemu/{vmid}/status/start":                 (*call).startGuest,
	"POST /nodes/{node}/qemu/{vmid}/status/stop":                  (*call).stopGuest,
	"POST /nodes/{node}/qemu/{vmid}/status/shutdown":              (*call).shutdownGuest,
	"POST /nodes/{node}/qemu/{vmid}/status/reboot":                (*call).rebootGuest,
	"GET /nodes/{node}/qemu/{vmid}/config":                        (*call).getGuestConfig,
	"POST /nodes/{node}/qemu/{vmid}/config":                       (*call).updateVMConfig,
	"PUT /nodes/{node}/qemu/{vmid}/config":                        (*call).updateVMConfig,
	"DELETE /nodes/{node}/qemu/{vmid}":                            (*call).destroyGuest,
	"GET /nodes/{node}/qemu/{vmid}/snapshot":                      (*call).listSnapshots,
	"POST /nodes/{node}/qemu/{vmid}/snapshot":                     (*call).createSnapshot,
	"POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback": (*call).rollbackSnapshot,
	"DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}":        (*call).deleteSnapshot,
	"GET /storage":                                            (*call).listStorageConfig,
	"GET /nodes/{node}/storage":                               (*call).listStorageStatus,
	"GET /nodes/{node}/storage/{storage}/content":             (*call).listContent,
	"DELETE /nodes/{node}/storage/{storage}/content/{volume}": (*call).deleteVolume,
	"GET /nodes/{node}/storage/{storage}/content/{volume}":    (*call).volumeInfo,
	"PUT /nodes/{node}/storage/{storage}/content/{volume}":    (*call).updateVolume,
	"POST /nodes/{node}/vzdump":                               (*call).vzdump,
	"GET /nodes/{node}/tasks":                                 (*call).listTasks,
	"GET /nodes/{node}/tasks/{upid}/status":                   (*call).taskStatus,
	"GET /nodes/{node}/tasks/{upid}/log":                      (*call).taskLog,
	"DELETE /nodes/{node}/tasks/{upid}":                       (*call).stopTask,
	"GET /nodes/{node}/disks/list":                            (*call).listDisks,
	"GET /nodes/{node}/disks/smart":                           (*call).diskSmart,
	// reads.go: what third-party clients read besides.
	"GET /cluster/status":                                      (*call).getClusterStatus,
	"GET /storage/{storage}":                                   (*call).getStorageConfig,
	"GET /nodes/{node}/storage/{storage}/status":               (*call).getStorageStatus,
	"GET /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config":  (*call).getSnapshotConfig,
	"GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config": (*call).getSnapshotConfig,
	"GET /access/users":                                        (*call).listUsers,
	"GET /access/groups":                                       (*call).listGroups,
	"GET /access/domains":                                      (*call).listDomains,
})

func buildRoutes(handlers map[string]func(*call) response) []*route {
	out := make([]*route, 0, len(handlers))
	for key, h := range handlers {
		method, path, _ := strings.Cut(key, " ")
		out = append(out, &route{key: key, handle: h, method: method, parts: splitPath(path)})
	}
	slices.SortFunc(out, func(a, b *route) int { return strings.Compare(a.key, b.key) })
	return out
}

// splitPath splits an API path into its non-empty segments, like PVE's
// find_handler.
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// matchRoute finds the route for method and path and its path parameters.
func matchRoute(method, path string) (*route, map[string]string) {
	segs := splitPath(path)
	for _, rt := range routes {
		if rt.method != method {
			continue
		}
		if uri, ok := rt.match(segs); ok {
			return rt, uri
		}
	}
	return nil, nil
}

func (rt *route) match(segs []string) (map[string]string, bool) {
	uri := map[string]string{}
	for i, part := range rt.parts {
		if i >= len(segs) {
			return nil, false
		}
		if name, ok := strings.CutPrefix(part, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if name == "volume" && i == len(rt.parts)-1 {
				uri[name] = strings.Join(segs[i:], "/")
				return uri, true
			}
			uri[name] = segs[i]
			continue
		}
		if part != segs[i] {
			return nil, false
		}
	}
	return uri, len(segs) == len(rt.parts)
}

// call is one validated request being handled, with the state locked.
type call struct {
	st     *state
	tok    *token
	params map[string]string   // first value of each parameter
	multi  map[string][]string // every value (array parameters)
	req    *request
}

func (c *call) has(k string) bool { _, ok := c.params[k]; return ok }

// kind is the guest kind the endpoint serves: "qemu" below
// /nodes/{node}/qemu, "lxc" otherwise.
func (c *call) kind() string {
	if c.req != nil && c.req.route != nil && strings.HasPrefix(c.req.route.key[strings.Index(c.req.route.key, " ")+1:], "/nodes/{node}/qemu") {
		return kindQemu
	}
	return kindLXC
}
func (c *call) str(k string) string { return c.params[k] }

// int reads an integer parameter the schema has already checked.
func (c *call) int(k string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(c.params[k], "+"))
	return n
}

// bool reads a boolean parameter: the schema admits only "0" and "1".
func (c *call) bool(k string) bool { return c.params[k] == "1" }
