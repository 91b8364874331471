package pvesim

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestRoutesCoverSchema keeps the route table and the embedded extract in
// step: every endpoint the agent uses is modelled, and nothing else.
func TestRoutesCoverSchema(t *testing.T) {
	schema := loadSchema()
	var routeKeys []string
	for _, rt := range routes {
		routeKeys = append(routeKeys, rt.key)
		if schema[rt.key] == nil {
			t.Errorf("route %s is not in the schema extract", rt.key)
		}
	}
	for key := range schema {
		if !slices.Contains(routeKeys, key) {
			t.Errorf("schema endpoint %s has no route", key)
		}
	}
	if len(schema) != len(routes) {
		t.Errorf("the extract has %d endpoints; want one per route, %d", len(schema), len(routes))
	}
}

func TestMatchRoute(t *testing.T) {
	tests := []struct {
		method, path, key string
		uri               map[string]string
	}{
		{"GET", "/nodes/n1/lxc/101/config", "GET /nodes/{node}/lxc/{vmid}/config", map[string]string{"node": "n1", "vmid": "101"}},
		{"GET", "//nodes/n1//lxc/", "GET /nodes/{node}/lxc", map[string]string{"node": "n1"}},
		{"DELETE", "/nodes/n1/storage/s1/content/s1:backup/a.tar", "DELETE /nodes/{node}/storage/{storage}/content/{volume}",
			map[string]string{"node": "n1", "storage": "s1", "volume": "s1:backup/a.tar"}},
		{"GET", "/nodes/n1/tasks/UPID:n1:00000001:00000002:00000003:vzdump::root@pam:/log", "GET /nodes/{node}/tasks/{upid}/log",
			map[string]string{"node": "n1", "upid": "UPID:n1:00000001:00000002:00000003:vzdump::root@pam:"}},
		{"POST", "/nodes/n1/lxc/101/config", "", nil},
		{"GET", "/nodes/n1/lxc/101/rrd", "", nil},
	}
	for _, tc := range tests {
		rt, uri := matchRoute(tc.method, tc.path)
		key := ""
		if rt != nil {
			key = rt.key
		}
		if key != tc.key || !maps.Equal(uri, tc.uri) {
			t.Errorf("matchRoute(%s %s) = %q %v; want %q %v", tc.method, tc.path, key, uri, tc.key, tc.uri)
		}
	}
}

type validationCase struct {
	Name   string            `json:"name"`
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Params map[string]string `json:"params"`
	Errors map[string]string `json:"errors"`
}

func TestValidation(t *testing.T) {
	raw, err := os.ReadFile("testdata/validation.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []validationCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	for _, tc := range cases {
		p := url.Values{}
		for k, v := range tc.Params {
			p.Set(k, v)
		}
		r := h.do(tc.Method, tc.Path, p)
		if tc.Errors == nil {
			if r.status == 400 {
				t.Errorf("%s: %d %s; want it to pass validation", tc.Name, r.status, r.raw)
			}
			continue
		}
		if r.status != 400 || r.reason != "Parameter verification failed." || r.message() != "Parameter verification failed.\n" {
			t.Errorf("%s: %d %q %s; want 400 Parameter verification failed.", tc.Name, r.status, r.reason, r.raw)
			continue
		}
		if got := r.errors(); !maps.Equal(got, tc.Errors) {
			t.Errorf("%s: errors = %q; want %q", tc.Name, got, tc.Errors)
		}
	}
}

func TestJSONBody(t *testing.T) {
	h := newHarness(t)
	req := func(body string) *result {
		r, err := newJSONRequest(h, "PUT", nodePath+"/lxc/101/config", body)
		if err != nil {
			t.Fatal(err)
		}
		return h.send(r)
	}
	if r := req(`{"cores": 3, "onboot": true, "description": "json"}`); r.status != 200 {
		t.Fatalf("JSON body: %d %s", r.status, r.raw)
	}
	if g := h.guest(101); g.Config["cores"] != "3" || g.Config["onboot"] != "1" || g.Description != "json" {
		t.Errorf("after a JSON PUT: %+v", g)
	}
	if r := req(`{"cores": `); r.status != 500 || !strings.HasPrefix(r.reason, "unable to parse JSON request body") {
		t.Errorf("broken JSON: %d %q", r.status, r.reason)
	}
}

func newJSONRequest(h *harness, method, path, body string) (*http.Request, error) {
	r, err := http.NewRequest(method, h.srv.Endpoint+"/api2/json"+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "PVEAPIToken="+h.token)
	return r, nil
}

type propCase struct {
	data string
	want map[string]string
	why  string
}

var netFormat = func() map[string]*propSchema {
	return loadSchema()["PUT /nodes/{node}/lxc/{vmid}/config"].Parameters.Properties["net[n]"].formatProps
}

var propCases = []propCase{
	{"name=eth0,bridge=vmbr0", map[string]string{"name": "eth0", "bridge": "vmbr0"}, ""},
	{"name=eth0,firewall=yes", map[string]string{"name": "eth0", "firewall": "1"}, ""},
	{"name=eth0,,", map[string]string{"name": "eth0"}, ""},
	{"name=eth0,name=eth1", nil, "duplicate key in comma-separated list property: name\n"},
	{"eth0", nil, "value without key, but schema does not define a default key\n"},
	{"name=", nil, "missing key in comma-separated list property\n"},
	{"name=eth0,mtu=abc", nil, "format error\nnet0.mtu: type check ('integer') failed - got 'abc'\n"},
	{"name=eth0,type=macvlan", nil, "format error\nnet0.type: value 'macvlan' does not have a value in the enumeration 'veth'\n"},
}

func TestParsePropertyString(t *testing.T) {
	format := netFormat()
	for _, tc := range propCases {
		got, why := parsePropertyString("net0", format, tc.data)
		if why != tc.why || (tc.why == "" && !maps.Equal(got, tc.want)) {
			t.Errorf("parsePropertyString(%q) = %v, %q; want %v, %q", tc.data, got, why, tc.want, tc.why)
		}
	}
	rootfs := loadSchema()["PUT /nodes/{node}/lxc/{vmid}/config"].Parameters.Properties["rootfs"].formatProps
	if got, why := parsePropertyString("rootfs", rootfs, "local-lvm:vm-101-disk-0,size=8G"); why != "" || got["volume"] != "local-lvm:vm-101-disk-0" || got["size"] != "8G" {
		t.Errorf("rootfs = %v %q; want the default key volume", got, why)
	}
}

// FuzzParsePropertyString: the parser of untrusted property strings never
// panics, and what it accepts has only keys of the format.
func FuzzParsePropertyString(f *testing.F) {
	for _, tc := range propCases {
		f.Add(tc.data)
	}
	format := netFormat()
	f.Fuzz(func(t *testing.T, data string) {
		got, why := parsePropertyString("net0", format, data)
		if why != "" {
			if got != nil {
				t.Fatalf("parsePropertyString(%q) failed with values %v", data, got)
			}
			return
		}
		for k := range got {
			if format[k] == nil {
				t.Fatalf("parsePropertyString(%q) accepted key %q", data, k)
			}
		}
	})
}

// FuzzValidate: request parameters are untrusted; validation never panics
// and names only parameters that were sent or are required.
func FuzzValidate(f *testing.F) {
	f.Add("cores", "4")
	f.Add("net0", "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01")
	f.Add("description", "x\ny")
	f.Add("cpulimit", "1.5e3")
	f.Add("delete", "a,b;c")
	ep := loadSchema()["PUT /nodes/{node}/lxc/{vmid}/config"]
	f.Fuzz(func(t *testing.T, key, value string) {
		params := map[string][]string{"node": {"pve"}, "vmid": {"101"}, key: {value}}
		for k := range ep.validate(params) {
			if key == "" && k == "_root" {
				continue // PVE's name for an error without a path
			}
			if k != key && !strings.HasPrefix(k, key+".") {
				t.Fatalf("validate(%q=%q) reported %q", key, value, k)
			}
		}
	})
}
