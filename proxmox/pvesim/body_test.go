package pvesim

import (
	"net/http"
	"strings"
	"testing"
)

// rawBody sends body with Content-Type ct (none when "") and the default
// token.
func (h *harness) rawBody(method, path, ct, body string) *result {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.Endpoint+"/api2/json"+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+h.token)
	return h.send(req)
}

// pveproxy reads only form-encoded and JSON bodies (pve-http-server
// AnyEvent.pm authenticate_and_handle_request): anything else is a 506
// whose reason phrase, and since 5.2.0 whose plain body, names the
// Content-Type as sent. A body without a type is read as a form.
func TestBodyContentType(t *testing.T) {
	h := newHarness(t)
	path := nodePath + "/lxc/101/config"
	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "multipart/form-data; boundary=x", "application/json charset"} {
		r := h.rawBody("PUT", path, ct, "cores=3")
		want := "upload 'Content-Type '" + ct + "' not implemented"
		if r.status != 506 || r.reason != want || string(r.raw) != want || r.headers.Get("Content-Type") != "" {
			t.Errorf("PUT as %q = %d %q body %q type %q; want 506 %q as reason and plain body", ct, r.status, r.reason, r.raw, r.headers.Get("Content-Type"), want)
		}
	}
	if g := h.guest(101); g.Config["cores"] == "3" {
		t.Error("a refused body changed the config")
	}
	for _, ct := range []string{"", "application/x-www-form-urlencoded; charset=UTF-8", "application/json;charset=UTF-8"} {
		body := "cores=3"
		if strings.HasPrefix(ct, "application/json") {
			body = `{"cores": 3}`
		}
		if r := h.rawBody("PUT", path, ct, body); r.status != 200 {
			t.Errorf("PUT as %q = %d %q; want 200", ct, r.status, r.reason)
		}
	}
	// Authentication comes first: a bad token with a text body is a 401.
	req, _ := http.NewRequest("PUT", h.srv.Endpoint+"/api2/json"+path, strings.NewReader("x"))
	req.Header.Set("Content-Type", "text/plain")
	if r := h.send(req); r.status != 401 {
		t.Errorf("unauthenticated text/plain PUT = %d; want 401", r.status)
	}
	// A body on a GET is pveproxy's 501, its message the body.
	r := h.rawBody("GET", "/version", "", "x=1")
	if want := "Unexpected content for method 'GET'"; r.status != 501 || r.reason != want || string(r.raw) != want {
		t.Errorf("GET with a body = %d %q %q; want 501 %q", r.status, r.reason, r.raw, want)
	}
}

// Before libpve-http-server-perl 5.2.0 pveproxy's own errors had no body.
func TestBodyContentTypeLegacy(t *testing.T) {
	h := newHarnessWith(t, func(s *Sim) { s.LegacyErrors = true })
	r := h.rawBody("POST", nodePath+"/lxc/101/snapshot", "text/plain", "snapname=x")
	if r.status != 506 || r.reason != "upload 'Content-Type 'text/plain' not implemented" || len(r.raw) != 0 {
		t.Errorf("legacy text/plain POST = %d %q %q; want 506 with no body", r.status, r.reason, r.raw)
	}
}

// A repeated key becomes a list (decode_urlencoded), which a scalar
// parameter's type check refuses (PVE::JSONSchema check_type: "got
// ARRAY"); the query string replaces a body parameter of the same name
// (extract_params), so that is no list.
func TestRepeatedKey(t *testing.T) {
	h := newHarness(t)
	path := nodePath + "/lxc/101/config"
	for _, tc := range []struct{ body, param, msg string }{
		{"description=a&description=b", "description", "type check ('string') failed - got ARRAY"},
		{"cores=1&cores=2", "cores", "type check ('integer') failed - got ARRAY"},
		{"onboot=1&onboot=1", "onboot", "type check ('boolean') failed - got ARRAY"},
	} {
		r := h.rawBody("PUT", path, "application/x-www-form-urlencoded", tc.body)
		if r.status != 400 || r.errors()[tc.param] != tc.msg {
			t.Errorf("PUT %s = %d %v; want 400 with %s: %q", tc.body, r.status, r.errors(), tc.param, tc.msg)
		}
	}
	r := h.rawBody("PUT", path+"?cores=2", "application/x-www-form-urlencoded", "cores=1")
	if r.status != 200 || h.guest(101).Config["cores"] != "2" {
		t.Errorf("PUT with cores in body and query = %d %s, cores %q; want 200 and the query's 2", r.status, r.raw, h.guest(101).Config["cores"])
	}
	// A JSON list for a scalar is a list too.
	r = h.rawBody("PUT", path, "application/json", `{"description": ["a", "b"]}`)
	if r.status != 400 || r.errors()["description"] != "type check ('string') failed - got ARRAY" {
		t.Errorf("JSON list for a string = %d %v", r.status, r.errors())
	}
}
